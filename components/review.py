"""A review sample drawn from a counting output: what a person labels so that estimate.py can count calls.

The counting output keeps calls, not window scores, so each recording is scored again (`window_scores`):
3 s windows at the counting run's hop, with the model it names. The recording is then cut into cells,
one per window (the stretch closer to that window's centre than to any other's), so every moment, and
so the middle of every call, lies in exactly one cell. Two kinds of item are drawn:

- every detection of the counting run, one item each: is it a call?
- windows whose cell touches no detection, stratified by score: K at random from each of N bins
  holding the lowest half of those windows, the next quarter, eighth, ... (the "log bins" of Navine
  et al. 2024, All thresholds barred), so the few high-scoring windows the counting rule did not
  call are sampled as densely as the many quiet ones: is the middle of a call that is not a detection
  in this window's cell?

A missed call's middle lies in one cell only, so the calls missed are the positive cells: no
windows-to-calls factor is needed (estimate.py).

`draw_review` builds the population and the sample; review_page.write_review writes REVIEW/.
"""

import csv
import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from components import audio
from model import features

_log = logging.getLogger("capuchin.review")

# Labelled items per score bin, and bins: 10 x 8 windows plus the detections is an hour's review.
DEFAULT_PER_BIN = 10
DEFAULT_BINS = 8
REVIEW_CSV = "review.csv"
BINS_JSON = "bins.json"
INDEX_HTML = "index.html"
SNIPPETS_DIR = "snippets"
REVIEW_COLUMNS = ("id", "recording", "start_s", "end_s", "score", "bin", "label")
DETECTION_BIN = "detection"  # the `bin` of a detection item
LABELS = ("call", "not_call", "unsure")


class ReviewError(ValueError):
    """An input that cannot be reviewed or estimated from; the message says which and why."""


@dataclasses.dataclass
class Recording:
    """One recording of the counting run with its windows scored again."""

    name: str  # the file name, as counts.csv and detections.csv give it
    path: str
    detections: List[Tuple[float, float, float]]  # (start_s, end_s, score)
    starts_s: np.ndarray  # window starts
    scores: np.ndarray  # window scores
    cells: np.ndarray  # [windows, 2]: each window's cell (start_s, end_s)
    bins: Optional[np.ndarray] = None  # per window: its score bin, -1 where its cell touches a detection


@dataclasses.dataclass
class CountingRun:
    counts_dir: str
    summary: Dict
    identity: str  # changes when the run's model, operating point, hop, counts or detections change
    paths: Dict[str, str]  # recording name → path, for the recordings that were counted
    detections: Dict[str, List[Tuple[float, float, float]]]


def read_counting_run(counts_dir: str) -> CountingRun:
    """The counting output of runners/count_calls.py in `counts_dir`.

    Raises:
      ReviewError: no counting output there, or one that cannot be told apart by recording name.
    """
    from components import files

    summary_path = os.path.join(counts_dir, "summary.json")
    detections_path = os.path.join(counts_dir, "detections.csv")
    if not files.exists(summary_path) or not files.exists(detections_path):
        raise ReviewError(f"no counting output at {counts_dir}: summary.json or detections.csv is missing "
                          "(make one with runners/count_calls.py)")
    summary = json.loads(files.read_bytes(summary_path))
    detections_bytes = files.read_bytes(detections_path)
    identity = counting_identity(summary, detections_bytes)
    paths = {}
    parts = os.path.join(counts_dir, "parts")
    for part in sorted(files.listdir(parts)):
        if part.endswith(".json"):
            result = json.loads(files.read_bytes(os.path.join(parts, part)))
            if result.get("reason") is not None:
                continue  # a file the counting run could not read
            name = os.path.basename(result["recording"])
            if paths.get(name, result["recording"]) != result["recording"]:
                raise ReviewError(f"two counted recordings are named {name} ({paths[name]}, {result['recording']}): "
                                  "detections.csv cannot tell them apart")
            paths[name] = result["recording"]
    if not paths:
        raise ReviewError(f"{counts_dir} holds no counted recordings (its parts/ folder is empty)")
    detections: Dict[str, List[Tuple[float, float, float]]] = {name: [] for name in paths}
    for row in csv.DictReader(detections_bytes.decode().splitlines()):
        detections.setdefault(row["recording"], []).append(
            (float(row["start_s"]), float(row["end_s"]), float(row["score"])))
    return CountingRun(counts_dir, summary, identity, paths, detections)


