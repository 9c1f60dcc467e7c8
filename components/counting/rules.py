"""Call rules: a recording's scores → its calls as (start_s, end_s, max score). Plain numpy, no model.

Frame scores (`frame_calls`): a call is a run of frames at or above the threshold, runs less than the
gap apart joined, runs shorter than the shortest call dropped. One score per window (`window_calls`,
the tutorial's rule): each run of consecutive windows at or above the threshold is one call.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

from components.counting.config import CountingConfig
from components.counting.scorer import HowScored, ScoredChunk
from components.counting.windows import frame_track
from model import features

Call = Tuple[float, float, float]


def frame_calls(times: np.ndarray, scores: np.ndarray, threshold: float,
                low_threshold: Optional[float] = None, gap_seconds: float = features.CALL_GAP_SECONDS,
                min_seconds: float = features.MIN_CALL_SECONDS) -> List[Call]:
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


def window_calls(starts_s: Sequence[float], scores: Sequence[float], threshold: float,
                 window_seconds: float) -> List[Call]:
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


def calls_in(scored_chunks: Sequence[ScoredChunk], config: CountingConfig):
    """A recording's calls [(start_s, end_s, score)] and its score track (times, scores, for plots) from
    its scored chunks, by the rule for how they were scored and the threshold and merging rule `config`
    holds. Cheap next to scoring: calibration applies it at many operating points."""
    chunks = sorted(scored_chunks, key=lambda chunk: chunk.first_window)
    times = np.concatenate([chunk.times for chunk in chunks])
    scores = np.concatenate([chunk.scores for chunk in chunks])
    how = chunks[0].how
    if how is HowScored.WINDOW_SCORES:
        scores = scores[:, 0]
        calls = window_calls(times, scores, config.threshold, config.window_seconds)
        return calls, times + config.window_seconds / 2, scores
    if how is HowScored.WINDOW_FRAMES:
        times, scores = frame_track(times, scores)
    calls = frame_calls(times, scores, config.threshold, gap_seconds=config.gap_seconds,
                        min_seconds=config.min_call_seconds)
    return calls, times, scores
