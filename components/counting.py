"""Counting calls in recordings: window, score with the pushed model, turn the scores into calls.

Windows of 3 s every `hop` seconds are cut from each recording. The default model scores each 40 ms
frame; every moment of the recording takes its score from the window it sits most central in, and a
call is a run of frames at or above the threshold (runs less than CALL_GAP_SECONDS apart joined, runs
shorter than MIN_CALL_SECONDS dropped). Models exported since whole-recording scoring get there in half
the network time: the windows' spectrograms (each with its own band medians removed, as in training)
are stitched into one spectrogram of the recording, and the networks run once over it
(`recording_track`) instead of once per overlapping window (`score_windows` + `frame_track`, still
used for older models and with `whole_recordings=False`). A model with one score per window (the
tutorial's) counts the tutorial's way: each run of consecutive windows at or above the threshold is one call.

The pure parts (windows, merging, output tables) are plain functions; `CountCalls` is the composite Beam
transform (decode and chunk each recording, score the chunks, merge each recording's scores into calls)
and `run_counting` the whole resumable job:

    OUT/counts.csv        recording,capuchin_calls      one row per input file that could be read
    OUT/detections.csv    recording,start_s,end_s,score one row per call
    OUT/selections.txt    Raven selection table of all calls (Begin File column names the recording)
    OUT/failures.csv      recording,reason              files that could not be counted
    OUT/summary.json      files, audio hours, calls, wall time, realtime factor
    OUT/parts/            one JSON per finished recording: what makes a re-run skip it and a killed run resume
"""

import csv
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from components import audio, files, on_dask, scoring
from model import features

COUNTS_CSV = "counts.csv"
DETECTIONS_CSV = "detections.csv"
SELECTIONS_TXT = "selections.txt"
FAILURES_CSV = "failures.csv"
SUMMARY_JSON = "summary.json"
PARTS_DIR = "parts"
PLOTS_DIR = "plots"
CHUNKS_TAG = "chunks"
SCORE_BATCH = 64  # windows per model call: ~12 MB of audio, whatever the recording's length
# Whole-recording scoring runs the networks over the stitched spectrogram in pieces of at most ~3 min
# (a typical field recording is one piece), each with 1.28 s of context on either side; one piece per
# model call holds ~60 MB of the first convolution's output. The networks see about 0.8 s each way
# (3x3 convolutions pooled by 4 in time, then dilated convolutions over +-16 model frames), so the
# pieces join exactly.
PIECE_FRAMES = 18_432
PIECE_MARGIN_FRAMES = 128
# A long recording's pieces are of equal length, rounded up to this many frames, so that recordings of
# about the same length give pieces of the same shape (TensorFlow prepares each new shape afresh).
PIECE_ROUNDING_FRAMES = 64
_log = logging.getLogger("capuchin.counting")
# Below this RMS (about -80 dBFS) a recording holds nothing to hear: counted as 0 without scoring.
SILENCE_RMS = 1e-4


@dataclasses.dataclass(frozen=True)
class CountingConfig:
    threshold: float
    hop_seconds: float = features.HOP_SECONDS
    window_seconds: float = features.CLIP_SECONDS
    # Windows per chunk: 7 x 64 = 448 windows, about 11 minutes at a 1.5 s hop. Longer recordings are
    # scored in several chunks, in parallel where there are workers.
    chunk_windows: int = 7 * SCORE_BATCH
    # Score whole recordings where the model can (see the module's docstring); False: window by window.
    whole_recordings: bool = True
    # The merging rule of frame-scoring models (frame_calls); site calibration may choose other values.
    gap_seconds: float = features.CALL_GAP_SECONDS
    min_call_seconds: float = features.MIN_CALL_SECONDS

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * features.SAMPLE_RATE))

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * features.SAMPLE_RATE))

    def stitches(self, scorer) -> bool:
        """Whether recordings are scored whole: the model can, every hop starts a spectrogram frame, and
        neighbouring windows' spectrograms overlap (3 s windows every 3 s leave 3 frames between them)."""
        hop_frames, remainder = divmod(self.hop_samples, features.MEL_FRAME_STEP)
        return (self.whole_recordings and scorer.scores_sequences and remainder == 0
                and self.window_samples == features.CLIP_SAMPLES and hop_frames < features.MEL_FRAMES)