def counting_identity(summary: Dict, detections_csv: bytes) -> str:
    """A digest of what a review depends on: the model, operating point and hop, and every detection."""
    digest = hashlib.sha256(json.dumps({key: summary.get(key) for key in ("model", "operating_point", "hop_seconds")},
                                       sort_keys=True).encode())
    digest.update(detections_csv)
    return digest.hexdigest()[:16]


def window_scores(model_dir: str, path: str, hop_seconds: float, scorer=None) -> Tuple[np.ndarray, np.ndarray]:
    """(window starts in s, window scores) of a recording: 3 s windows every `hop_seconds`, the last one
    flush with the end, as counting places them; each window's score is the model's window probability.

    The one place that knows how windows are cut and scored (re-point it when counting's windowing moves).

    Args:
      model_dir: the SavedModel (or Pusher folder) to score with.
      path: the recording.
      hop_seconds: step between windows.
      scorer: what scores float32[n, 48000] windows to float32[n]; default: the model's WindowScorer.

    Raises:
      components.audio.AudioLoadError: the recording cannot be read.
    """
    from components import counting, scoring
    from components.counting import scorer as counting_scorer
    from components.counting import windows as counting_windows

    if scorer is None:  # the process's one loaded model, which counting shares
        config = counting.CountingConfig.of(threshold=1.0, hop_seconds=hop_seconds, whole_recordings=False)
        scorer = counting.warm_scorer(scoring.resolve_model_dir(model_dir), config).model
    waveform = audio.load_audio(path)
    hop = int(round(hop_seconds * features.SAMPLE_RATE))
    starts = counting_windows.window_starts(len(waveform), features.CLIP_SAMPLES, hop)
    scores = counting_scorer.window_probabilities(waveform, starts, scorer, features.CLIP_SAMPLES)
    return starts / features.SAMPLE_RATE, scores


def cells_of(starts_s: np.ndarray, window_seconds: float = features.CLIP_SECONDS) -> np.ndarray:
    """[windows, 2]: each window's cell, the stretch closer to its centre than to any other window's
    centre; the first cell begins at 0 and the last ends with the last window, so the cells tile the
    recording."""
    centres = np.asarray(starts_s, dtype=np.float64) + window_seconds / 2
    joins = (centres[:-1] + centres[1:]) / 2
    begins = np.concatenate([[0.0], joins])
    ends = np.concatenate([joins, [centres[-1] + window_seconds / 2]]) if len(centres) else np.zeros(0)
    return np.stack([begins[: len(centres)], ends], axis=1)


def touches_detection(cells: np.ndarray, detections: Sequence[Tuple[float, float, float]]) -> np.ndarray:
    """Per cell: whether it overlaps any detection."""
    touched = np.zeros(len(cells), dtype=bool)
    for start, end, _ in detections:
        touched |= (cells[:, 0] < end) & (cells[:, 1] > start)
    return touched


def log_bins(scores: np.ndarray, bins: int) -> np.ndarray:
    """Bin per score by rank: the lowest half → 0, the next quarter → 1, ..., the top 2^-(bins-1) → bins-1.
    Ties are split by position, so the bins hold exactly those shares."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(scores, kind="stable")] = np.arange(len(scores))
    above = 1.0 - ranks / len(scores)  # share of windows at or above this one, in (0, 1]
    return np.minimum(np.floor(-np.log2(above)).astype(np.int64), bins - 1)


def score_recordings(run: CountingRun, model_dir: str, scorer=None,
                     scores_of: Optional[Callable] = None) -> Tuple[List[Recording], List[str]]:
    """Every counted recording scored window by window; ([Recording], [paths gone or unreadable]).

    `scores_of(path) -> (starts_s, scores)` replaces `window_scores` (benchmarks reuse scores)."""
    hop = run.summary["hop_seconds"]
    scores_of = scores_of or (lambda path: window_scores(model_dir, path, hop, scorer))
    recordings, missing = [], []
    started, names = time.time(), sorted(run.paths)
    for done, name in enumerate(names, 1):
        path = run.paths[name]
        if "://" not in path and not os.path.exists(path):
            missing.append(path)
            _log.warning("[%d/%d] %s: not found, skipped (moved since it was counted?)", done, len(names), path)
            continue
        try:
            starts_s, scores = scores_of(path)
        except audio.AudioLoadError as error:
            missing.append(path)
            _log.warning("[%d/%d] %s: %s, skipped", done, len(names), path, error.reason)
            continue
        if len(starts_s):
            recordings.append(Recording(name, path, run.detections.get(name, []), np.asarray(starts_s),
                                        np.asarray(scores, dtype=np.float64), cells_of(starts_s)))
        elapsed = time.time() - started
        _log.info("[%d/%d] %s: %d windows — %.1f s, %.2f files/s", done, len(names), name, len(starts_s), elapsed,
                  done / max(elapsed, 1e-9))
    if not recordings:
        raise ReviewError(f"none of the {len(names)} counted recordings can be read: "
                          + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return recordings, missing


def assign_bins(recordings: Sequence[Recording], bins: int) -> None:
    """Sets each recording's `bins`: log bins over all windows whose cell touches no detection."""
    outside = [~touches_detection(r.cells, r.detections) for r in recordings]
    pooled = log_bins(np.concatenate([r.scores[o] for r, o in zip(recordings, outside)]), bins)
    offset = 0
    for recording, free in zip(recordings, outside):
        recording.bins = np.full(len(recording.scores), -1, dtype=np.int64)
        recording.bins[free] = pooled[offset : offset + free.sum()]
        offset += free.sum()


