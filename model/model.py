"""Trainer module: `run_fn` trains the Keras CNN on Transform's spectrograms and exports a model that
serves raw audio.

Two architectures (model/constants.py): 'seed', the tutorial's network exactly, on its |STFT|; and
'default', a small pooled CNN on band-limited log-mel, far cheaper. Keras here is tf_keras
2.16, imported by name: the Transform layer is a tf_keras layer, cannot live in a Keras 3 model, and
Keras 3 cannot save the SavedModel signatures TFMA and Beam load.
"""

import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from model import constants, features

_AUDIO_XF = features.transformed_name(features.AUDIO_KEY)


def _input_fn(file_pattern, data_accessor, tf_transform_output, shuffle: bool) -> tf.data.Dataset:
    """Batches of ({'audio_xf': [batch, frames, bins]}, label[batch]) from transformed TFRecords, one pass."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=constants.BATCH_SIZE,
            label_key=features.LABEL_KEY,
            num_epochs=1,
            shuffle=shuffle,
            shuffle_seed=constants.SEED,
        ),
        tf_transform_output.transformed_metadata.schema,
    )


def _build_seed_model(input_shape) -> keras.Model:
    """The tutorial's network: two 3x3 convolutions straight into a sigmoid (~6M weights)."""
    inputs = keras.Input(shape=input_shape, name=_AUDIO_XF)  # [1491, 257]
    x = keras.layers.Reshape((*input_shape, 1))(inputs)  # [1491, 257, 1]
    x = keras.layers.Conv2D(16, (3, 3), activation="relu")(x)  # [1489, 255, 16]
    x = keras.layers.Conv2D(16, (3, 3), activation="relu")(x)  # [1487, 253, 16]
    x = keras.layers.Flatten()(x)  # [6,019,376]
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="seed")


def _build_default_model(input_shape) -> keras.Model:
    """Three pooled convolutions and a global max over time and frequency (~25k weights).

    The global max asks "is there a call anywhere in this window?", which does not care where in the
    3 s the call sits.
    """
    inputs = keras.Input(shape=input_shape, name=_AUDIO_XF)  # [297, 48]
    x = keras.layers.Reshape((*input_shape, 1))(inputs)  # [297, 48, 1]
    for filters in (16, 32, 64):  # → [148, 24, 16] → [74, 12, 32] → [37, 6, 64]
        x = keras.layers.Conv2D(filters, (3, 3), padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.GlobalMaxPooling2D()(x)  # [64]
    x = keras.layers.Dropout(0.3, seed=constants.SEED)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="default")


def build_model(architecture: str, input_shape) -> keras.Model:
    """A compiled model: Adam, binary cross-entropy, recall and precision (at 0.5)."""
    builders = {constants.ARCHITECTURE_SEED: _build_seed_model, constants.ARCHITECTURE_DEFAULT: _build_default_model}
    if architecture not in builders:
        raise ValueError(f"architecture must be one of {sorted(builders)}, got {architecture!r}")
    model = builders[architecture](tuple(input_shape))
    model.compile(
        optimizer=keras.optimizers.Adam(constants.LEARNING_RATE),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.Recall(name="recall"), keras.metrics.Precision(name="precision")],
    )
    return model


def _class_weights(dataset: tf.data.Dataset) -> dict:
    """Weights that make both classes count equally in the loss (real data: 1 call per 3 other clips)."""
    labels = tf.concat([tf.reshape(label, [-1]) for _, label in dataset], axis=0)
    positives = int(tf.reduce_sum(tf.cast(labels, tf.int64)))
    total = int(tf.size(labels))
    if positives in (0, total):
        return {0: 1.0, 1: 1.0}
    return {0: total / (2.0 * (total - positives)), 1: total / (2.0 * positives)}


def _serving_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> dict:
    """tf.Example → probability (for the Evaluator) and raw waveforms → probability (for counting).

    Both run the Transform graph first, so callers never compute spectrograms themselves.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved

    def probability(raw_features):
        transformed = model.tft_layer(raw_features)
        return {constants.PREDICTION_KEY: model({_AUDIO_XF: transformed[_AUDIO_XF]})}

    audio_spec = {features.AUDIO_KEY: tf_transform_output.raw_feature_spec()[features.AUDIO_KEY]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return probability(tf.io.parse_example(serialized, audio_spec))

    @tf.function(input_signature=[tf.TensorSpec([None, features.CLIP_SAMPLES], tf.float32, name="audio")])
    def serve_audio(audio):
        return probability({features.AUDIO_KEY: audio})

    return {constants.EXAMPLE_SIGNATURE: serve_examples, constants.AUDIO_SIGNATURE: serve_audio}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer callback: trains, logs to TensorBoard in the Trainer's output, exports the model.

    custom_config: {'architecture': 'default' | 'seed', 'epochs': int}.
    """
    config = fn_args.custom_config or {}
    architecture = config.get("architecture", constants.ARCHITECTURE_DEFAULT)
    epochs = int(config.get("epochs", constants.DEFAULT_EPOCHS))
    keras.utils.set_random_seed(constants.SEED)

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output, shuffle=True)
    evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, shuffle=False)
    input_shape = tf_transform_output.transformed_feature_spec()[_AUDIO_XF].shape  # [frames, bins]

    model = build_model(architecture, input_shape)
    model.summary(print_fn=lambda line: print(line, flush=True))
    model.fit(
        train,
        epochs=epochs,
        validation_data=evaluation,
        class_weight=_class_weights(train),
        callbacks=[keras.callbacks.TensorBoard(log_dir=os.path.join(fn_args.model_run_dir, "logs"))],
        verbose=2,
    )
    model.save(
        fn_args.serving_model_dir, save_format="tf", signatures=_serving_signatures(model, tf_transform_output)
    )
