"""components/calibration.py: the counting operating point chosen on planted site audio.

A stand-in model (ToneScorer) scores a 700 Hz tone by how far it stands above white noise, so a quiet
call scores low, as the real model scores calls recorded in heavy in-band noise: clean clips put the
threshold at 0.5, and calibration on noisy site background must go lower and find the quiet calls.
"""

import os

import numpy as np
import pytest

from components import calibration, counting, planting
from components.threshold import choose_threshold
from model import features
from tests.helpers import write_audio

RATE = features.SAMPLE_RATE


class ToneScorer:
    """Frame scores [windows, 74] rising with the 600-800 Hz band's power over the median bin's."""

    scores_sequences = False
    scores_frames = True

    def frames(self, windows: np.ndarray) -> np.ndarray:
        frame = 640  # 40 ms, the model's frame step
        cut = windows[:, : 74 * frame].reshape(len(windows), 74, frame) * np.hanning(frame)
        power = np.abs(np.fft.rfft(cut, axis=-1)) ** 2
        snr_db = 10 * np.log10(power[..., 24:33].mean(-1) / (np.median(power, axis=-1) + 1e-12) + 1e-12)
        return (1 / (1 + np.exp(-(snr_db - 12) / 3))).astype(np.float32)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return self.frames(windows).max(axis=1)


def _call(seconds: float = 2.0) -> np.ndarray:
    return np.sin(2 * np.pi * 700 * np.arange(int(seconds * RATE)) / RATE).astype(np.float32)


def _noise(rng, seconds: float) -> np.ndarray:
    return rng.normal(0, 0.05, int(seconds * RATE)).astype(np.float32)


def _backgrounds(seed: int = 1, count: int = 3, seconds: float = 40.0):
    rng = np.random.default_rng(seed)
    return [calibration.Background(f"noise_{i}", _noise(rng, seconds)) for i in range(count)]