def draw_items(recordings: Sequence[Recording], per_bin: int, bins: int, seed: int, token: str) -> List[Dict]:
    """Every detection plus `per_bin` random windows of each bin, in a random order (a review stopped
    half way is then still a random sample of each bin). Ids are `token-NNNN`."""
    rng = np.random.default_rng(seed)
    items = [{"kind": "detection", "recording": r.name, "start_s": start, "end_s": end, "score": score,
              "bin": DETECTION_BIN, "mark": [start, end]}
             for r in recordings for start, end, score in r.detections]
    where = [(r, i) for r in recordings for i in range(len(r.scores))]
    window_bins = np.concatenate([r.bins for r in recordings])
    for b in range(bins):
        members = np.flatnonzero(window_bins == b)
        for k in rng.choice(members, size=min(per_bin, len(members)), replace=False):
            r, i = where[k]
            start = round(float(r.starts_s[i]), 3)
            items.append({"kind": "window", "recording": r.name, "start_s": start,
                          "end_s": round(start + features.CLIP_SECONDS, 3), "score": round(float(r.scores[i]), 4),
                          "bin": b, "mark": [round(float(c), 3) for c in r.cells[i]]})
    order = rng.permutation(len(items))
    return [dict(items[k], id=f"{token}-{n:04d}") for n, k in enumerate(order, 1)]


def population(run: CountingRun, recordings: Sequence[Recording], missing: Sequence[str], bins: int) -> Dict:
    """What estimate.py needs about all windows, not only the sampled ones (bins.json, less the items)."""
    free = np.concatenate([r.scores[r.bins >= 0] for r in recordings])
    free_bins = np.concatenate([r.bins[r.bins >= 0] for r in recordings])
    detection_scores = [d[2] for r in recordings for d in r.detections]
    strata = {DETECTION_BIN: {"units": len(detection_scores),
                              "mean_score": float(np.mean(detection_scores)) if detection_scores else 0.5}}
    for b in range(bins):
        inside = free[free_bins == b]
        strata[str(b)] = {"units": int(len(inside)), "mean_score": float(inside.mean()) if len(inside) else 0.0,
                          "scores": [float(inside.min()), float(inside.max())] if len(inside) else None}
    return {
        "counting_run": run.identity,
        "counts_dir": os.path.abspath(run.counts_dir),
        "model": run.summary.get("model"),
        "hop_seconds": run.summary["hop_seconds"],
        "threshold": run.summary.get("threshold"),
        "bins": bins,
        "strata": strata,
        "recordings": {r.name: {"path": r.path, "seconds": round(float(r.cells[-1, 1]), 3),
                                "units": {DETECTION_BIN: len(r.detections),
                                          **{str(b): int(np.sum(r.bins == b)) for b in range(bins)}}}
                       for r in recordings},
        "missing": list(missing),
    }


def draw_review(run: CountingRun, model_dir: str, per_bin: int = DEFAULT_PER_BIN, bins: int = DEFAULT_BINS,
                seed: int = 0, scorer=None, scores_of: Optional[Callable] = None):
    """(recordings, bins.json dict with its items) for a counting run: scored, binned and sampled."""
    if per_bin < 1 or bins < 1:
        raise ReviewError(f"--per-bin and --bins must be at least 1 (got {per_bin}, {bins})")
    recordings, missing = score_recordings(run, model_dir, scorer, scores_of)
    assign_bins(recordings, bins)
    described = population(run, recordings, missing, bins)
    token = hashlib.sha256(f"{run.identity}|{per_bin}|{bins}|{seed}".encode()).hexdigest()[:6]
    described.update(per_bin=per_bin, seed=seed, token=token,
                     items=draw_items(recordings, per_bin, bins, seed, token))
    return recordings, described
