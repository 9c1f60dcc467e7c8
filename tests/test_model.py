"""model/: feature sizes, the in-graph spectrograms, and the two architectures."""

import numpy as np
import pytest
import tensorflow as tf

from model import constants, features, model, preprocessing


def _infer(network, inputs: np.ndarray) -> np.ndarray:
    """The network in inference mode: what `predict` gives, without the seconds `predict` takes to set up."""
    return network(inputs, training=False).numpy()


def _tones(*frequencies):
    t = np.arange(features.CLIP_SAMPLES) / features.SAMPLE_RATE
    return tf.constant(np.stack([np.sin(2 * np.pi * f * t) for f in frequencies]).astype(np.float32))


def test_feature_sizes_follow_from_the_constants():
    assert features.CLIP_SAMPLES == 48_000
    assert (features.STFT_FRAMES, features.STFT_BINS) == (1491, 257)  # the tutorial's image
    assert features.MEL_FRAMES == 297


def test_stft_is_the_tutorials_and_finds_a_tone_in_its_bin():
    spectrogram = preprocessing._stft_magnitude(_tones(1_000, 2_000)).numpy()
    assert spectrogram.shape == (2, 1491, 257)
    bin_hz = features.SAMPLE_RATE / features.STFT_FFT_LENGTH  # 31.25 Hz
    assert np.argmax(spectrogram[0].mean(axis=0)) == 1_000 / bin_hz
    assert np.argmax(spectrogram[1].mean(axis=0)) == 2_000 / bin_hz


def test_log_mel_is_band_limited_and_ordered_by_pitch():
    spectrogram = preprocessing.log_mel(_tones(500, 2_000, 7_000)).numpy()
    assert spectrogram.shape == (3, features.MEL_FRAMES, features.MEL_BANDS)
    low, high, above_cap = (np.argmax(s.mean(axis=0)) for s in spectrogram)
    assert 0 < low < high < features.MEL_BANDS - 1
    # 7 kHz is above the 5 kHz cap: it barely registers compared with an in-band tone.
    assert spectrogram[2].max() < spectrogram[1].max() - 5


