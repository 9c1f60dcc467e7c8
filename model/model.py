"""Trainer module: `run_fn` trains the Keras CNN on spectrograms of augmented raw audio and exports a
model that serves raw audio.

Two architectures (model/constants.py):
- 'default' scores every 40 ms of a 3 s window (a model frame). It is trained on calls planted into
  busy backgrounds (model/augment.py), with a loss that asks for a high score somewhere inside the
  planted call and a low one everywhere clear of it; the window's score is its best frame's. One such
  network is trained per ensemble seed (constants.ENSEMBLE_SEEDS), and one more, the student, learns their
  averaged frame probabilities and is exported (with `student` off, the ensemble itself is).
- 'tutorial' is the tutorial's network on its |STFT|, trained the tutorial's way: one score per clip,
  no augmentation.

The Trainer reads raw examples and applies the Transform graph itself, because augmentation works on
waveforms, before the spectrogram. Keras here is tf_keras 2.16, imported by name: the Transform layer
is a tf_keras layer, cannot live in a Keras 3 model, and Keras 3 cannot save the SavedModel signatures
TFMA and Beam load.
"""

import logging
import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from model import augment, constants, export, features

_AUDIO_XF = features.AUDIO_XF_KEY
# With a student, the ensemble that taught it is also exported, beside the student's Format-Serving.
TEACHER_EXPORT = "Format-Serving-teacher"
# Details a run shows only with --verbose (runners/quiet.py), such as the Keras model summary.
_log = logging.getLogger(__name__)


# --- Architectures ---------------------------------------------------------------------------------


def _build_tutorial_model(input_shape) -> keras.Model:
    """The tutorial's network: two 3x3 convolutions straight into a sigmoid (~6M weights)."""
    inputs = keras.Input(shape=input_shape, name=_AUDIO_XF)  # [1491, 257]
    x = keras.layers.Reshape((*input_shape, 1))(inputs)  # [1491, 257, 1]
    x = keras.layers.Conv2D(16, (3, 3), activation="relu")(x)  # [1489, 255, 16]
    x = keras.layers.Conv2D(16, (3, 3), activation="relu")(x)  # [1487, 253, 16]
    x = keras.layers.Flatten()(x)  # [6,019,376]
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="tutorial")


