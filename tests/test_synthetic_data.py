"""components/synthetic_data.py: the default dataset is deterministic and its truth is what was planted."""

import os

import numpy as np
import pytest

from components import audio, dataset, synthetic_data
from model import features
from tests.helpers import TINY_SPEC, dominant_frequency

RATE = features.SAMPLE_RATE


def test_layout_names_and_counts(tiny_dataset):
    positives = sorted(os.listdir(os.path.join(tiny_dataset, dataset.POSITIVE_DIR)))
    negatives = sorted(os.listdir(os.path.join(tiny_dataset, dataset.NEGATIVE_DIR)))
    recordings = sorted(os.listdir(os.path.join(tiny_dataset, dataset.FOREST_DIR)))
    backgrounds = sorted(os.listdir(os.path.join(tiny_dataset, dataset.BACKGROUNDS_DIR)))

    assert len(positives) == TINY_SPEC.call_groups * TINY_SPEC.clips_per_group
    assert len(negatives) == len(synthetic_data.NEGATIVE_KINDS) * TINY_SPEC.negative_groups_per_kind * TINY_SPEC.clips_per_group
    assert recordings == ["recording_00.mp3", "recording_01.mp3"]
    assert backgrounds == [f"background_{i:02d}.mp3" for i in range(TINY_SPEC.backgrounds)]
    assert {dataset.group_of(p) for p in positives} == {f"synth-call-{g:02d}" for g in range(TINY_SPEC.call_groups)}
    assert {os.path.splitext(p)[1] for p in positives + negatives} == {".wav", ".flac", ".mp3"}


def test_forest_recordings_are_48k_stereo_mp3_of_the_asked_length(tiny_dataset):
    import soundfile as sf

    info = sf.info(os.path.join(tiny_dataset, dataset.FOREST_DIR, "recording_00.mp3"))
    assert (info.samplerate, info.channels, info.format) == (48_000, 2, "MP3")
    assert info.duration == pytest.approx(TINY_SPEC.recording_seconds, abs=0.1)


def test_truth_matches_the_planted_calls(tiny_dataset):
    truth = synthetic_data.read_forest_truth(tiny_dataset)
    calls = synthetic_data.read_forest_calls(tiny_dataset)
    assert sorted(truth) == ["recording_00.mp3", "recording_01.mp3"]
    assert sum(truth.values()) > 0
    for name, count in truth.items():
        assert len(calls[name]) == count
        waveform = audio.load_audio(os.path.join(tiny_dataset, dataset.FOREST_DIR, name))
        background = np.median(_frame_rms(waveform))
        for start, end in calls[name]:
            assert end - start >= synthetic_data.CALL_SECONDS[0] and end <= TINY_SPEC.recording_seconds
            call = waveform[int(start * RATE) : int(end * RATE)]
            # Each planted call is clearly above the background and pitched like a call (300 Hz–4 kHz).
            assert 20 * np.log10(np.sqrt(np.mean(call**2)) / background) > 6
            assert 250 < dominant_frequency(call, RATE) < 4_000
        # Calls are separated by at least the minimum gap (2 s: a counter must keep them apart).
        for (_, end), (next_start, _) in zip(calls[name], calls[name][1:]):
            assert next_start - end >= synthetic_data.MIN_CALL_GAP_SECONDS


def test_positive_clips_are_low_harmonic_calls_and_negatives_are_not(tiny_dataset):
    positive_dir = os.path.join(tiny_dataset, dataset.POSITIVE_DIR)
    for name in sorted(os.listdir(positive_dir))[:6]:
        clip = audio.load_audio(os.path.join(positive_dir, name))
        assert 1.9 * RATE < len(clip) < 3.6 * RATE
        assert 250 < dominant_frequency(clip, RATE) < 4_000
    trill_dir = os.path.join(tiny_dataset, dataset.NEGATIVE_DIR)
    trill = [n for n in os.listdir(trill_dir) if n.startswith("synth-trill") and not n.endswith(".flac")][0]
    assert dominant_frequency(audio.load_audio(os.path.join(trill_dir, trill)), RATE) > 3_500


def test_same_seed_same_data_and_a_rerun_is_skipped(tmp_path):
    spec = synthetic_data.SyntheticSpec(call_groups=2, negative_groups_per_kind=1, clips_per_group=2,
                                        recordings=1, recording_seconds=20.0, backgrounds=1, seed=3)
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    synthetic_data.generate_dataset(first, spec)
    synthetic_data.generate_dataset(second, spec)
    for folder in (dataset.POSITIVE_DIR, dataset.NEGATIVE_DIR):
        for name in os.listdir(os.path.join(first, folder)):
            a = audio.load_audio(os.path.join(first, folder, name))
            b = audio.load_audio(os.path.join(second, folder, name))
            np.testing.assert_array_equal(a, b)
    assert synthetic_data.read_forest_calls(first) == synthetic_data.read_forest_calls(second)

    clip = os.path.join(first, dataset.POSITIVE_DIR, os.listdir(os.path.join(first, dataset.POSITIVE_DIR))[0])
    modified = os.path.getmtime(clip)
    synthetic_data.generate_dataset(first, spec)
    assert os.path.getmtime(clip) == modified


def _frame_rms(waveform: np.ndarray, frame: int = RATE // 10) -> np.ndarray:
    frames = waveform[: len(waveform) // frame * frame].reshape(-1, frame)
    return np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