def test_log_mel_reads_only_the_bins_with_mel_weight_for_the_same_values():
    weights = preprocessing.mel_weights().numpy()
    assert weights.shape == (features.MEL_FRAME_LENGTH // 2 + 1, features.MEL_BANDS)
    assert features.MEL_STFT_BINS == 161
    assert not weights[features.MEL_STFT_BINS :].any() and weights[features.MEL_STFT_BINS - 2].any()
    audio = tf.constant(np.random.default_rng(0).normal(0, 0.1, (2, 20_000)).astype(np.float32))
    every_bin = tf.abs(tf.signal.stft(audio, features.MEL_FRAME_LENGTH, features.MEL_FRAME_STEP))
    expected = tf.math.log(tf.tensordot(every_bin, weights, axes=1) + features.LOG_OFFSET).numpy()
    # The same sums over fewer terms: a matrix product blocks its sums by the CPU's vector width, so on
    # some CPUs (AVX2-only) the last bit differs. Reading a wrong bin would differ by far more than 1e-6.
    np.testing.assert_allclose(preprocessing.log_mel(audio).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_tutorial_model_is_the_tutorials_network():
    tutorial = model.build_model(constants.ARCHITECTURE_TUTORIAL, (features.STFT_FRAMES, features.STFT_BINS))
    layers = [type(layer).__name__ for layer in tutorial.layers]
    assert layers == ["InputLayer", "Reshape", "Conv2D", "Conv2D", "Flatten", "Dense"]
    assert [layer.filters for layer in tutorial.layers if type(layer).__name__ == "Conv2D"] == [16, 16]
    assert tutorial.count_params() == (9 * 16 + 16) + (9 * 16 * 16 + 16) + (1487 * 253 * 16 + 1)
    assert tutorial.layers[-1].activation.__name__ == "sigmoid"


def test_default_model_is_far_smaller_scores_every_frame_and_a_window_by_its_best_frame():
    default = model.build_model(constants.ARCHITECTURE_DEFAULT, (features.MEL_FRAMES, features.MEL_BANDS))
    assert default.count_params() < 200_000  # the tutorial network has 6 million
    spectrograms = np.random.default_rng(0).normal(size=(4, 297, 48)).astype(np.float32)
    probabilities = _infer(default, spectrograms)
    frames = _infer(default.frame_probability, spectrograms)
    assert probabilities.shape == (4, 1) and np.all((probabilities > 0) & (probabilities < 1))
    assert frames.shape == (4, features.MODEL_FRAMES, 1)
    np.testing.assert_allclose(probabilities[:, 0], frames[:, :, 0].max(axis=1), rtol=1e-6)
    # Any length: a whole recording's spectrogram gets one probability per 4 frames.
    assert _infer(default.frame_probability, np.concatenate(list(spectrograms))[None]).shape == (
        1, 4 * features.MEL_FRAMES // features.MODEL_FRAME_POOLING, 1)


def test_an_ensemble_averages_its_members_frame_probabilities():
    shape = (features.MEL_FRAMES, features.MEL_BANDS)
    members = [model.frame_network(shape, seed, name=f"member{i}") for i, seed in enumerate((42, 7))]
    combined = model.ensemble(members)
    assert combined.count_params() == sum(member.count_params() for member in members)
    spectrograms = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    logits = [_infer(member, spectrograms)[:, :, 0] for member in members]
    assert not np.allclose(logits[0], logits[1])  # different seeds, different weights
    expected = np.mean([1 / (1 + np.exp(-x)) for x in logits], axis=0)  # [3, 74]
    np.testing.assert_allclose(_infer(combined.frame_probability, spectrograms)[:, :, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(_infer(combined, spectrograms)[:, 0], expected.max(axis=1), rtol=1e-5)


def test_region_loss_rewards_a_high_frame_inside_the_call_and_low_frames_outside():
    frames = features.MODEL_FRAMES
    inside = np.zeros(frames, np.float32)
    inside[20:40] = 1
    targets = tf.constant([np.stack([inside, 1 - inside], axis=-1)] * 3)  # call in frames 20-39
    logits = np.full((3, frames, 1), -8.0, np.float32)
    logits[0, 30] = 8.0  # right: high inside, low outside
    logits[1, 60] = 8.0  # wrong: high outside only
    logits[2, 30] = logits[2, 60] = 8.0  # found the call, but also a false alarm
    loss = model.region_loss(targets, tf.constant(logits)).numpy()
    assert loss[0] < 0.01 and loss[1] > 15 and 7 < loss[2] < 9
    # A window without a call: only the best frame matters, and it must be low.
    background = tf.constant([np.stack([np.zeros(frames), np.ones(frames)], axis=-1)], tf.float32)
    assert model.region_loss(background, tf.constant(np.full((1, frames, 1), -8.0, np.float32))).numpy()[0] < 0.01


def test_distillation_loss_adds_the_frames_cross_entropy_against_the_teacher():
    frames = features.MODEL_FRAMES
    inside = np.zeros(frames, np.float32)
    inside[20:40] = 1
    teacher = np.full(frames, 0.05, np.float32)
    teacher[25:35] = 0.9
    targets = tf.constant([np.stack([inside, 1 - inside, teacher], axis=-1)] * 2)
    logits = np.full((2, frames, 1), -3.0, np.float32)
    logits[:, 30] = 3.0  # both find the call...
    logits[0, 25:35] = np.log(0.9 / 0.1)  # ...the first also follows the teacher over the whole call
    loss = model.distillation_loss(targets, tf.constant(logits)).numpy()
    region = model.region_loss(targets[:, :, :2], tf.constant(logits)).numpy()
    p = 1 / (1 + np.exp(-logits[:, :, 0]))
    cross_entropy = -(teacher * np.log(p) + (1 - teacher) * np.log(1 - p)).mean(axis=1)
    np.testing.assert_allclose(loss, region + constants.STUDENT_SOFT_WEIGHT * cross_entropy, rtol=1e-5)
    assert loss[0] < loss[1]


def test_the_teacher_labels_unmasked_spectrograms_and_the_student_sees_them_masked():
    shape = (features.MEL_FRAMES, features.MEL_BANDS)
    teacher = model.ensemble([model.frame_network(shape, 42, name="member0")]).frame_probability
    spectrograms = tf.constant(np.random.default_rng(2).normal(size=(4, *shape)).astype(np.float32))
    targets = tf.zeros((4, features.MODEL_FRAMES, 2))
    tf.random.set_seed(0)
    shown, labelled = model._with_teacher(teacher, mask=True)(spectrograms, targets)
    assert labelled.shape == (4, features.MODEL_FRAMES, 3)
    np.testing.assert_allclose(labelled[:, :, 2:].numpy(), _infer(teacher, spectrograms.numpy()), rtol=1e-5)
    assert np.sum(shown.numpy() == 0) > 0 and np.sum(spectrograms.numpy() == 0) == 0  # masks on the student's
    unmasked, _ = model._with_teacher(teacher, mask=False)(spectrograms, targets)
    np.testing.assert_array_equal(unmasked.numpy(), spectrograms.numpy())


def test_unknown_architecture_is_rejected():
    with pytest.raises(ValueError, match="architecture"):
        model.build_model("resnet", (297, 48))


def test_band_medians_are_removed_so_steady_background_vanishes():
    t = np.arange(features.CLIP_SAMPLES) / features.SAMPLE_RATE
    steady = 0.3 * np.sin(2 * np.pi * 800 * t)
    burst = steady + np.where((t > 1.0) & (t < 2.0), 0.5 * np.sin(2 * np.pi * 1_500 * t), 0.0)
    log_mel = preprocessing.log_mel(tf.constant(np.stack([steady, burst]).astype(np.float32)))
    normalised = preprocessing.remove_band_medians(log_mel).numpy()
    assert normalised.shape == log_mel.shape
    assert np.abs(normalised[0]).max() < 1.0  # a steady tone is background: flat after removal
    assert normalised[1].max() > 5.0  # the 1 s burst stands out


@pytest.mark.parametrize("frames", [297, 10, 1])
def test_the_band_medians_are_exactly_numpys_middle_value(frames):
    # np.sort's middle element: the frames' median for an odd count, the upper middle for an even one.
    log_mel = np.random.default_rng(frames).normal(size=(3, frames, 48)).astype(np.float32)
    log_mel[0, :, 0] = 1.5  # ties
    expected = log_mel - np.sort(log_mel, axis=1)[:, frames // 2][:, None, :]
    np.testing.assert_array_equal(preprocessing.remove_band_medians(tf.constant(log_mel)).numpy(), expected)