def list_recordings(source: str) -> List[str]:
    """Audio files in a folder (recursive) or matching a glob, sorted; local or gs://.
    Other files are not recordings."""
    paths = files.walk_files(source) if files.isdir(source) else files.glob(source)
    return sorted(
        p for p in paths if os.path.splitext(p)[1].lower() in features.AUDIO_EXTENSIONS and not files.isdir(p)
    )


def window_starts(num_samples: int, window: int, hop: int) -> np.ndarray:
    """Start samples of the windows covering a recording.

    Windows step by `hop`; when the last one would run past the end, one more window is placed flush
    with the end (shifted back), so the tail is scored and no window is padded. A recording shorter
    than one window has none.
    """
    if num_samples < window:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, num_samples - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < num_samples:
        starts = np.append(starts, num_samples - window)
    return starts


def _through_in_batches(signature, waveform: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """`signature` (a scorer method) of the windows starting at `starts` (samples), concatenated.
    Windows are views, copied SCORE_BATCH at a time."""
    windows = np.lib.stride_tricks.sliding_window_view(waveform, window)  # no copy
    return np.concatenate([
        signature(np.ascontiguousarray(windows[starts[i : i + SCORE_BATCH]]))
        for i in range(0, len(starts), SCORE_BATCH)
    ])


def score_windows(waveform: np.ndarray, starts: np.ndarray, scorer, window: int) -> np.ndarray:
    """Frame scores [windows, frames] of the windows starting at `starts` (samples), through
    `scorer.frames`."""
    if len(starts) == 0:
        return np.zeros((0, 1), dtype=np.float32)
    return _through_in_batches(scorer.frames, waveform, starts, window)


def frame_track(starts_s: np.ndarray, frame_scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One score per model frame of the whole recording: (frame start times, scores).

    Overlapping windows score the same moment more than once; each moment keeps the score of the
    window in which it is most central, where the model sees the most context around it.
    """
    step = features.MODEL_FRAME_STEP_SECONDS
    frames = frame_scores.shape[1]
    offsets = np.arange(frames) * step  # frame starts within a window
    from_centre = np.abs(offsets + features.MODEL_FRAME_SPAN_SECONDS / 2 - features.CLIP_SECONDS / 2)
    # A window's frames fill consecutive slots from the one nearest its start (hops need not be whole frames).
    first_slots = np.floor(np.asarray(starts_s) / step + 0.5).astype(np.int64)
    slots = first_slots[:, None] + np.arange(frames)[None, :]  # [windows, frames]
    length = int(slots.max()) + 1 if slots.size else 0
    track = np.zeros(length, dtype=np.float32)
    closest = np.full(length, np.inf)
    for window_slots, scores in zip(slots, frame_scores):
        better = from_centre < closest[window_slots]
        track[window_slots[better]] = scores[better]
        closest[window_slots[better]] = from_centre[better]
    return np.arange(length) * step, track


def stitch_spectrograms(first_frames: np.ndarray, spectrograms: np.ndarray) -> np.ndarray:
    """One spectrogram of a whole recording from its windows' spectrograms.

    Each window's spectrogram has that window's band medians removed, as in training. Where two windows
    overlap, the stitched frames fade linearly from the one to the other: overlapping windows hold the
    same log-mel frames, so this is each frame with band medians that glide from window to window.
    (Taking each frame from one window instead leaves steps at the joins, where the networks missed
    quiet calls: 5 more of fold 0's 79 planted calls in bench/accuracy.py.)

    Args:
      first_frames: int[windows], increasing: the spectrogram frame each window starts at, counted from
        the first window's start.
      spectrograms: float32[windows, frames, bands].

    Returns:
      float32[first_frames[-1] + frames, bands].
    """
    windows, frames, bands = spectrograms.shape
    centres = first_frames + frames // 2
    # Window k fades into window k+1 over fade_starts[k]..fade_ends[k], inside both and between their centres.
    fade_starts = np.maximum(centres[:-1], first_frames[1:])
    fade_ends = np.minimum(centres[1:], first_frames[:-1] + frames)
    stitched = np.zeros((first_frames[-1] + frames, bands), dtype=np.float32)
    for k in range(windows):
        begin = first_frames[0] if k == 0 else fade_starts[k - 1]
        end = len(stitched) if k == windows - 1 else fade_ends[k]
        weights = np.ones(end - begin, dtype=np.float32)
        if k > 0:  # fading in
            fade = fade_ends[k - 1] - fade_starts[k - 1]
            weights[:fade] = np.arange(fade) / fade
        if k < windows - 1:  # fading out
            fade = fade_ends[k] - fade_starts[k]
            weights[fade_starts[k] - begin :] = 1 - np.arange(fade) / fade
        stitched[begin:end] += weights[:, None] * spectrograms[k, begin - first_frames[k] : end - first_frames[k]]
    return stitched


def sequence_scores(spectrogram: np.ndarray, scorer, piece_frames: int = PIECE_FRAMES) -> np.ndarray:
    """Frame probabilities float32[frames // 4] of a spectrogram [frames, bands] of any length.

    A spectrogram of up to `piece_frames` frames (plus the margins) is scored in one go, as a window is.
    A longer one is cut into the fewest pieces of equal length that each give at most `piece_frames`
    frames of scores, and see PIECE_MARGIN_FRAMES more on either side; at the ends a piece slides
    inward instead, so the ends are the sequence's own, as a window's are in training. (Equal pieces:
    fixed ones of 4096 frames ran the networks over 21% more frames than a 3-minute recording holds.)
    """
    pool, margin = features.MODEL_FRAME_POOLING, PIECE_MARGIN_FRAMES
    if len(spectrogram) <= piece_frames + 2 * margin:
        return scorer.sequence_frames(spectrogram[None])[0]
    usable = len(spectrogram) // pool * pool  # the last 1-3 frames (up to 30 ms) make no model frame
    pieces = -(-usable // piece_frames)
    core = -(-usable // (pieces * PIECE_ROUNDING_FRAMES)) * PIECE_ROUNDING_FRAMES  # a multiple of the pooling
    length = core + 2 * margin  # every piece's input
    scores = []
    for begin in range(0, usable, core):
        end = min(begin + core, usable)
        first = min(max(begin - margin, 0), usable - length)
        # The last piece also sees the frames that make no model frame, as the one piece would.
        stop = first + length if end < usable else len(spectrogram)
        probabilities = scorer.sequence_frames(spectrogram[None, first:stop])[0]  # [length // 4]
        scores.append(probabilities[(begin - first) // pool : (end - first) // pool])
    return np.concatenate(scores)


def recording_track(waveform: np.ndarray, starts: np.ndarray, scorer, offset: int = 0,
                    piece_frames: int = PIECE_FRAMES) -> Tuple[np.ndarray, np.ndarray]:
    """(frame start times in s, scores) of a recording, or of a chunk of one that begins at sample
    `offset`, scored whole: the windows at `starts` (samples of `waveform`) give their spectrograms,
    stitched into one, and the networks run over that once. Frames fall on the recording's 40 ms grid.
    """
    # [windows, 297, bands]
    spectrograms = _through_in_batches(scorer.spectrograms, waveform, starts, features.CLIP_SAMPLES)
    first_frames = np.round((np.asarray(starts) + offset) / features.MEL_FRAME_STEP).astype(np.int64)
    stitched = stitch_spectrograms(first_frames - first_frames[0], spectrograms)
    skip = -first_frames[0] % features.MODEL_FRAME_POOLING  # onto the recording's model-frame grid
    scores = sequence_scores(stitched[skip:], scorer, piece_frames)
    first = first_frames[0] + skip + features.MODEL_FRAME_POOLING * np.arange(len(scores))
    return first * features.MEL_FRAME_STEP / features.SAMPLE_RATE, scores


def frame_calls(times: np.ndarray, scores: np.ndarray, threshold: float,
                low_threshold: Optional[float] = None, gap_seconds: float = features.CALL_GAP_SECONDS,
                min_seconds: float = features.MIN_CALL_SECONDS) -> List[Tuple[float, float, float]]:
    """Calls as (start_s, end_s, max score) from a frame track.

    A run is consecutive frames at or above `low_threshold` (default: `threshold`); runs less than
    `gap_seconds` apart are joined; a joined run is a call when it peaks at or above `threshold` and
    lasts at least `min_seconds`. With a low threshold below the threshold (hysteresis), a call is found
    by its peak and measured by its whole extent, so a quiet call that clears the threshold only briefly
    is not dropped as too short.
    """
    step = features.MODEL_FRAME_STEP_SECONDS
    low = threshold if low_threshold is None else min(low_threshold, threshold)
    scores = np.asarray(scores)
    edges = np.diff(np.concatenate([[0], (scores >= low).astype(np.int8), [0]]))
    firsts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # [first, end) frames of each run
    peaks = np.maximum.reduceat(scores, firsts) if len(firsts) else []
    runs: List[List[float]] = []
    for first, end, peak in zip(firsts, ends, peaks):
        start_s, end_s = float(times[first]), float(times[end - 1]) + step
        if runs and start_s - runs[-1][1] < gap_seconds:
            runs[-1][1:] = [end_s, max(runs[-1][2], float(peak))]
        else:
            runs.append([start_s, end_s, float(peak)])
    return [(round(s, 3), round(e, 3), round(sc, 4)) for s, e, sc in runs
            if e - s >= min_seconds and sc >= threshold]


def find_calls(starts_s: np.ndarray, frame_scores: np.ndarray, config: "CountingConfig"):
    """Calls and the score track over time (for plots) from the scored windows of one recording."""
    if frame_scores.shape[1] == 1:  # one score per window: the tutorial's rule
        scores = frame_scores[:, 0]
        calls = merge_detections(starts_s, scores, config.threshold, config.window_seconds)
        return calls, np.asarray(starts_s) + config.window_seconds / 2, scores
    times, track = frame_track(starts_s, frame_scores)
    return _frame_calls_by(config, times, track), times, track


def _frame_calls_by(config: "CountingConfig", times: np.ndarray, track: np.ndarray):
    """frame_calls with the threshold and merging rule `config` holds."""
    return frame_calls(times, track, config.threshold, gap_seconds=config.gap_seconds,
                       min_seconds=config.min_call_seconds)


def merge_detections(
    starts_s: Sequence[float], scores: Sequence[float], threshold: float, window_seconds: float
) -> List[Tuple[float, float, float]]:
    """Calls as (start_s, end_s, max score): each run of consecutive windows at or above the threshold
    is one call (the tutorial's rule), from its first window's start to its last window's end."""
    events: List[List[float]] = []
    previous_positive = False
    for start, score in zip(starts_s, scores):
        positive = score >= threshold
        if positive and previous_positive:
            events[-1][1] = start + window_seconds
            events[-1][2] = max(events[-1][2], float(score))
        elif positive:
            events.append([float(start), float(start) + window_seconds, float(score)])
        previous_positive = positive
    return [(round(s, 3), round(e, 3), round(sc, 4)) for s, e, sc in events]


def _part_path(output_dir: str, recording: str) -> str:
    return os.path.join(output_dir, PARTS_DIR, hashlib.sha256(recording.encode()).hexdigest()[:20] + ".json")


def _write_json_atomically(path: str, payload: Dict) -> None:
    temporary = f"{path}.tmp{os.getpid()}"
    with files.open_file(temporary, "w") as f:
        f.write(json.dumps(payload))
    files.replace(temporary, path)  # a killed run leaves either the whole part or none


@dataclasses.dataclass
class Chunk:
    """A run of consecutive windows of one recording (its own) and the samples they cover, with one
    window more on each side where the recording has one, as context.

    Scored window by window, a chunk scores its own windows, each from exactly the samples it would have
    unsplit, in the same batches (a multiple of SCORE_BATCH windows per chunk). Scored whole, it gives
    the frame scores of the stretch between the midpoints of its first own window and the one before and
    of its last own window and the one after; the context window on each side is 1.5 s, more than the
    networks see. Splitting therefore does not change a score, a call or a count.
    """

    recording: str
    first_window: int  # index of the chunk's first own window in the whole recording
    offset: int  # sample of the recording where `samples` begins
    starts: np.ndarray  # window starts, in samples of the recording, context windows included
    own: Tuple[int, int]  # the own windows: starts[own[0]:own[1]]
    samples: np.ndarray
    seconds: float  # length of the whole recording
    keep_from_s: float = -np.inf  # the stretch whose frame scores this chunk gives, by frame centre
    keep_to_s: float = np.inf


class DecodeAndCountFn(beam.DoFn):
    """recording path → its result, or Chunks for other workers to score when it is long.

    A recording of one chunk (most field recordings) is scored and merged right here, with no shuffle
    of its samples or scores; a file that cannot be counted → its failure part.
    """

    def __init__(self, model_dir: str, config: CountingConfig, output_dir: str, progress: "_Progress", plots: bool):
        self._config = config
        self._output_dir = output_dir
        self._progress = progress
        self._plots = plots
        self._score = ScoreChunkFn(model_dir, config)

    def process(self, recording: str):
        try:
            waveform = audio.load_audio(recording)
            seconds = len(waveform) / features.SAMPLE_RATE
            if len(waveform) < self._config.window_samples:
                raise audio.AudioLoadError(
                    recording, f"too short: {seconds:.2f} s, shorter than one {self._config.window_seconds:g} s window"
                )
        except audio.AudioLoadError as error:
            result = {"recording": recording, "calls": None, "detections": [], "seconds": 0.0, "reason": error.reason}
            _write_json_atomically(_part_path(self._output_dir, recording), result)
            self._progress.log(result)
            return
        whole = whole_chunk(recording, waveform, self._config)
        starts, step = whole.starts, self._config.chunk_windows
        if len(starts) <= step:
            (_, scored), = self._score.process((recording, whole))
            yield _merge_and_save(recording, [scored], self._config, self._output_dir, self._progress, self._plots)
            return
        window = self._config.window_samples
        # Where one chunk's stretch ends and the next one's begins: midway between two windows' centres.
        boundaries_s = ((starts[:-1] + starts[1:]) / 2 + window / 2) / features.SAMPLE_RATE
        for first in range(0, len(starts), step):
            last = min(first + step, len(starts))  # own windows: first..last-1
            lo, hi = max(first - 1, 0), min(last + 1, len(starts))  # with the context windows
            begin, end = int(starts[lo]), int(starts[hi - 1]) + window
            chunk = Chunk(recording, first, begin, starts[lo:hi], (first - lo, last - lo), waveform[begin:end].copy(),
                          seconds, keep_from_s=boundaries_s[first - 1] if first else -np.inf,
                          keep_to_s=boundaries_s[last - 1] if last < len(starts) else np.inf)
            yield beam.pvalue.TaggedOutput(CHUNKS_TAG, (recording, chunk))


class ScoredChunk(NamedTuple):
    """What ScoreChunkFn gives for a chunk. Scored whole: the start times (s) of the frames of the chunk's
    stretch and a score per frame. Window by window: its own windows' start times (s) and their frame
    scores [windows, frames]."""

    first_window: int
    seconds: float  # length of the whole recording
    whole: bool
    times: np.ndarray
    scores: np.ndarray


# Models whose counting signatures this process has run once (see ready_scorer).
_warm_lock = threading.Lock()
_warm_scorers = set()


def ready_scorer(model_dir: str, config: CountingConfig) -> scoring.WindowScorer:
    """The process's shared scorer of `model_dir`, with the signatures `config` counts with already
    run once, on silence (the windows in the batch shape counting uses).

    The first call of a signature builds what TensorFlow runs it with (~0.3 s for the spectrograms, ~0.4 s
    for the networks). Done here once, under a lock, rather than by every worker thread at once on its
    first recording.
    """
    scorer = scoring.shared_scorer(model_dir)
    stitches = config.stitches(scorer)
    key = (scorer.model_dir, stitches)
    with _warm_lock:
        if key not in _warm_scorers:
            if stitches:
                scorer.spectrograms(np.zeros((SCORE_BATCH, features.CLIP_SAMPLES), np.float32))
                scorer.sequence_frames(np.zeros((1, 3 * features.MEL_FRAMES, features.MEL_BANDS), np.float32))
            else:
                scorer.frames(np.zeros((SCORE_BATCH, features.CLIP_SAMPLES), np.float32))
            _warm_scorers.add(key)
    return scorer


class ScoreChunkFn(beam.DoFn):
    """(recording, Chunk) → (recording, ScoredChunk)."""

    def __init__(self, model_dir: str, config: CountingConfig):
        self._model_dir = model_dir
        self._config = config
        self._scorer = None

    def process(self, keyed_chunk):
        if self._scorer is None:  # loaded on first use: a step that gets no chunks loads nothing
            self._scorer = ready_scorer(self._model_dir, self._config)
        recording, chunk = keyed_chunk
        yield recording, score_chunk(chunk, self._scorer, self._config)


def score_chunk(chunk: Chunk, scorer, config: CountingConfig) -> ScoredChunk:
    """A chunk's scores: whole (a frame track) where `config.stitches`, else window by window."""
    starts = chunk.starts - chunk.offset
    if config.stitches(scorer) and len(starts):
        times, track = recording_track(chunk.samples, starts, scorer, chunk.offset)
        centres = times + features.MODEL_FRAME_SPAN_SECONDS / 2
        keep = (centres > chunk.keep_from_s) & (centres <= chunk.keep_to_s)
        return ScoredChunk(chunk.first_window, chunk.seconds, True, times[keep], track[keep])
    own = chunk.starts[chunk.own[0] : chunk.own[1]]
    scores = score_windows(chunk.samples, own - chunk.offset, scorer, config.window_samples)
    return ScoredChunk(chunk.first_window, chunk.seconds, False, own / features.SAMPLE_RATE, scores)


def whole_chunk(recording: str, waveform: np.ndarray, config: CountingConfig) -> Chunk:
    """All of a recording as one chunk, with its windows (none for silence: nothing to count or score)."""
    starts = window_starts(len(waveform), config.window_samples, config.hop_samples)
    if np.sqrt(np.mean(waveform**2)) < SILENCE_RMS:
        starts = starts[:0]
    return Chunk(recording, 0, 0, starts, (0, len(starts)), waveform, len(waveform) / features.SAMPLE_RATE)


def calls_in(scored_chunks: Sequence[ScoredChunk], config: CountingConfig):
    """A recording's calls [(start_s, end_s, score)] and its score track (times, scores) from its scored
    chunks, by the rule `config` holds. Cheap next to scoring: calibration applies it at many thresholds."""
    chunks = sorted(scored_chunks, key=lambda chunk: chunk.first_window)
    times = np.concatenate([chunk.times for chunk in chunks])
    scores = np.concatenate([chunk.scores for chunk in chunks])
    if chunks[0].whole:
        return _frame_calls_by(config, times, scores), times, scores
    return find_calls(times, scores, config)


def _merge_and_save(recording: str, scored_chunks, config: CountingConfig, output_dir: str,
                    progress: "_Progress", plots: bool) -> Dict:
    """A recording's scored chunks → its calls; saved as its part file."""
    detections, times, track = calls_in(scored_chunks, config)
    result = {"recording": recording, "calls": len(detections), "detections": detections,
              "seconds": scored_chunks[0].seconds, "reason": None}
    if plots:
        plot_recording(recording, times, track, detections, config, output_dir)
    _write_json_atomically(_part_path(output_dir, recording), result)
    progress.log(result)
    return result


class MergeCallsFn(beam.DoFn):
    """(recording, scored chunks) → the recording's result dict, also saved as its part file."""

    def __init__(self, config: CountingConfig, output_dir: str, progress: "_Progress", plots: bool):
        self._args = (config, output_dir, progress, plots)

    def process(self, keyed_chunks):
        recording, chunks = keyed_chunks
        yield _merge_and_save(recording, chunks, *self._args)


# Recordings finished and audio seconds counted by this process (all its worker threads).
_progress_lock = threading.Lock()
_progress_totals = {"done": 0, "seconds": 0.0}


class _Progress:
    """'[done/total] name: outcome — audio hours so far, realtime rate, ETA h:mm:ss' lines, one per recording.

    Totals are this process's: exact on the local runners (threads share them); with several worker
    processes each reports its own share.
    """

    def __init__(self, total: int, already_done: int, started: float):
        self._total = total
        self._already_done = already_done
        self._started = started

    def log(self, result: Dict) -> None:
        with _progress_lock:
            _progress_totals["done"] += 1
            _progress_totals["seconds"] += result["seconds"]
            done, seconds = _progress_totals["done"], _progress_totals["seconds"]
        outcome = f"{result['calls']} calls" if result["reason"] is None else f"FAILED ({result['reason']})"
        elapsed = max(time.time() - self._started, 1e-6)
        # At this process's rate so far; the start-up (model loading) makes the first estimates high.
        eta = round((self._total - self._already_done - done) * elapsed / done)
        _log.info("[%d/%d] %s: %s — %.2f h of audio in %.0f s, %.0fx realtime, ETA %d:%02d:%02d",
                  self._already_done + done, self._total, os.path.basename(result["recording"]), outcome,
                  seconds / 3600, elapsed, seconds / elapsed, eta // 3600, eta // 60 % 60, eta % 60)


class CountCalls(beam.PTransform):
    """PCollection[recording path] → PCollection[result dict], one per countable recording.

    Decoding is parallel across recordings; scoring is parallel across chunks, so one long recording
    is spread over many workers too.
    """

    def __init__(self, model_dir: str, config: CountingConfig, output_dir: str, total: int, already_done: int = 0,
                 plots: bool = False):
        super().__init__()
        self._model_dir = model_dir
        self._config = config
        self._output_dir = output_dir
        self._progress = _Progress(total, already_done, time.time())
        self._plots = plots

    def expand(self, recordings):
        decoded = (
            recordings
            | "DistributeRecordings" >> beam.Reshuffle()
            # Outputs kept apart as pairs (on_dask.SplitOutputs): the DaskRunner mixes a ParDo's tagged outputs.
            | "DecodeAndCount"
            >> on_dask.SplitOutputs(
                DecodeAndCountFn(self._model_dir, self._config, self._output_dir, self._progress, self._plots),
                CHUNKS_TAG, main="results")
        )
        long_recordings = (
            decoded[CHUNKS_TAG]
            | "DistributeChunks" >> beam.Reshuffle()
            | "ScoreChunk" >> beam.ParDo(ScoreChunkFn(self._model_dir, self._config))
            | "GroupByRecording" >> beam.GroupByKey()
            | "MergeCalls" >> beam.ParDo(MergeCallsFn(self._config, self._output_dir, self._progress, self._plots))
        )
        return (decoded["results"], long_recordings) | "AllResults" >> beam.Flatten()


def load_parts(output_dir: str) -> Dict[str, Dict]:
    results = {}
    parts = os.path.join(output_dir, PARTS_DIR)
    for name in sorted(files.listdir(parts)):
        if name.endswith(".json"):
            with files.open_file(os.path.join(parts, name)) as f:
                result = json.loads(f.read())
            results[result["recording"]] = result
    return results


def write_tables(results: Iterable[Dict], output_dir: str) -> None:
    """counts.csv, detections.csv, selections.txt and failures.csv, in recording order."""
    ordered = sorted(results, key=lambda r: r["recording"])
    counted = [r for r in ordered if r["reason"] is None]
    with files.open_file(os.path.join(output_dir, COUNTS_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "capuchin_calls"])
        writer.writerows((os.path.basename(r["recording"]), r["calls"]) for r in counted)
    with files.open_file(os.path.join(output_dir, DETECTIONS_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "start_s", "end_s", "score"])
        writer.writerows((os.path.basename(r["recording"]), *d) for r in counted for d in r["detections"])
    with files.open_file(os.path.join(output_dir, SELECTIONS_TXT), "w") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                         "Low Freq (Hz)", "High Freq (Hz)", "Begin File", "Score"])
        selection = 0
        for r in counted:
            for start, end, score in r["detections"]:
                selection += 1
                writer.writerow([selection, "Spectrogram 1", 1, start, end, features.MEL_LOWER_HZ,
                                 features.MEL_UPPER_HZ, os.path.basename(r["recording"]), score])
    with files.open_file(os.path.join(output_dir, FAILURES_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "reason"])
        writer.writerows((r["recording"], r["reason"]) for r in ordered if r["reason"] is not None)


def plot_recording(recording, times, scores, detections, config: CountingConfig, output_dir: str) -> None:
    """A PNG of the scores over time (per frame, or per window centre), the threshold and the calls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files.makedirs(os.path.join(output_dir, PLOTS_DIR))
    figure, axis = plt.subplots(figsize=(12, 2.8))
    axis.plot(times, scores, lw=1, label="score")
    axis.axhline(config.threshold, color="gray", ls="--", lw=1, label=f"threshold {config.threshold:.2f}")
    for start, end, _ in detections:
        axis.axvspan(start, end, color="tab:red", alpha=0.25)
    axis.set(xlabel="time (s)", ylabel="call probability", ylim=(-0.02, 1.02),
             title=f"{os.path.basename(recording)}: {len(detections)} calls")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    with files.open_file(os.path.join(output_dir, PLOTS_DIR, os.path.basename(recording) + ".png"), "wb") as f:
        figure.savefig(f, format="png", dpi=90)
    plt.close(figure)


def with_local_parallelism(beam_args: Optional[List[str]]) -> List[str]:
    """Beam args as given; when they pick no runner or running mode, the DirectRunner on every core.

    Threads, not processes: decoding (libsndfile, soxr) and scoring (TensorFlow) release the GIL, so
    two threads keep two cores busy (1.5x faster on the real recordings, see BENCHMARKS.md) without
    the seconds it takes to start worker processes.
    """
    beam_args = list(beam_args or [])
    if any(arg.startswith(("--runner", "--direct_running_mode")) for arg in beam_args):
        return beam_args
    return beam_args + ["--direct_running_mode=multi_threading", f"--direct_num_workers={os.cpu_count() or 1}"]


def scores_in_this_process(beam_args: Sequence[str]) -> bool:
    """Whether these Beam args run the workers as threads of this process (the DirectRunner's default
    and in-memory modes), where a scorer loaded here is the one they use."""
    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    mode = options.view_as(DirectOptions).direct_running_mode
    return runner in (None, "DirectRunner") and mode != "multi_processing"


def _preload(model_dir: str, config: CountingConfig) -> None:
    try:
        ready_scorer(model_dir, config)
    except Exception:  # noqa: BLE001  the workers load it again, and fail with the error where it is reported
        pass


def run_counting(
    model: str,
    recordings: str,
    output_dir: str,
    threshold: Optional[float] = None,
    hop_seconds: float = features.HOP_SECONDS,
    beam_args: Optional[List[str]] = None,
    plots: bool = False,
    chunk_windows: int = CountingConfig.chunk_windows,
    whole_recordings: bool = True,
    operating_point: Optional[Dict] = None,
) -> Dict:
    """Counts calls in every recording not yet done in `output_dir`, then rewrites the tables from all
    finished recordings. Re-running skips what is done; a killed run picks up where it stopped.

    Args:
      model: a pushed SavedModel, or the Pusher's base folder (newest version).
      recordings: a folder (searched recursively) or a glob.
      output_dir: where the tables go.
      threshold: call threshold; default: the operating point's.
      hop_seconds: step between 3 s windows (3.0 = the tutorial's non-overlapping windows).
      beam_args: Beam pipeline options; default: DirectRunner, one thread per core.
      plots: also write a PNG per recording.
      chunk_windows: windows per scoring chunk (a multiple of SCORE_BATCH); results do not depend on it.
      whole_recordings: score each recording whole where the model can (the default), else window by window.
      operating_point: {threshold, gap_seconds, min_call_seconds, source}; default: the one the model
        carries (site calibration, else the eval-clip threshold), else the tutorial's 0.99.

    Returns:
      The summary (also written to summary.json).
    """
    started = time.time()
    model_dir = scoring.resolve_model_dir(model)
    point = dict(operating_point or scoring.read_operating_point(model_dir))
    if threshold is not None:
        point.update(threshold=threshold, source="given")
    if chunk_windows <= 0 or chunk_windows % SCORE_BATCH:
        raise ValueError(f"chunk_windows must be a positive multiple of {SCORE_BATCH}, got {chunk_windows}")
    threshold = point["threshold"]
    config = CountingConfig(threshold=threshold, hop_seconds=hop_seconds, chunk_windows=chunk_windows,
                            whole_recordings=whole_recordings, gap_seconds=point["gap_seconds"],
                            min_call_seconds=point["min_call_seconds"])
    all_recordings = list_recordings(recordings)
    parts = os.path.join(output_dir, PARTS_DIR)
    files.makedirs(parts)
    for name in files.listdir(parts):  # half-written parts of a killed run
        if not name.endswith(".json"):
            files.remove(os.path.join(parts, name))
    done = load_parts(output_dir)
    pending = [r for r in all_recordings if r not in done]
    _log.info("Counting calls in %d recordings (%d already done) with %s, threshold %.3f, hop %.2f s",
                    len(pending), len(all_recordings) - len(pending), model_dir, threshold, hop_seconds)
    if pending:
        with _progress_lock:  # a fresh count for this run (several runs may share a process, as in tests)
            _progress_totals.update(done=0, seconds=0.0)
        beam_args = with_local_parallelism(beam_args)
        if scores_in_this_process(beam_args):
            # The model loads and warms up while Beam starts and the first recordings decode.
            threading.Thread(target=_preload, args=(model_dir, config), daemon=True).start()
        with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
            _ = (
                pipeline
                | "ListRecordings" >> beam.Create(pending)
                | "CountCalls" >> CountCalls(
                    model_dir, config, output_dir, len(all_recordings), len(all_recordings) - len(pending), plots
                )
            )
    results = load_parts(output_dir)
    write_tables(results.values(), output_dir)
    seconds = sum(r["seconds"] for r in results.values())
    wall = time.time() - started
    summary = {
        "model": model_dir,
        "threshold": threshold,
        "operating_point": point,
        "hop_seconds": hop_seconds,
        "files": len(results),
        "counted": sum(r["reason"] is None for r in results.values()),
        "failures": sum(r["reason"] is not None for r in results.values()),
        "audio_hours": round(seconds / 3600, 4),
        "calls": sum(r["calls"] or 0 for r in results.values()),
        "new_this_run": len(pending),
        "wall_seconds": round(wall, 2),
        "realtime_factor": round(sum(results[r]["seconds"] for r in pending) / wall, 1) if pending and wall else None,
    }
    with files.open_file(os.path.join(output_dir, SUMMARY_JSON), "w") as f:
        f.write(json.dumps(summary, indent=2))
    return summary
