"""model/augment.py: planted calls land where their frame targets say, batches are balanced and repeat."""

import numpy as np
import tensorflow as tf

from model import augment, constants, features

RATE = features.SAMPLE_RATE


def _examples():
    """Four call clips (a 1 kHz tone after 1 s of front padding) and four quiet noise clips."""
    rng = np.random.default_rng(0)
    t = np.arange(features.CLIP_SAMPLES) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 1_000 * t)).astype(np.float32)
    tone[:RATE] = 0.0
    audio, labels = [], []
    for i in range(8):
        clip = tone if i % 2 == 0 else (0.01 * rng.normal(size=features.CLIP_SAMPLES)).astype(np.float32)
        audio.append(clip)
        labels.append([1 - i % 2])
    audio = np.stack(audio)
    return tf.data.Dataset.from_tensor_slices(
        {features.AUDIO_KEY: audio, features.AUDIO_MP3_KEY: audio, features.LABEL_KEY: np.array(labels, np.int64)})


def _tone_power(waveform: np.ndarray) -> np.ndarray:
    """Power at 1 kHz in each model frame (the noise spreads over all frequencies, the tone does not)."""
    step = int(features.MODEL_FRAME_STEP_SECONDS * RATE)
    span = int(features.MODEL_FRAME_SPAN_SECONDS * RATE)
    window = np.hanning(span)
    tone_bin = round(1_000 * span / RATE)
    return np.array([np.abs(np.fft.rfft(waveform[f * step : f * step + span] * window)[tone_bin]) ** 2
                     for f in range(features.MODEL_FRAMES)])


def test_batches_alternate_calls_and_backgrounds_and_targets_follow_the_planted_call():
    audio, targets = next(iter(augment.training_examples(_examples(), 16)))
    audio, targets = audio.numpy(), targets.numpy()
    assert audio.shape == (16, features.CLIP_SAMPLES) and targets.shape == (16, features.MODEL_FRAMES, 2)
    inside, outside = targets[:, :, augment.INSIDE], targets[:, :, augment.OUTSIDE]
    calls = inside.any(axis=1)
    assert calls.tolist() == [True, False] * 8
    assert np.all(outside[~calls] == 1)  # a window without a call is background everywhere
    assert not np.any((inside == 1) & (outside == 1))
    for waveform, call_frames, background_frames in zip(audio[calls], inside[calls], outside[calls]):
        # At least 1 s of the call is inside the window (25 frames of 40 ms), and the tone is where
        # the targets put it: even 10 dB below the background's level it stands out at 1 kHz.
        assert call_frames.sum() >= 24
        # The tone is 2 s of the 3 s window, so wherever it lands at least 1 s is clear of it: some of
        # that is background even beyond the margins around the call.
        assert background_frames.sum() * features.MODEL_FRAME_STEP_SECONDS >= 0.25
        power = _tone_power(waveform)
        assert np.median(power[call_frames == 1]) > 10 * np.median(power[background_frames == 1])


def test_augmentation_repeats_exactly_and_masks_cover_part_of_a_spectrogram():
    first = next(iter(augment.training_examples(_examples(), 8)))[0].numpy()
    again = next(iter(augment.training_examples(_examples(), 8)))[0].numpy()
    np.testing.assert_array_equal(first, again)
    masked = augment.mask_spectrograms(tf.ones([4, features.MEL_FRAMES, features.MEL_BANDS])).numpy()
    assert set(np.unique(masked)) <= {0.0, 1.0}
    assert 0.5 < masked.mean() < 1.0


def test_call_targets_skip_the_front_padding():
    clip = np.zeros(features.CLIP_SAMPLES, np.float32)
    clip[RATE:] = 0.1  # 1 s of padding
    targets = augment.call_targets(tf.constant(clip)).numpy()
    first_inside = np.argmax(targets[:, augment.INSIDE])
    assert abs(first_inside * features.MODEL_FRAME_STEP_SECONDS - 1.0) < 0.05
    assert targets[: first_inside - 7, augment.OUTSIDE].all()  # clear of the call by the margin


def _power_at(waveform: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(waveform)) ** 2
    return float(spectrum[int(round(hz * len(waveform) / RATE))])