def _conv_block(x, filters: int, pool, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_norm")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(pool, name=f"{name}_pool")(x)


def _build_frame_logits(input_shape, seed: int, name: str) -> keras.Model:
    """The default network up to one logit per model frame (143k weights).

    Convolutions over time and frequency find call-like patches; the frequency axis is then pooled
    away and dilated convolutions over time (about 1.5 s of context each way) judge whether the
    patches add up to a call: a Capuchinbird call is a 1.5-4 s harmonic stack, a crow's caw is not.
    """
    # Any number of spectrogram frames: trained on windows of 297, run over whole recordings when counting.
    inputs = keras.Input(shape=(None, input_shape[-1]), name=_AUDIO_XF)  # [297, 48]
    x = keras.layers.Reshape((-1, input_shape[-1], 1))(inputs)  # [297, 48, 1]
    x = _conv_block(x, 16, (2, 2), "block1")  # [148, 24, 16]
    x = _conv_block(x, 32, (2, 2), "block2")  # [74, 12, 32]
    x = _conv_block(x, 64, (1, 2), "block3")  # [74, 6, 64]
    x = _conv_block(x, 64, (1, x.shape[2]), "block4")  # [74, 1, 64]
    x = keras.layers.Reshape((-1, x.shape[3]))(x)  # [74, 64]: one vector per model frame
    x = keras.layers.Dropout(0.3, seed=seed)(x)
    for dilation in (1, 2, 4):
        x = keras.layers.Conv1D(64, 5, dilation_rate=dilation, padding="same", use_bias=False,
                                name=f"context{dilation}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"context{dilation}_norm")(x)
        x = keras.layers.ReLU(name=f"context{dilation}_relu")(x)
    x = keras.layers.Conv1D(64, 5, padding="same", activation="relu", name="head")(x)
    logits = keras.layers.Conv1D(1, 1, name="frame_logits")(x)  # [74, 1]
    return keras.Model(inputs, logits, name=name)


def frame_network(input_shape, seed: int = constants.SEED, name: str = "frame_logits") -> keras.Model:
    """One member of the default model (spectrogram → one logit per frame), compiled with
    `region_loss`; its weights are drawn from `seed`."""
    keras.utils.set_random_seed(seed)
    network = _build_frame_logits(tuple(input_shape), seed, name)
    network.compile(optimizer=keras.optimizers.Adam(constants.LEARNING_RATE), loss=region_loss)
    return network


def ensemble(members) -> keras.Model:
    """The default model to export from trained frame networks: a frame's probability is the mean of
    the members' (one member: its own), a window's probability its best frame's.
    `.frame_probability` is the frame part ([74, 1]), served for counting."""
    inputs = keras.Input(shape=members[0].input_shape[1:], name=_AUDIO_XF)
    probabilities = [keras.layers.Activation("sigmoid", name=f"member{i}_probability")(member(inputs))
                     for i, member in enumerate(members)]  # each [74, 1]
    frames = probabilities[0] if len(members) == 1 else keras.layers.Average(name="mean")(probabilities)
    best = keras.layers.GlobalMaxPooling1D(name="probability")(frames)  # [1]
    model = keras.Model(inputs, best, name="default")
    model.frame_probability = keras.Model(inputs, frames, name="frame_probability")  # tracked: saved with it
    return model


def region_loss(targets: tf.Tensor, frame_logits: tf.Tensor) -> tf.Tensor:
    """Per window: the best frame inside a call should score high, the best frame outside every call low.

    Args:
      targets: float32[batch, frames, 2]: frames inside the call, frames that must be background.
      frame_logits: float32[batch, frames, 1].
    """
    logits = frame_logits[:, :, 0]
    lowest = tf.fill(tf.shape(logits), -1e4)
    inside, outside = targets[:, :, augment.INSIDE] > 0, targets[:, :, augment.OUTSIDE] > 0
    best_inside = tf.reduce_max(tf.where(inside, logits, lowest), axis=1)
    best_outside = tf.maximum(tf.reduce_max(tf.where(outside, logits, lowest), axis=1), -30.0)
    bce = tf.nn.sigmoid_cross_entropy_with_logits
    return (tf.where(tf.reduce_any(inside, axis=1), bce(tf.ones_like(best_inside), best_inside), 0.0)
            + tf.where(tf.reduce_any(outside, axis=1), bce(tf.zeros_like(best_outside), best_outside), 0.0))


def distillation_loss(targets: tf.Tensor, frame_logits: tf.Tensor) -> tf.Tensor:
    """The student's loss: region_loss on the planted truth, plus each frame's cross-entropy against the
    teacher's probability (constants.STUDENT_SOFT_WEIGHT).

    Args:
      targets: float32[batch, frames, 3]: inside, outside (region_loss's), the teacher's frame probability.
      frame_logits: float32[batch, frames, 1].
    """
    soft = tf.nn.sigmoid_cross_entropy_with_logits(targets[:, :, 2:], frame_logits)  # [batch, frames, 1]
    return region_loss(targets[:, :, :2], frame_logits) + constants.STUDENT_SOFT_WEIGHT * tf.reduce_mean(soft, [1, 2])


def student_network(input_shape, seed: int = constants.STUDENT_SEED) -> keras.Model:
    """A frame network like the ensemble's members, compiled with `distillation_loss`."""
    network = frame_network(input_shape, seed, name="student_frame_logits")
    network.compile(optimizer=keras.optimizers.Adam(constants.LEARNING_RATE), loss=distillation_loss)
    return network


def build_model(architecture: str, input_shape) -> keras.Model:
    """The model to export (window → probability), untrained; 'default' with one member."""
    input_shape = tuple(input_shape)
    if architecture == constants.ARCHITECTURE_TUTORIAL:
        model = _build_tutorial_model(input_shape)
        model.compile(
            optimizer=keras.optimizers.Adam(constants.LEARNING_RATE),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.Recall(name="recall"), keras.metrics.Precision(name="precision")],
        )
        return model
    if architecture == constants.ARCHITECTURE_DEFAULT:
        return ensemble([frame_network(input_shape)])
    raise ValueError(f"architecture must be one of {constants.ARCHITECTURES}, got {architecture!r}")


# --- Input ---------------------------------------------------------------------------------------


def _raw_examples(file_pattern, data_accessor, tf_transform_output) -> tf.data.Dataset:
    """Unbatched raw examples {audio, audio_mp3, label, ...}, one pass, in file order."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=64, num_epochs=1, shuffle=False),
        tf_transform_output.raw_metadata.schema,
    ).unbatch()


def _spectrograms(tf_transform_output):
    """audio float32[batch, 48000] → the Transform graph's spectrograms [batch, frames, bins]."""

    def transform(audio):
        return tf_transform_output.transform_raw_features({features.AUDIO_KEY: audio}, drop_unused_features=True)[
            _AUDIO_XF]

    return transform


def _training_data(examples, tf_transform_output, architecture: str, seed: int = constants.SEED,
                   site: bool = False, augmentations=()) -> tf.data.Dataset:
    spectrograms = _spectrograms(tf_transform_output)
    if architecture == constants.ARCHITECTURE_TUTORIAL:  # the tutorial: clips as they are, one label each
        return (augment.labelled(examples).cache().shuffle(1024, seed=seed).repeat().batch(constants.BATCH_SIZE)
                .map(lambda e: (spectrograms(e[features.AUDIO_KEY]), tf.reshape(e[features.LABEL_KEY], [-1, 1]))))
    return augment.training_examples(examples, constants.BATCH_SIZE, seed, site, augmentations).map(
        lambda audio, targets: (augment.mask_spectrograms(spectrograms(audio)), targets))


def _with_teacher(teacher_frames: keras.Model, mask: bool):
    """(spectrograms, targets[..., 2]) → (spectrograms, masked if `mask`; targets + the teacher's frame
    probabilities on the unmasked spectrograms [..., 3])."""

    def label(spectrograms, targets):
        soft = teacher_frames(spectrograms, training=False)  # [batch, 74, 1]
        shown = augment.mask_spectrograms(spectrograms) if mask else spectrograms
        return shown, tf.concat([targets, soft], axis=-1)

    return label


def _student_data(examples, tf_transform_output, teacher_frames: keras.Model, seed: int,
                  site: bool = False, augmentations=(), unlabelled: bool = False) -> tf.data.Dataset:
    """The default model's training batches, labelled by the teacher as well (distillation). With
    `unlabelled` windows in `examples`, this share of the batches are theirs, labelled by the teacher alone."""
    spectrograms = _spectrograms(tf_transform_output)
    batches = augment.training_examples(examples, constants.BATCH_SIZE, seed, site, augmentations)
    if unlabelled:
        share = constants.STUDENT_UNLABELLED_SHARE
        batches = tf.data.Dataset.sample_from_datasets(
            [batches, augment.unlabelled_windows(examples, constants.BATCH_SIZE, seed)], [1.0 - share, share],
            seed=seed)
    return (batches.map(lambda audio, targets: (spectrograms(audio), targets))
            .map(_with_teacher(teacher_frames, mask=True)))


def _validation_data(examples, tf_transform_output, architecture: str) -> tf.data.Dataset:
    spectrograms = _spectrograms(tf_transform_output)
    if architecture == constants.ARCHITECTURE_TUTORIAL:
        labelled = examples.map(lambda e: (e[features.AUDIO_KEY], tf.reshape(e[features.LABEL_KEY], [1])))
    else:
        labelled = examples.map(lambda e: (e[features.AUDIO_KEY], tf.cond(
            augment.is_call(e), lambda: augment.call_targets(e[features.AUDIO_KEY]), augment.background_targets)))
    return labelled.batch(constants.BATCH_SIZE).map(lambda audio, target: (spectrograms(audio), target)).cache()


def _count(examples: tf.data.Dataset):
    """(labelled examples, calls, site background windows, unlabelled windows) in a split."""
    clips = calls = site = unlabelled = 0
    for example in examples:
        if augment.is_unlabelled(example):
            unlabelled += 1
            continue
        clips += 1
        calls += int(augment.is_call(example))
        site += int(augment.is_site(example))
    return clips, calls, site, unlabelled


def _export(model: keras.Model, directory: str, tf_transform_output) -> None:
    """A SavedModel of `model` with the serving signatures (raw audio in, the Transform graph inside)."""
    model.save(directory, save_format="tf", signatures=export.serving_signatures(model, tf_transform_output))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer callback: trains, logs to TensorBoard in the Trainer's output, exports the model.

    custom_config: {'architecture': 'default' | 'tutorial', 'epochs': int, 'ensemble_seeds': [int, ...],
    'student': bool, 'augmentations': [name, ...]}, already resolved by the runner (runners/pipeline_flags.py).
    The default model trains one member per seed, one after the other, and exports one model averaging them;
    with 'student', that ensemble is the teacher of one network distilled from it, which is exported
    instead. The tutorial model is one network.
    """
    config = fn_args.custom_config
    architecture = config["architecture"]
    epochs = int(config["epochs"])
    seeds = [int(s) for s in config["ensemble_seeds"]]
    augmentations = tuple(config.get("augmentations") or ())
    keras.utils.set_random_seed(constants.SEED)

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = _raw_examples(fn_args.train_files, fn_args.data_accessor, tf_transform_output).cache()
    evaluation = _raw_examples(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
    clips, calls, site, unlabelled = _count(train)
    # The tutorial's epochs pass over the clips once; the default model's batches are made afresh.
    steps = max(1, clips // constants.BATCH_SIZE) if architecture == constants.ARCHITECTURE_TUTORIAL \
        else constants.STEPS_PER_EPOCH
    print(f"Training on {clips} clips ({calls} calls, {site} windows of site background"
          + (f"; and {unlabelled} unlabelled windows for the student" if unlabelled else "") + f"): {len(seeds)} x "
          f"{epochs} epochs of {steps} batches of {constants.BATCH_SIZE}", flush=True)
    input_shape = tf_transform_output.transformed_feature_spec()[_AUDIO_XF].shape  # [frames, bins]
    validation = _validation_data(evaluation, tf_transform_output, architecture)

    def fit(network: keras.Model, training: tf.data.Dataset, log_dir: str, validating=validation, **fit_args) -> None:
        network.fit(
            training,
            epochs=epochs,
            steps_per_epoch=steps,
            validation_data=validating,
            callbacks=[keras.callbacks.TensorBoard(log_dir=os.path.join(fn_args.model_run_dir, log_dir))],
            verbose=2,
            **fit_args,
        )

    if architecture == constants.ARCHITECTURE_TUTORIAL:
        model = build_model(architecture, input_shape)
        model.summary(print_fn=_log.info)
        # Its batches keep the split's 1:3 balance, as in the tutorial.
        fit(model, _training_data(train, tf_transform_output, architecture, seeds[0]), "logs",
            class_weight={0: clips / (2.0 * (clips - calls)), 1: clips / (2.0 * calls)})
    else:
        networks = []
        for index, seed in enumerate(seeds):
            print(f"Member {index + 1} of {len(seeds)} (seed {seed})", flush=True)
            networks.append(frame_network(input_shape, seed, name=f"member{index}_frame_logits"))
            if index == 0:  # the members share one architecture: one summary is enough
                networks[-1].summary(print_fn=_log.info)
            fit(networks[-1], _training_data(train, tf_transform_output, architecture, seed, site > 0, augmentations),
                os.path.join("logs", f"member{index}"))
        model = ensemble(networks)
        if config.get("student"):  # distil the ensemble into one network and export that instead
            teacher = model.frame_probability
            print(f"Student (seed {constants.STUDENT_SEED}), distilled from the ensemble's frame probabilities",
                  flush=True)
            student = student_network(input_shape)
            if constants.STUDENT_WARM_START:  # from the first member's weights, not from scratch
                student.set_weights(networks[0].get_weights())
            fit(student, _student_data(train, tf_transform_output, teacher, constants.STUDENT_SEED, site > 0,
                                       augmentations, unlabelled > 0),
                os.path.join("logs", "student"), validation.map(_with_teacher(teacher, mask=False)))
            # The teacher is kept beside the student's export, to be counted in its place (bench/accuracy.py).
            _export(model, os.path.join(os.path.dirname(fn_args.serving_model_dir), TEACHER_EXPORT), tf_transform_output)
            model = ensemble([student])
    _export(model, fn_args.serving_model_dir, tf_transform_output)
