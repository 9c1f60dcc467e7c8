"""components/counting/ and runners/count_calls.py: windows, scoring, call rules, the Beam transform on a
stand-in model, and the resumable job on the trained model."""

import csv
import functools
import json
import os
import shutil

import apache_beam as beam
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from components import audio, counting, dataset, scoring, synthetic_data
from components.counting import rules, scorer, transform, windows
from model import constants, features, preprocessing
from runners import count_calls
from tests.helpers import tone, write_audio

RATE = features.SAMPLE_RATE


def test_windows_step_by_the_hop_and_the_last_one_is_flush_with_the_end():
    assert windows.window_starts(10 * RATE, 3 * RATE, RATE * 3 // 2).tolist() == [
        0, 24_000, 48_000, 72_000, 96_000, 112_000]
    assert windows.window_starts(6 * RATE, 3 * RATE, RATE * 3 // 2).tolist() == [0, 24_000, 48_000]
    assert windows.window_starts(9 * RATE, 3 * RATE, 3 * RATE).tolist() == [0, 48_000, 96_000]  # tutorial
    assert windows.window_starts(2 * RATE, 3 * RATE, RATE).tolist() == []


def test_a_long_recording_is_cut_into_chunks_that_share_out_its_windows_and_its_time():
    config = counting.CountingConfig(0.5, chunk_windows=counting.SCORE_BATCH)
    waveform = np.ones(200 * RATE, np.float32)
    whole = counting.whole_chunk("long.wav", waveform, config)
    chunks = windows.split_chunk(whole, config)

    assert len(chunks) == 3  # 133 windows, 64 a chunk
    own = np.concatenate([chunk.starts[chunk.own[0] : chunk.own[1]] for chunk in chunks])
    np.testing.assert_array_equal(own, whole.starts)  # every window is one chunk's own, once
    for chunk in chunks:  # each has the samples of its windows, context included
        np.testing.assert_array_equal(chunk.samples, waveform[chunk.offset : chunk.starts[-1] + config.window_samples])
    assert chunks[0].keep_from_s == -np.inf and chunks[-1].keep_to_s == np.inf
    assert [a.keep_to_s for a in chunks[:-1]] == [b.keep_from_s for b in chunks[1:]]  # stretches tile the recording
    short = counting.whole_chunk("short.wav", waveform[: 60 * RATE], config)  # 39 windows: one chunk
    assert len(windows.split_chunk(short, config)) == 1 and windows.split_chunk(short, config)[0] is short


def test_consecutive_positive_windows_are_one_call_and_a_negative_window_splits_calls():
    starts = [0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0]
    scores = [0.1, 0.9, 0.95, 0.2, 0.99, 0.97, 0.1]
    assert rules.window_calls(starts, scores, 0.5, 3.0) == [(1.5, 6.0, 0.95), (6.0, 10.5, 0.99)]
    assert rules.window_calls(starts, scores, 0.999, 3.0) == []


def _track(*runs, seconds=30.0, low=0.05, high=0.97):
    """A frame track with `high` scores over the given (start_s, end_s) runs."""
    times = np.arange(int(seconds / features.MODEL_FRAME_STEP_SECONDS)) * features.MODEL_FRAME_STEP_SECONDS
    scores = np.full(len(times), low, np.float32)
    for start, end in runs:
        scores[(times >= start) & (times < end)] = high
    return times, scores


def test_frame_runs_two_seconds_apart_stay_two_calls_and_a_short_dip_does_not_split_one():
    calls = rules.frame_calls(*_track((2.0, 4.0), (6.0, 8.5), (12.0, 13.6), (14.0, 16.0)), threshold=0.9)
    # 2 s apart: two calls. 12-13.6 and 14-16 are 0.4 s apart: one call with a dip.
    assert [(s, e) for s, e, _ in calls] == [(2.0, 4.0), (6.0, 8.52), (12.0, 16.0)]
    assert all(score == pytest.approx(0.97) for _, _, score in calls)


def test_frame_runs_shorter_than_a_call_are_not_calls():
    calls = rules.frame_calls(*_track((3.0, 3.4), (10.0, 11.2)), threshold=0.9)
    assert [(s, e) for s, e, _ in calls] == [(10.0, 11.2)]
    assert rules.frame_calls(*_track((3.0, 9.0), high=0.8), threshold=0.9) == []


def test_with_a_low_threshold_a_call_is_found_by_its_peak_and_measured_by_its_whole_extent():
    # A quiet call: 1.6 s above 0.3 but above 0.5 for only 0.4 s; a 0.6 s bump above 0.3 never reaches 0.5.
    times, scores = _track((5.0, 6.6), (12.0, 12.6), high=0.35)
    scores[(times >= 5.6) & (times < 6.0)] = 0.8
    assert rules.frame_calls(times, scores, threshold=0.5) == []  # 0.4 s at or above 0.5: too short
    calls = rules.frame_calls(times, scores, threshold=0.5, low_threshold=0.3)
    assert [(s, e) for s, e, _ in calls] == [(5.0, 6.6)]
    assert calls[0][2] == pytest.approx(0.8)
    # The gap and the minimum length are parameters too: 0.4 s is a call when 0.3 s is enough.
    assert len(rules.frame_calls(times, scores, threshold=0.5, min_seconds=0.3)) == 1


def test_each_moment_takes_its_score_from_the_window_it_is_most_central_in():
    frames = features.MODEL_FRAMES
    window_a = np.full(frames, 0.1, np.float32)  # starts at 0 s
    window_b = np.full(frames, 0.9, np.float32)  # starts at 1.5 s
    times, track = windows.frame_track(np.array([0.0, 1.5]), np.stack([window_a, window_b]))
    assert times[1] - times[0] == pytest.approx(features.MODEL_FRAME_STEP_SECONDS)
    assert times[-1] == pytest.approx(1.5 + (frames - 1) * features.MODEL_FRAME_STEP_SECONDS, abs=0.021)
    # The windows overlap from 1.5 s to 3 s; the centres are 1.5 s and 3 s, so the switch is at ~2.25 s.
    np.testing.assert_allclose(track[times < 2.2], 0.1)
    np.testing.assert_allclose(track[times > 2.3], 0.9)


def test_a_stitched_spectrogram_fades_from_window_to_window_where_they_overlap():
    frames, bands = features.MEL_FRAMES, 2
    first_frames = np.array([0, 150, 300, 340])  # 1.5 s apart; the last one flush with the end
    spectrograms = np.zeros((4, frames, bands), np.float32)
    spectrograms[:, :, 0] = np.arange(4)[:, None]  # each window's own level (its band medians)
    spectrograms[:, :, 1] = first_frames[:, None] + np.arange(frames)  # the moment each frame shows

    stitched = windows.stitch_spectrograms(first_frames, spectrograms)

    assert stitched.shape == (340 + frames, bands)
    # The weights add up to one everywhere, and every frame shows the same moment in every window.
    np.testing.assert_allclose(stitched[:, 1], np.arange(len(stitched)), rtol=1e-6)
    level = stitched[:, 0]
    assert np.all(level[:151] == 0) and level[297] == 1 and level[-1] == 3  # one window alone
    assert level[223] == pytest.approx(0.5, abs=0.01)  # halfway through the overlap of windows 0 and 1
    assert np.all(np.diff(level) >= 0) and np.all(np.diff(level) < 0.05)  # no steps


class LogMelModel:
    """The Transform's log-mel step (model/preprocessing.py) at a made-up scale, giving windows'
    spectrograms both ways: each window's own (`spectrograms`) and the log-mel of any audio (`log_mels`)."""

    spectrogram_scale = (0.3, 2.0)

    def log_mels(self, audio_: np.ndarray) -> np.ndarray:
        return preprocessing.log_mel(tf.constant(audio_)).numpy()

    def spectrograms(self, windows_: np.ndarray) -> np.ndarray:
        mean, std = self.spectrogram_scale
        return ((preprocessing.remove_band_medians(preprocessing.log_mel(tf.constant(windows_))) - mean) / std).numpy()


def test_windows_spectrograms_cut_from_one_log_mel_equal_each_windows_own(monkeypatch):
    rng = np.random.default_rng(0)
    samples = 597_301  # 37.3 s: the last window, flush with the end, is off the others' 10 ms grid
    waveform = (0.01 * rng.standard_normal(samples)).astype(np.float32)
    for start_s in (2.0, 9.5, 20.0, 33.0):  # tones that move each band's median in some windows
        waveform[int(start_s * RATE) : int((start_s + 2.5) * RATE)] += tone(900.0, 2.5, RATE).reshape(-1)
    starts = windows.window_starts(samples, features.CLIP_SAMPLES, features.CLIP_SAMPLES // 2)
    assert starts[-1] % features.MEL_FRAME_STEP != 0 and starts[-2] % features.MEL_FRAME_STEP == 0
    # Pieces of 7 s, 4 per call: the 3,733 frames take 6 pieces in 2 calls, which must join exactly.
    monkeypatch.setattr(scorer, "LOG_MEL_PIECE_FRAMES", 700)
    monkeypatch.setattr(scorer, "SCORE_BATCH", 5)  # medians and scale in 5 batches, in place
    model = LogMelModel()

    cut = scorer.window_spectrograms(waveform, starts, model)

    own = model.spectrograms(np.stack([waveform[s : s + features.CLIP_SAMPLES] for s in starts]))
    assert cut.shape == own.shape == (len(starts), features.MEL_FRAMES, features.MEL_BANDS)
    np.testing.assert_allclose(cut, own, atol=2e-5)


class ToneModel:
    """A stand-in model with the real one's signatures: a frame scores high where a 700 Hz tone stands
    above white noise (its 600-800 Hz power over the median bin's, in dB). Its "spectrogram" holds that
    ratio per 10 ms frame in band 0, so it scores whole recordings as the real model does."""

    scores_frames = True
    scores_log_mel = False  # its "spectrogram" is not a log-mel with band medians removed

    def __init__(self, scores_sequences: bool = True):
        self.scores_sequences = scores_sequences

    def spectrograms(self, windows_: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(windows_, features.MEL_FRAME_LENGTH, axis=1)
        frames = frames[:, :: features.MEL_FRAME_STEP] * np.hanning(features.MEL_FRAME_LENGTH)  # [n, 297, 512]
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # 31.25 Hz bins
        snr_db = 10 * np.log10(power[..., 19:26].mean(-1) / (np.median(power, axis=-1) + 1e-12) + 1e-12)
        spectrograms = np.zeros((*snr_db.shape, features.MEL_BANDS), np.float32)
        spectrograms[..., 0] = snr_db
        return spectrograms

    def sequence_frames(self, spectrograms: np.ndarray) -> np.ndarray:
        pooled = features.MODEL_FRAME_POOLING
        usable = spectrograms.shape[1] // pooled * pooled
        snr_db = spectrograms[:, :usable, 0].reshape(len(spectrograms), -1, pooled).mean(-1)
        return (1 / (1 + np.exp(-(snr_db - 12) / 3))).astype(np.float32)

    def frames(self, windows_: np.ndarray) -> np.ndarray:
        return self.sequence_frames(self.spectrograms(windows_))


def test_how_a_recording_is_scored_is_decided_once_from_the_model_and_the_config():
    config = counting.CountingConfig(0.5)
    assert scorer.how_scored(ToneModel(), config) is counting.HowScored.WHOLE
    assert scorer.how_scored(ToneModel(), counting.CountingConfig(0.5, whole_recordings=False)) \
        is counting.HowScored.WINDOW_FRAMES
    # Whole only where the windows' spectrograms overlap: 3 s hops leave 3 frames between them, and
    # 1.2345 s is not on the 10 ms grid.
    for hop in (3.0, 1.2345):
        assert scorer.how_scored(ToneModel(), counting.CountingConfig(0.5, hop_seconds=hop)) \
            is counting.HowScored.WINDOW_FRAMES
    assert scorer.how_scored(ToneModel(scores_sequences=False), config) is counting.HowScored.WINDOW_FRAMES

    class WindowModel:  # the tutorial's: one score per window
        scores_sequences = scores_frames = False

    assert scorer.how_scored(WindowModel(), config) is counting.HowScored.WINDOW_SCORES
    assert counting.RecordingScorer(WindowModel(), config).how is counting.HowScored.WINDOW_SCORES


def test_warming_up_runs_the_signatures_a_scorer_counts_with():
    class Recorder(ToneModel):
        def __init__(self, scores_sequences):
            super().__init__(scores_sequences)
            self.called = []

        def spectrograms(self, windows_):
            self.called.append(("spectrograms", windows_.shape))
            return super().spectrograms(windows_)

        def sequence_frames(self, spectrograms):
            self.called.append(("sequence_frames", spectrograms.shape[0]))
            return super().sequence_frames(spectrograms)

    batch = (counting.SCORE_BATCH, features.CLIP_SAMPLES)
    whole = Recorder(scores_sequences=True)
    counting.RecordingScorer(whole, counting.CountingConfig(0.5)).warm_up()
    assert whole.called == [("spectrograms", batch), ("sequence_frames", 1)]
    by_window = Recorder(scores_sequences=False)
    counting.RecordingScorer(by_window, counting.CountingConfig(0.5)).warm_up()
    assert by_window.called[0] == ("spectrograms", batch)  # through frames(), in the batch shape


def test_the_networks_see_a_three_minute_recording_in_one_go_and_a_long_one_in_equal_pieces():
    class ShapeRecorder:  # notes what it is given; a model frame's score is its first spectrogram frame's value
        def __init__(self):
            self.shapes = []

        def sequence_frames(self, spectrograms):
            self.shapes.append(spectrograms.shape)
            return spectrograms[:, : spectrograms.shape[1] // 4 * 4 : 4, 0]

    bands = features.MEL_BANDS
    three_minutes = 18_000
    model = ShapeRecorder()
    scorer.sequence_scores(np.zeros((three_minutes, bands), np.float32), model)
    assert model.shapes == [(1, three_minutes, bands)]

    one_hour = 360_001  # one frame more than makes a model frame
    spectrogram = np.repeat(np.arange(one_hour, dtype=np.float32)[:, None], bands, axis=1)
    model = ShapeRecorder()
    scores = scorer.sequence_scores(spectrogram, model)
    np.testing.assert_array_equal(scores, np.arange(0, 360_000, 4))  # every model frame, once, in order
    lengths = [shape[1] for shape in model.shapes]
    assert len(set(lengths[:-1])) == 1 and lengths[-1] == lengths[0] + 1  # the last one also sees the odd frame
    assert lengths[0] <= scorer.PIECE_FRAMES + 2 * scorer.PIECE_MARGIN_FRAMES
    assert sum(lengths) < 1.02 * one_hour  # equal pieces: only the margins are seen twice


def test_recordings_are_listed_from_a_folder_or_a_glob(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.mp3", "y.WAV", "z.flac", "notes.csv", ".hidden.mp3"):
        (tmp_path / name).write_bytes(b"")
    found = [os.path.relpath(p, tmp_path) for p in counting.list_recordings(str(tmp_path))]
    assert found == ["a/x.mp3", "y.WAV", "z.flac"]
    assert [os.path.basename(p) for p in counting.list_recordings(str(tmp_path / "*.flac"))] == ["z.flac"]


# Tone recordings for the transform test: {name: (seconds, starts of 2 s calls)}. The long one is two
# chunks of 64 windows, with a call across the join (the chunks' stretches meet at 96.75 s).
TONE_RECORDINGS = {"calls.wav": (30.0, [4.0, 12.0, 21.0]), "quiet.wav": (20.0, []),
                   "long.wav": (110.0, [10.0, 50.0, 95.5])}


def _write_tone_recordings(folder) -> list:
    rng = np.random.default_rng(4)
    paths = []
    for name, (seconds, starts) in TONE_RECORDINGS.items():
        samples = rng.normal(0, 0.05, int(seconds * RATE)).astype(np.float32)
        for start in starts:
            samples[int(start * RATE) : int((start + 2.0) * RATE)] += tone(700, 2.0, RATE)[:, 0]
        paths.append(write_audio(str(folder / name), samples, RATE))
    (folder / "notes.mp3").write_text("a field note, not a recording\n" * 100)
    return paths + [str(folder / "notes.mp3")]


@pytest.mark.parametrize("whole_recordings", [True, False], ids=["whole", "window-by-window"])
def test_the_counting_transform_finds_each_call_once_and_counts_files_failures_and_audio(tmp_path, whole_recordings):
    paths = _write_tone_recordings(tmp_path)
    config = counting.CountingConfig(0.5, chunk_windows=counting.SCORE_BATCH, whole_recordings=whole_recordings)
    handler = counting.ChunkScorerHandler(functools.partial(counting.RecordingScorer, ToneModel(), config))

    def found_every_call(results):
        by_name = {os.path.basename(r["recording"]): r for r in results}
        assert sorted(by_name) == sorted([*TONE_RECORDINGS, "notes.mp3"])
        assert by_name["notes.mp3"]["reason"] and by_name["notes.mp3"]["calls"] is None
        for name, (seconds, starts) in TONE_RECORDINGS.items():
            result = by_name[name]
            assert result["reason"] is None and result["seconds"] == pytest.approx(seconds)
            assert result["calls"] == len(starts) == len(result["detections"]), name
            for (start, end, score), planted in zip(result["detections"], starts):
                assert start == pytest.approx(planted, abs=0.1) and end == pytest.approx(planted + 2.0, abs=0.1)
                assert score > 0.9

    pipeline = TestPipeline()
    results = pipeline | beam.Create(paths) | counting.CountCalls(config, handler)
    assert_that(results, found_every_call)
    result = pipeline.run()

    counters = counting.counters(result)
    assert counters["files"] == 4 and counters["failed"] == 1
    assert counters["audio_seconds"] == sum(seconds for seconds, _ in TONE_RECORDINGS.values())
    assert counters["num_inferences"] == 4  # RunInference's: one chunk each, two for the long one
    assert not os.path.exists(tmp_path / counting.PARTS_DIR)  # no output dir: nothing written


def test_a_long_recording_is_decoded_chunk_by_chunk_where_it_is_scored_with_the_calls_it_had_decoded_whole(tmp_path):
    rng = np.random.default_rng(5)
    rate, (seconds, starts) = 44_100, TONE_RECORDINGS["long.wav"]  # resampled: load_range's harder case
    stereo = rng.normal(0, 0.05, (int(seconds * rate), 2)).astype(np.float32)
    for start in starts:
        stereo[int(start * rate) : int((start + 2.0) * rate)] += tone(700, 2.0, rate, channels=2)
    path = write_audio(str(tmp_path / "long.flac"), stereo, rate)
    silent = str(tmp_path / "silent.flac")
    sf.write(silent, np.zeros((int(seconds * rate), 2), dtype=np.float32), rate)
    config = counting.CountingConfig(0.5, chunk_windows=counting.SCORE_BATCH)

    # Decoding sends out chunk specs without samples, the chunks of the whole decoded recording otherwise.
    specs = [output.value[1] for output in transform.DecodeRecordingFn(config).process(path)]
    before = windows.split_chunk(counting.whole_chunk(path, audio.load_audio(path), config), config)
    assert len(specs) == len(before) == 2 and all(spec.samples is None for spec in specs)
    for spec, chunk in zip(specs, before):
        loaded = transform.load_chunk((path, spec), config.window_samples)[1]
        assert (loaded.first_window, loaded.offset, loaded.own, loaded.seconds, loaded.keep_from_s, loaded.keep_to_s) \
            == (chunk.first_window, chunk.offset, chunk.own, chunk.seconds, chunk.keep_from_s, chunk.keep_to_s)
        np.testing.assert_array_equal(loaded.starts, chunk.starts)
        np.testing.assert_allclose(loaded.samples, chunk.samples, rtol=0, atol=1e-6)
    [(_, quiet)] = transform.DecodeRecordingFn(config).process(silent)  # silence: one chunk, no windows
    assert len(quiet.starts) == 0 and quiet.seconds == pytest.approx(seconds)

    results = {}
    for name, chunk_windows in (("split", counting.SCORE_BATCH), ("whole", 7 * counting.SCORE_BATCH)):
        config = counting.CountingConfig(0.5, chunk_windows=chunk_windows)
        os.makedirs(tmp_path / name / counting.PARTS_DIR)
        handler = counting.ChunkScorerHandler(functools.partial(counting.RecordingScorer, ToneModel(), config))
        with TestPipeline() as pipeline:
            _ = pipeline | beam.Create([path, silent]) | counting.CountCalls(config, handler, str(tmp_path / name))
        results[name] = counting.load_parts(str(tmp_path / name))
    assert results["split"][path]["calls"] == results["whole"][path]["calls"] == len(starts)
    np.testing.assert_allclose(results["split"][path]["detections"], results["whole"][path]["detections"], atol=1e-4)
    assert results["split"][silent]["calls"] == results["whole"][silent]["calls"] == 0


@pytest.fixture(scope="module")
def recordings(trained_pipeline, tmp_path_factory):
    """The small default data's recordings plus every kind of bad file and a silent one."""
    data_root, _, _, _ = trained_pipeline
    folder = tmp_path_factory.mktemp("recordings")
    forest = os.path.join(data_root, dataset.FOREST_DIR)
    for name in os.listdir(forest):
        shutil.copy(os.path.join(forest, name), folder / name)
    good = (folder / "recording_00.mp3").read_bytes()
    (folder / "corrupt.mp3").write_bytes(good[:400] + np.random.default_rng(1).bytes(50_000))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.mp3").write_text("this is a field note, not a recording\n" * 100)
    write_audio(str(folder / "short.wav"), tone(700, 1.0, 44_100), 44_100)
    sf.write(str(folder / "silent.flac"), np.zeros((10 * 44_100, 2), dtype=np.float32), 44_100)
    return str(folder), synthetic_data.read_forest_truth(data_root)


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _counts(output_dir):
    """{recording: calls} from a counting job's counts.csv."""
    return {row["recording"]: int(row["capuchin_calls"]) for row in _read(os.path.join(output_dir, counting.COUNTS_CSV))}


def _model(trained_pipeline):
    return os.path.join(trained_pipeline[1], "serving_model")


def test_counts_equal_the_planted_truth_and_bad_files_are_listed(trained_pipeline, recordings, tmp_path):
    folder, truth = recordings
    out = str(tmp_path / "counts")

    summary = count_calls.run(["--model", _model(trained_pipeline), "--recordings", folder, "--output-dir", out,
                               "--plots"])

    rows = _read(os.path.join(out, counting.COUNTS_CSV))
    counts = {row["recording"]: int(row["capuchin_calls"]) for row in rows}
    assert counts == {**truth, "silent.flac": 0}
    # Each recording lasts a minute but silent.flac (10 s).
    assert {row["recording"]: float(row["calls_per_hour"]) for row in rows} == pytest.approx(
        {**{name: 60.0 * calls for name, calls in truth.items()}, "silent.flac": 0.0}, rel=2e-3)
    failures = {os.path.basename(r["recording"]): r["reason"] for r in _read(os.path.join(out, counting.FAILURES_CSV))}
    assert set(failures) == {"corrupt.mp3", "empty.wav", "text.mp3", "short.wav"}
    assert "too short" in failures["short.wav"] and "empty" in failures["empty.wav"]
    assert "not audio" in failures["text.mp3"]
    detections = _read(os.path.join(out, counting.DETECTIONS_CSV))
    assert len(detections) == sum(truth.values())
    # Each detection is a call's length and lies on the one planted call it stands for.
    planted = synthetic_data.read_forest_calls(trained_pipeline[0])
    shortest = scoring.read_operating_point(scoring.resolve_model_dir(_model(trained_pipeline)))["min_call_seconds"]
    for d in detections:
        start, end = float(d["start_s"]), float(d["end_s"])
        assert end - start >= shortest
        assert sum(start < call_end and end > call_start for call_start, call_end in planted[d["recording"]]) == 1
    selections = open(os.path.join(out, counting.SELECTIONS_TXT)).read().splitlines()
    assert len(selections) == 1 + sum(truth.values()) and selections[0].startswith("Selection\tView")
    assert summary["files"] == len(truth) + 5 and summary["failures"] == 4 and summary["calls"] == sum(truth.values())
    assert summary["audio_hours"] == pytest.approx((60 * len(truth) + 10) / 3600, abs=1e-3)
    # The summary says which model, operating point, hop and code counted.
    assert summary["model_version"] == os.path.basename(summary["model"]) and summary["model_version"].isdigit()
    assert summary["hop_seconds"] == features.HOP_SECONDS and summary["code_version"].startswith("0.1.0")
    assert sorted(os.listdir(os.path.join(out, counting.PLOTS_DIR))) == sorted(
        f"{name}.png" for name in (*truth, "silent.flac"))

    # A second run into the same folder finds everything done and changes nothing.
    before = {name: open(os.path.join(out, name)).read() for name in (counting.COUNTS_CSV, counting.DETECTIONS_CSV)}
    again = count_calls.run(["--model", _model(trained_pipeline), "--recordings", folder, "--output-dir", out])
    assert again["new_this_run"] == 0 and again["calls"] == summary["calls"]
    assert {name: open(os.path.join(out, name)).read() for name in before} == before


def test_calibrating_on_the_recordings_counted_records_what_it_chose_and_why(trained_pipeline, recordings, tmp_path):
    folder, truth = recordings
    out = str(tmp_path / "calibrated")

    summary = count_calls.run(["--model", _model(trained_pipeline), "--recordings", folder, "--output-dir", out,
                               "--calibrate"])

    point = summary["operating_point"]
    assert point["source"] == "calibrated on the recordings counted" and "lowest" in point["why"]
    with open(os.path.join(out, "calibration.json")) as f:
        result = json.load(f)
    assert {k: result["operating_point"][k] for k in ("threshold", "gap_seconds", "min_call_seconds")} == \
        {k: point[k] for k in ("threshold", "gap_seconds", "min_call_seconds")}
    assert summary["threshold"] == point["threshold"]
    # The background is the lowest-scoring stretches of the good recordings; the bad files are listed.
    assert result["backgrounds"] and all(name.split("@")[0] in truth or name.startswith("silent")
                                         for name in result["backgrounds"])
    assert {os.path.basename(p) for p, _ in result["failures"]} >= {"corrupt.mp3", "empty.wav", "text.mp3"}
    assert os.path.getsize(os.path.join(out, "calibration.png")) > 1_000
    counts = _counts(out)
    # Counted at the operating point it recorded: the counts of a run given that threshold.
    given = str(tmp_path / "given")
    count_calls.run(["--model", _model(trained_pipeline), "--recordings", folder, "--output-dir", given,
                     "--threshold", str(point["threshold"])])
    assert counts == _counts(given)
    # Within a call of the truth: the tiny test model's thresholds tie on its calibration recordings and the
    # highest is taken, which may miss a faint call on another machine's training (how well this counts is
    # bench/accuracy.py --self-calibration's to measure).
    assert counts["silent.flac"] == 0 and all(abs(counts[name] - calls) <= 1 for name, calls in truth.items())


def test_a_killed_run_resumes_to_the_same_files_as_an_uninterrupted_one(trained_pipeline, recordings, tmp_path):
    folder, _ = recordings
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    args = ["--model", _model(trained_pipeline), "--recordings", folder]
    count_calls.run(args + ["--output-dir", str(whole)])
    # What a killed run leaves: the parts of the recordings it finished, one half-written, no tables.
    parts = sorted(os.listdir(whole / counting.PARTS_DIR))
    (resumed / counting.PARTS_DIR).mkdir(parents=True)
    for name in parts[:3]:
        shutil.copy(whole / counting.PARTS_DIR / name, resumed / counting.PARTS_DIR / name)
    half = (whole / counting.PARTS_DIR / parts[3]).read_text()[:40]
    (resumed / counting.PARTS_DIR / f"{parts[3]}.tmp4242").write_text(half)

    summary = count_calls.run(args + ["--output-dir", str(resumed)])

    assert summary["new_this_run"] == len(os.listdir(folder)) - 3 == len(parts) - 3
    assert sorted(os.listdir(resumed / counting.PARTS_DIR)) == parts  # the half-written part is gone
    for name in (counting.COUNTS_CSV, counting.DETECTIONS_CSV, counting.FAILURES_CSV, counting.SELECTIONS_TXT):
        assert (resumed / name).read_text() == (whole / name).read_text(), name


def test_the_pipeline_counts_after_the_push_and_records_it_in_ml_metadata(trained_pipeline):
    data_root, output_dir, good, _ = trained_pipeline
    truth = synthetic_data.read_forest_truth(data_root)
    counter = next(c for c in good["components"] if c["component"] == "CallCounter")
    inputs = {a["key"]: a for a in counter["inputs"]}
    assert inputs["pushed_model"]["properties"]["pushed"] == 1
    assert inputs["pushed_model"]["properties"]["pushed_destination"] == good["pushed_to"]
    assert inputs["calibration"]["properties"]["threshold"] == pytest.approx(good["calibration"]["threshold"])
    counts = _counts(good["counts_uri"])
    assert counts == truth
    assert good["counts"]["calls"] == sum(truth.values())


def test_local_runs_use_every_core_unless_beam_args_say_otherwise():
    local = counting.with_local_parallelism(None)
    assert "--direct_running_mode=multi_threading" in local
    assert f"--direct_num_workers={os.cpu_count() + counting.job.EXTRA_WORKER_THREADS}" in local
    assert counting.with_local_parallelism(["--runner=DataflowRunner"]) == ["--runner=DataflowRunner"]
    chosen = ["--direct_running_mode=in_memory"]
    assert counting.with_local_parallelism(chosen) == chosen


def test_the_model_is_preloaded_only_where_the_workers_are_threads_of_this_process():
    assert counting.scores_in_this_process(counting.with_local_parallelism(None))
    assert counting.scores_in_this_process(["--direct_running_mode=in_memory"])
    assert not counting.scores_in_this_process(["--direct_running_mode=multi_processing"])
    assert not counting.scores_in_this_process(["--runner=DataflowRunner", "--project=p"])


@pytest.mark.parametrize("frames,band_hz", [(74, features.MEL_UPPER_HZ), (1, features.FULL_BAND_HZ), (None, features.FULL_BAND_HZ)])
def test_counting_decodes_the_band_the_models_frames_signature_says_it_reads(tmp_path, frames, band_hz):
    """A frame model (the log-mel's) reads up to 5 kHz; one score per window (the tutorial's |STFT|), or no
    frames signature (older models), the whole band."""
    module = tf.Module()
    module.serve = tf.function(lambda audio: {constants.PREDICTION_KEY: tf.reduce_mean(audio, 1, keepdims=True)},
                               input_signature=[tf.TensorSpec([None, features.CLIP_SAMPLES], tf.float32)])
    signatures = {constants.AUDIO_SIGNATURE: module.serve}
    if frames:
        module.frames = tf.function(
            lambda audio: {constants.FRAME_PREDICTION_KEY: tf.reshape(audio[:, : 100 * frames], [-1, frames, 100])[:, :, 0]},
            input_signature=[tf.TensorSpec([None, features.CLIP_SAMPLES], tf.float32)])
        signatures[constants.FRAMES_SIGNATURE] = module.frames
    tf.saved_model.save(module, str(tmp_path), signatures=signatures)
    assert scoring.band_read(str(tmp_path)) == band_hz


def test_every_worker_gets_the_process_one_model_for_its_way_of_counting(trained_pipeline):
    model_dir = scoring.resolve_model_dir(_model(trained_pipeline))
    assert scoring.band_read(model_dir) == features.MEL_UPPER_HZ
    whole = counting.warm_scorer(model_dir, counting.CountingConfig(0.5))
    by_window = counting.warm_scorer(model_dir, counting.CountingConfig(0.5, whole_recordings=False))
    assert (whole.how, by_window.how) == (counting.HowScored.WHOLE, counting.HowScored.WINDOW_FRAMES)
    assert by_window.model is whole.model is counting.warm_scorer(model_dir, counting.CountingConfig(0.9)).model


def test_a_recording_scored_whole_matches_its_windows_where_they_see_the_same(trained_pipeline):
    data_root, _, _, _ = trained_pipeline
    model = scoring.WindowScorer(_model(trained_pipeline), bfloat16=False)  # the window signatures' arithmetic
    assert model.scores_sequences and model.scores_frames
    waveform = audio.load_audio(os.path.join(data_root, dataset.FOREST_DIR, "recording_00.mp3"))
    window, hop = features.CLIP_SAMPLES, features.CLIP_SAMPLES // 2

    # One window: the same frames as the window signature (to float rounding).
    one = waveform[:window]
    times, scores = scorer.recording_track(one, np.array([0]), model)
    np.testing.assert_allclose(scores, model.frames(one[None])[0], atol=1e-4)
    np.testing.assert_allclose(times, np.arange(features.MODEL_FRAMES) * features.MODEL_FRAME_STEP_SECONDS)

    # A whole recording: on the same 40 ms grid as the window-by-window track, and the pieces the
    # networks run over join exactly, however long they are.
    starts = windows.window_starts(len(waveform), window, hop)
    times, scores = scorer.recording_track(waveform, starts, model)
    window_times, _ = windows.frame_track(starts / RATE, scorer.score_windows(waveform, starts, model, window))
    spectrogram_frames = (len(waveform) - features.MEL_FRAME_LENGTH) // features.MEL_FRAME_STEP + 1
    assert len(times) == spectrogram_frames // features.MODEL_FRAME_POOLING  # the whole recording
    np.testing.assert_allclose(times, window_times[: len(times)], atol=1e-9)
    _, in_small_pieces = scorer.recording_track(waveform, starts, model, piece_frames=512)
    np.testing.assert_allclose(in_small_pieces, scores, atol=1e-5)

    # The model exports its log-mel and scale: the windows' spectrograms cut from one log-mel of the
    # recording are the Transform graph's of each window, and the track the same.
    assert model.scores_log_mel and model.spectrogram_scale[1] > 0
    own = model.spectrograms(np.stack([waveform[s : s + window] for s in starts]))
    np.testing.assert_allclose(scorer.window_spectrograms(waveform, starts, model), own, atol=1e-4)
    _, from_one_log_mel = scorer.recording_track(waveform, starts, model, log_mel_once=True)
    np.testing.assert_allclose(from_one_log_mel, scores, atol=1e-4)

    # Where the CPU computes bfloat16, the networks run in it by default: the same spectrograms to the bit,
    # and nearly the same track (within 0.01 on the real recordings).
    in_bfloat16 = scoring.WindowScorer(_model(trained_pipeline))
    assert in_bfloat16.bfloat16 == scoring.cpu_has_bfloat16()
    first = np.stack([waveform[s : s + window] for s in starts[:4]])
    np.testing.assert_array_equal(in_bfloat16.spectrograms(first), model.spectrograms(first))
    np.testing.assert_array_equal(in_bfloat16.log_mels(first), model.log_mels(first))
    _, track = scorer.recording_track(waveform, starts, in_bfloat16, log_mel_once=True)
    np.testing.assert_allclose(track, scores, atol=0.02)


@pytest.mark.parametrize("whole_recordings", [True, False], ids=["whole", "window-by-window"])
def test_a_long_recording_split_into_chunks_gives_the_same_detections_as_unsplit(trained_pipeline, tmp_path,
                                                                                 whole_recordings):
    data_root, _, _, _ = trained_pipeline
    forest = os.path.join(data_root, dataset.FOREST_DIR)
    joined = np.concatenate([sf.read(os.path.join(forest, name), dtype="float32")[0]
                             for name in sorted(os.listdir(forest))])  # 3 minutes, 119 windows
    folder = tmp_path / "long"
    folder.mkdir()
    sf.write(str(folder / "joined.flac"), joined, 48_000)
    model = _model(trained_pipeline)

    whole = counting.run_counting(model, str(folder), str(tmp_path / "whole"), whole_recordings=whole_recordings)
    split = counting.run_counting(model, str(folder), str(tmp_path / "split"), chunk_windows=counting.SCORE_BATCH,
                                  whole_recordings=whole_recordings)

    detections = [_read(os.path.join(tmp_path / name, counting.DETECTIONS_CSV)) for name in ("whole", "split")]
    assert detections[0] == detections[1]
    assert whole["calls"] == split["calls"] == sum(synthetic_data.read_forest_truth(data_root).values())
    with pytest.raises(ValueError, match="multiple"):
        counting.run_counting(model, str(folder), str(tmp_path / "bad"), chunk_windows=100)


def test_recordings_and_results_on_a_remote_file_system(trained_pipeline, recordings):
    """TensorFlow's in-memory ram:// file system stands in for gs:// (no network in tests)."""
    import tensorflow as tf

    folder, truth = recordings
    remote_recordings, remote_out = "ram://count_test/recordings", "ram://count_test/out"
    tf.io.gfile.makedirs(remote_recordings)
    for name in ("recording_00.mp3", "recording_01.mp3", "text.mp3"):
        tf.io.gfile.copy(os.path.join(folder, name), f"{remote_recordings}/{name}", overwrite=True)

    summary = counting.run_counting(_model(trained_pipeline), remote_recordings, remote_out)

    with tf.io.gfile.GFile(f"{remote_out}/{counting.COUNTS_CSV}") as f:
        counts = {row["recording"]: int(row["capuchin_calls"]) for row in csv.DictReader(f)}
    assert counts == {name: truth[name] for name in ("recording_00.mp3", "recording_01.mp3")}
    assert summary["failures"] == 1