def _calls_noises_and_tones(prefix: str, seed: int):
    """(audio, groups, labels) of two call clips (1 kHz), four noise clips and two windows of a 5 kHz tone
    whose groups start with `prefix` (label 0)."""
    t = np.arange(features.CLIP_SAMPLES) / RATE
    call = (0.5 * np.sin(2 * np.pi * 1_000 * t)).astype(np.float32)
    tone_5k = (0.1 * np.sin(2 * np.pi * 5_000 * t)).astype(np.float32)
    rng = np.random.default_rng(seed)
    noise = [(0.1 * rng.normal(size=features.CLIP_SAMPLES)).astype(np.float32) for _ in range(4)]
    audio = np.stack([call, call] + noise + [tone_5k, tone_5k])
    groups = [[b"XC1"], [b"XC2"]] + [[f"rain-{i}".encode()] for i in range(4)] + [
        [(prefix + name).encode()] for name in ("a", "b")]
    return audio, groups, np.array([[1], [1]] + [[0]] * 6, np.int64)


def test_site_windows_are_backgrounds_for_calls_and_under_non_calls_never_alone():
    """Site windows (a 5 kHz tone) carry calls (1 kHz) and sit under non-calls (noise), never alone."""
    audio, groups, labels = _calls_noises_and_tones(features.SITE_GROUP_PREFIX, 1)
    examples = tf.data.Dataset.from_tensor_slices({features.AUDIO_KEY: audio, features.AUDIO_MP3_KEY: audio,
                                                   features.LABEL_KEY: labels, features.GROUP_KEY: groups})
    assert [bool(augment.is_site(e)) for e in examples] == [False] * 6 + [True] * 2

    audio, targets = next(iter(augment.training_examples(examples, 400, site=True)))
    calls = targets.numpy()[:, :, augment.INSIDE].any(axis=1)
    site_power = np.array([_power_at(w, 5_000) for w in audio.numpy()])
    broadband = np.array([np.sum(np.abs(np.fft.rfft(w)) ** 2) for w in audio.numpy()])
    heard = site_power > 1e-3 * broadband  # the 5 kHz tone is a visible part of the window
    # Calls: planted (70 %) into a site window about half of those times.
    assert 0.2 < heard[calls].mean() < 0.5
    # Non-calls: the site is mixed under some of them (70 % mixed x 50 % site), at or below the noise.
    assert 0.2 < heard[~calls].mean() < 0.5
    noise_power = broadband - site_power
    assert np.all(noise_power[~calls] > 0.5 * site_power[~calls])


def _spectra(augmentations, batch: int = 200):
    """Power spectra of one batch's call windows and non-call windows (tone calls, noise non-calls)."""
    audio, targets = next(iter(augment.training_examples(_examples(), batch, augmentations=augmentations)))
    calls = targets.numpy()[:, :, augment.INSIDE].any(axis=1)
    spectra = np.abs(np.fft.rfft(audio.numpy(), axis=1)) ** 2
    return spectra, calls, targets.numpy()


def _changed(varied: np.ndarray, plain: np.ndarray) -> np.ndarray:
    return ~np.all(np.isclose(varied, plain, rtol=1e-3, atol=1e-6), axis=1)


def test_each_variation_changes_its_share_of_windows_and_never_the_targets():
    plain, calls, plain_targets = _spectra(())
    for name in constants.AUGMENTATIONS:
        varied, _, targets = _spectra((name,))
        np.testing.assert_array_equal(targets, plain_targets)  # the call is where it was
        changed = _changed(varied, plain)
        if name in ("distance", "speed"):  # planted calls only (70 % of calls), half of them
            assert not changed[~calls].any() and 0.2 < changed[calls].mean() < 0.5, name
        else:  # every window, half of the time
            assert 0.35 < changed.mean() < 0.65, name


def test_band_noise_lands_inside_the_call_band_and_band_pass_removes_the_extremes():
    hz = np.fft.rfftfreq(features.CLIP_SAMPLES, 1 / RATE)
    plain, _, _ = _spectra(())
    noisy, _, _ = _spectra(("band_noise",))
    added = (noisy - plain)[_changed(noisy, plain)]
    band = (hz > constants.BAND_NOISE_HZ[0] * 0.8) & (hz < constants.BAND_NOISE_HZ[1] * 1.2)
    assert added[:, band].sum() > 20 * np.abs(added[:, hz > 4_000]).sum()
    passed, _, _ = _spectra(("band_pass",))
    changed = _changed(passed, plain)
    high, low = hz > 7_000, hz < 40
    assert np.median(passed[changed][:, high].sum(axis=1) / plain[changed][:, high].sum(axis=1)) < 0.5
    assert np.median(passed[changed][:, low].sum(axis=1) / plain[changed][:, low].sum(axis=1)) < 0.1