def test_operating_point_rule_prefers_the_default_merging_rule_then_the_middle_tied_threshold():
    default = {"gap_seconds": features.CALL_GAP_SECONDS, "min_call_seconds": features.MIN_CALL_SECONDS}
    other = {"gap_seconds": 0.3, "min_call_seconds": 0.5}
    sweep = ([{"threshold": t, **default, "wrong_calls": w} for t, w in [(0.1, 9), (0.2, 3), (0.3, 2), (0.4, 3), (0.5, 6)]]
             + [{"threshold": t, **other, "wrong_calls": w} for t, w in [(0.1, 5), (0.2, 2), (0.3, 2), (0.4, 7)]])
    # 2 is the fewest: default 0.3 and other 0.2, 0.3 tie → the default rule.
    assert calibration.choose_operating_point(sweep) == {"threshold": 0.3, **default, "wrong_calls": 2}
    # Within one call: default 0.2, 0.3, 0.4 and other 0.2, 0.3 → the default rule's middle.
    assert calibration.choose_operating_point(sweep, tie_calls=1) == {"threshold": 0.3, **default, "wrong_calls": 2}
    # When another rule is better, it wins, at the middle of its own tied thresholds (the lower of two).
    better = [dict(p, wrong_calls=0) if p["gap_seconds"] == 0.3 and p["threshold"] in (0.2, 0.3) else p for p in sweep]
    assert calibration.choose_operating_point(better)["gap_seconds"] == 0.3
    assert calibration.choose_operating_point(better)["threshold"] == 0.2
    # Of equal points the middle, however long the plateau: not its top, where faint calls start to be missed.
    plateau = [{"threshold": t, **default, "wrong_calls": 0 if t <= 0.7 else 1} for t in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert calibration.choose_operating_point(plateau)["threshold"] == 0.3
    everything = [{"threshold": t, **default, "wrong_calls": 0} for t in features.CALIBRATION_THRESHOLDS]
    assert calibration.choose_operating_point(everything)["threshold"] == 0.5


def test_calibration_chooses_the_threshold_with_the_default_merging_rule():
    result = calibration.calibrate(ToneScorer(), [_call()], _backgrounds(count=1), 0.5, recordings=3)
    assert len(result["sweep"]) == len(calibration.candidate_points(True))  # every rule is measured
    chosen = result["operating_point"]
    assert (chosen["gap_seconds"], chosen["min_call_seconds"]) == (features.CALL_GAP_SECONDS, features.MIN_CALL_SECONDS)
    assert chosen["threshold"] == result["default_rule"]["threshold"]


def test_quiet_calls_calibrate_below_the_clean_clip_threshold_and_are_counted():
    scorer = ToneScorer()
    rng = np.random.default_rng(0)
    # Clean clips: calls alone and noise alone, as eval clips are; the pipeline's rule picks 0.5.
    clips = np.stack([np.pad(_call(), (8_000, 8_000)) for _ in range(6)] + [_noise(rng, 3.0) for _ in range(6)])
    labels, scores = np.array([1] * 6 + [0] * 6), scorer(clips)
    points = [{"threshold": float(t), "errors": int(np.sum((scores >= t) != (labels == 1)))}
              for t in np.unique(np.concatenate([scores, [features.PREFERRED_THRESHOLD]]))]
    clean_threshold = choose_threshold(points)["threshold"]

    result = calibration.calibrate(scorer, [_call(s) for s in (1.5, 2.0, 2.5)], _backgrounds(), clean_threshold,
                                   recordings=12)

    point = result["operating_point"]
    assert point["source"] == calibration.SITE_CALIBRATION
    assert point["threshold"] < clean_threshold
    assert result["chosen"]["false_calls_per_hour"] == 0
    assert result["chosen"]["mae"] < result["at_eval_threshold"]["mae"]
    assert result["planted_calls"] == sum(len(t) for t in result["truth"].values()) > 10
    # A recording of the site with four calls 8 dB under the noise: found at the calibrated point only.
    background = _noise(np.random.default_rng(5), 60.0)
    quiet = planting.PlantingSpec(max_calls=4, snr_db=(-8.0, -8.0), gaps_s=((1.0, 6.0, 8.0),), first_call_by_s=3.0)
    recording, truth = planting.plant(np.random.default_rng(3), background, [_call()], quiet, RATE)
    assert len(truth) == 4
    config = counting.CountingConfig(threshold=clean_threshold)
    scored = counting.RecordingScorer(scorer, config).score(counting.whole_chunk("quiet", recording, config))
    calibrated = counting.CountingConfig(threshold=point["threshold"], gap_seconds=point["gap_seconds"],
                                         min_call_seconds=point["min_call_seconds"])
    assert len(counting.calls_in([scored], calibrated)[0]) == 4
    assert len(counting.calls_in([scored], config)[0]) < 4


def test_a_corrupt_or_too_short_background_is_reported_and_skipped(tmp_path):
    rng = np.random.default_rng(2)
    good = write_audio(str(tmp_path / "good.wav"), _noise(rng, 40.0)[:, None], RATE)
    short = write_audio(str(tmp_path / "short.wav"), _noise(rng, 1.0)[:, None], RATE)
    (tmp_path / "corrupt.mp3").write_bytes(b"\xff\xfb" + os.urandom(2_000))
    (tmp_path / "empty.flac").write_bytes(b"")
    paths = counting.list_recordings(str(tmp_path))

    usable, failures = calibration.load_backgrounds(paths)

    assert [b.name for b in usable] == [os.path.basename(good)]
    reasons = {os.path.basename(path): reason for path, reason in failures}
    assert sorted(reasons) == ["corrupt.mp3", "empty.flac", "short.wav"]
    assert reasons["short.wav"].startswith("too short") and short in [p for p, _ in failures]
    # Calibration still runs on what is left.
    result = calibration.calibrate(ToneScorer(), [_call()], usable, 0.5, recordings=4)
    assert result["backgrounds"] == ["good.wav"] and result["planted_recordings"] == 4


def test_background_stretches_are_the_lowest_scoring_ones_below_the_threshold():
    stretch = features.SELF_CALIBRATION_STRETCH_SECONDS
    times = np.arange(0, 4 * stretch, features.MODEL_FRAME_STEP_SECONDS)
    peaks = [0.02, 0.9, 0.05, 0.3]  # one per stretch
    scores = np.repeat(peaks, len(times) // 4).astype(np.float32)
    samples = np.zeros(int(4 * stretch * RATE), np.float32)
    scored = counting.ScoredChunk(0, 4 * stretch, counting.HowScored.WHOLE, times, scores)

    chosen = calibration.background_stretches([("rec.wav", samples, scored)], threshold=0.5)

    # Lower half of the four peaks (0.02, 0.05); 0.3 is below the threshold but not in the lower half.
    assert [b.name for b in chosen] == ["rec.wav@0s", f"rec.wav@{2 * stretch:.0f}s"]
    assert all(len(b.samples) == int(stretch * RATE) for b in chosen)
    # Nothing above the model's own threshold is background, whatever the quantile.
    assert calibration.background_stretches([("rec.wav", samples, scored)], threshold=0.04, quantile=1.0)[0].name \
        == "rec.wav@0s"


def test_calibration_calls_travel_in_the_model_folder(tmp_path):
    calls = [_call(1.5) * 0.5, _call(2.0) * 0.25]
    os.makedirs(tmp_path / "assets.extra")
    calibration.write_calls(str(tmp_path / "assets.extra" / calibration.CALLS_NPZ), calls)
    back = calibration.read_calls(str(tmp_path))
    assert [len(c) for c in back] == [len(c) for c in calls]
    for original, loaded in zip(calls, back):
        np.testing.assert_allclose(loaded, original, atol=1 / 32767)
    assert calibration.read_calls(str(tmp_path / "elsewhere")) == []


@pytest.mark.parametrize("frame_model, rules", [(True, 9), (False, 1)])
def test_candidates_cover_every_threshold_for_each_rule(frame_model, rules):
    points = calibration.candidate_points(frame_model)
    assert len(points) == rules * len(features.CALIBRATION_THRESHOLDS)
    assert {p["threshold"] for p in points} == set(features.CALIBRATION_THRESHOLDS)


def test_wrong_calls_are_counted_call_by_call_not_recording_by_recording():
    # One recording with a loud call at 5-7 s whose truth says 20-22 s: its count (1) is right, but the
    # detection matches no call and the call is missed, two wrong calls.
    scorer = ToneScorer()
    recording = _noise(np.random.default_rng(4), 30.0)
    recording[5 * RATE : 7 * RATE] += _call()
    config = counting.CountingConfig(threshold=0.5)
    scored = counting.RecordingScorer(scorer, config).score(counting.whole_chunk("shifted", recording, config))
    plain = counting.RecordingScorer(scorer, config).score(
        counting.whole_chunk("plain", _noise(np.random.default_rng(6), 30.0), config))
    point = {"threshold": 0.5, "gap_seconds": features.CALL_GAP_SECONDS, "min_call_seconds": features.MIN_CALL_SECONDS}

    shifted = calibration.measure(point, [(scored, [(20.0, 22.0)])], [plain], config)
    right = calibration.measure(point, [(scored, [(5.0, 7.0)])], [plain], config)

    assert (shifted["mae"], shifted["missed"], shifted["unmatched"], shifted["wrong_calls"]) == (0.0, 1, 1, 2)
    assert (right["mae"], right["missed"], right["unmatched"], right["wrong_calls"]) == (0.0, 0, 0, 0)
    assert shifted["false_calls"] == right["false_calls"] == 0