def test_speed_moves_a_planted_calls_pitch_by_at_most_four_percent():
    hz = np.fft.rfftfreq(features.CLIP_SAMPLES, 1 / RATE)
    plain, calls, _ = _spectra(())
    faster, _, _ = _spectra(("speed",))
    peaks = hz[np.argmax(faster[calls], axis=1)]
    assert np.all(np.abs(peaks - 1_000) <= 1_000 * constants.SPEED_CHANGE + 2)
    assert np.mean(np.abs(peaks - 1_000) > 5) > 0.15  # some were resampled
    assert np.all(hz[np.argmax(plain[calls], axis=1)] == 1_000)


def test_distance_low_passes_a_call_adds_a_reverb_tail_and_keeps_the_padding_silent():
    burst = np.zeros(features.CLIP_SAMPLES, np.float32)
    burst[RATE : 2 * RATE] = np.random.default_rng(3).normal(size=RATE)  # 1 s of padding, 1 s of noise, silence
    hz = np.fft.rfftfreq(features.CLIP_SAMPLES, 1 / RATE)
    high = hz > constants.DISTANCE_LOWPASS_HZ[1] * 1.2
    varied = [augment._source_variation(tf.constant(burst), tf.constant(RATE), augment._Random(42, 1, tf.constant(i, tf.int64)),
                                        ("distance",)).numpy() for i in range(20)]
    far = [v for v in varied if not np.array_equal(v, burst)]
    assert 5 <= len(far) <= 15  # half of the time
    for v in far:
        assert np.all(v[:RATE] == 0)
        assert (np.abs(np.fft.rfft(v)[high]) ** 2).sum() < 0.05 * (np.abs(np.fft.rfft(burst)[high]) ** 2).sum()
        tail = v[2 * RATE : 2 * RATE + int(0.04 * RATE)]  # the first 40 ms after the burst ends
        assert np.sum(tail ** 2) > 1e-5 * np.sum(burst ** 2)


def test_unlabelled_windows_reach_only_their_own_batches_and_carry_no_targets():
    """Unlabelled windows (a 5 kHz tone, placeholder label 0) never become backgrounds or non-calls; their
    own batches hold only them, as recorded or through the mp3 round trip, with all-zero targets."""
    audio, groups, labels = _calls_noises_and_tones(features.UNLABELLED_GROUP_PREFIX, 2)
    unlabelled = audio[-1]
    mp3 = audio.copy()
    mp3[6:] *= 0.5  # the round trip's copy tells itself apart
    examples = tf.data.Dataset.from_tensor_slices({features.AUDIO_KEY: audio, features.AUDIO_MP3_KEY: mp3,
                                                   features.LABEL_KEY: labels, features.GROUP_KEY: groups})
    assert [bool(augment.is_unlabelled(e)) for e in examples] == [False] * 6 + [True] * 2

    training, _ = next(iter(augment.training_examples(examples, 200)))
    tone = np.array([_power_at(w, 5_000) for w in training.numpy()])
    broadband = np.array([np.sum(np.abs(np.fft.rfft(w)) ** 2) for w in training.numpy()])
    assert np.all(tone < 1e-3 * broadband)  # not one labelled batch hears the unlabelled windows

    windows, targets = next(iter(augment.unlabelled_windows(examples, 64)))
    windows, targets = windows.numpy(), targets.numpy()
    assert windows.shape == (64, features.CLIP_SAMPLES) and targets.shape == (64, features.MODEL_FRAMES, 2)
    assert not targets.any()
    # Every window is the 5 kHz tone at some gain within GAIN_DB (the round trip's copy 6 dB lower).
    shape = unlabelled / np.linalg.norm(unlabelled)
    gains_db = 20 * np.log10(np.linalg.norm(windows, axis=1) / np.linalg.norm(unlabelled))
    assert np.allclose(np.abs(windows @ shape), np.linalg.norm(windows, axis=1), rtol=1e-4)
    low, high = constants.GAIN_DB
    assert gains_db.min() >= low - 6.03 and gains_db.max() <= high + 1e-3
    assert np.unique(np.round(gains_db, 3)).size > 32  # gains drawn afresh
