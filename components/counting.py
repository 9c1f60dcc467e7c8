"""Counting calls in recordings: window, score with the pushed model, merge positive windows into calls.

The pure parts (windows, merging, output tables) are plain functions; `CountCallsFn` is the per-recording
Beam step; `CountCalls` is the composite transform and `run_counting` the whole resumable job:

    OUT/counts.csv        recording,capuchin_calls      one row per input file that could be read
    OUT/detections.csv    recording,start_s,end_s,score one row per call
    OUT/selections.txt    Raven selection table of all calls (Begin File column names the recording)
    OUT/failures.csv      recording,reason              files that could not be counted
    OUT/summary.json      files, audio hours, calls, wall time, realtime factor
    OUT/parts/            one JSON per finished recording: what makes a re-run skip it and a killed run resume
"""

import csv
import dataclasses
import glob
import hashlib
import json
import logging
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from components import audio, scoring
from model import features

COUNTS_CSV = "counts.csv"
DETECTIONS_CSV = "detections.csv"
SELECTIONS_TXT = "selections.txt"
FAILURES_CSV = "failures.csv"
SUMMARY_JSON = "summary.json"
PARTS_DIR = "parts"
PLOTS_DIR = "plots"
SCORE_BATCH = 64  # windows per model call: ~12 MB of audio, whatever the recording's length
_log = logging.getLogger("capuchin.counting")
# Below this RMS (about -80 dBFS) a recording holds nothing to hear: counted as 0 without scoring.
SILENCE_RMS = 1e-4


@dataclasses.dataclass(frozen=True)
class CountingConfig:
    threshold: float
    hop_seconds: float = features.HOP_SECONDS
    window_seconds: float = features.CLIP_SECONDS

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * features.SAMPLE_RATE))

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * features.SAMPLE_RATE))


def list_recordings(source: str) -> List[str]:
    """Audio files in a folder (recursive) or matching a glob, sorted. Other files are not recordings."""
    if os.path.isdir(source):
        paths = [
            os.path.join(directory, name)
            for directory, _, names in os.walk(source)
            for name in names
            if not name.startswith(".")
        ]
    else:
        paths = glob.glob(source, recursive=True)
    return sorted(p for p in paths if os.path.splitext(p)[1].lower() in features.AUDIO_EXTENSIONS and os.path.isfile(p))


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


def score_recording(waveform: np.ndarray, scorer, config: CountingConfig) -> Tuple[np.ndarray, np.ndarray]:
    """(start seconds, score) of every window. Windows are views, copied only SCORE_BATCH at a time."""
    starts = window_starts(len(waveform), config.window_samples, config.hop_samples)
    windows = np.lib.stride_tricks.sliding_window_view(waveform, config.window_samples)  # no copy
    scores = np.concatenate(
        [scorer(np.ascontiguousarray(windows[starts[i : i + SCORE_BATCH]])) for i in range(0, len(starts), SCORE_BATCH)]
        or [np.zeros(0, dtype=np.float32)]
    )
    return starts / features.SAMPLE_RATE, scores


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
    with open(temporary, "w") as f:
        json.dump(payload, f)
    os.replace(temporary, path)  # a killed run leaves either the whole part or none


class CountCallsFn(beam.DoFn):
    """recording path → its result dict (calls or failure), also saved as a part file."""

    def __init__(self, model_dir: str, config: CountingConfig, output_dir: str, total: int, plots: bool):
        self._model_dir = model_dir
        self._config = config
        self._output_dir = output_dir
        self._total = total
        self._plots = plots
        self._scorer = None

    def setup(self):
        self._scorer = scoring.WindowScorer(self._model_dir)

    def process(self, recording: str):
        started = time.time()
        result = {"recording": recording, "calls": None, "detections": [], "seconds": 0.0, "reason": None}
        try:
            waveform = audio.load_audio(recording)
            result["seconds"] = len(waveform) / features.SAMPLE_RATE
            if len(waveform) < self._config.window_samples:
                raise audio.AudioLoadError(
                    recording, f"too short: {result['seconds']:.2f} s, shorter than one {self._config.window_seconds:g} s window"
                )
            if np.sqrt(np.mean(waveform**2)) < SILENCE_RMS:
                starts_s, scores = np.zeros(0), np.zeros(0)  # silence: nothing to count, nothing to score
            else:
                starts_s, scores = score_recording(waveform, self._scorer, self._config)
            result["detections"] = merge_detections(starts_s, scores, self._config.threshold, self._config.window_seconds)
            result["calls"] = len(result["detections"])
            if self._plots:
                plot_recording(recording, starts_s, scores, result["detections"], self._config, self._output_dir)
        except audio.AudioLoadError as error:
            result["reason"] = error.reason
        _write_json_atomically(_part_path(self._output_dir, recording), result)
        done = sum(name.endswith(".json") for name in os.listdir(os.path.join(self._output_dir, PARTS_DIR)))
        wall = time.time() - started
        outcome = f"{result['calls']} calls" if result["reason"] is None else f"FAILED ({result['reason']})"
        _log.info(
            "[%d/%d] %s: %s, %.0f s audio in %.1f s (%.0fx realtime)",
            done, self._total, os.path.basename(recording), outcome, result["seconds"], wall,
            result["seconds"] / wall if wall else 0,
        )
        yield result


class CountCalls(beam.PTransform):
    """PCollection[recording path] → PCollection[result dict], one per recording."""

    def __init__(self, model_dir: str, config: CountingConfig, output_dir: str, total: int, plots: bool = False):
        super().__init__()
        self._fn = CountCallsFn(model_dir, config, output_dir, total, plots)

    def expand(self, recordings):
        # Reshuffle so each recording can go to a different worker (embarrassingly parallel).
        return recordings | "Distribute" >> beam.Reshuffle() | "CountCallsInRecording" >> beam.ParDo(self._fn)


def load_parts(output_dir: str) -> Dict[str, Dict]:
    results = {}
    parts = os.path.join(output_dir, PARTS_DIR)
    for name in sorted(os.listdir(parts)) if os.path.isdir(parts) else []:
        if name.endswith(".json"):
            with open(os.path.join(parts, name)) as f:
                result = json.load(f)
            results[result["recording"]] = result
    return results


def write_tables(results: Iterable[Dict], output_dir: str) -> None:
    """counts.csv, detections.csv, selections.txt and failures.csv, in recording order."""
    ordered = sorted(results, key=lambda r: r["recording"])
    counted = [r for r in ordered if r["reason"] is None]
    with open(os.path.join(output_dir, COUNTS_CSV), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "capuchin_calls"])
        writer.writerows((os.path.basename(r["recording"]), r["calls"]) for r in counted)
    with open(os.path.join(output_dir, DETECTIONS_CSV), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "start_s", "end_s", "score"])
        writer.writerows((os.path.basename(r["recording"]), *d) for r in counted for d in r["detections"])
    with open(os.path.join(output_dir, SELECTIONS_TXT), "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                         "Low Freq (Hz)", "High Freq (Hz)", "Begin File", "Score"])
        selection = 0
        for r in counted:
            for start, end, score in r["detections"]:
                selection += 1
                writer.writerow([selection, "Spectrogram 1", 1, start, end, features.MEL_LOWER_HZ,
                                 features.MEL_UPPER_HZ, os.path.basename(r["recording"]), score])
    with open(os.path.join(output_dir, FAILURES_CSV), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "reason"])
        writer.writerows((r["recording"], r["reason"]) for r in ordered if r["reason"] is not None)


def plot_recording(recording, starts_s, scores, detections, config: CountingConfig, output_dir: str) -> None:
    """A PNG of the window scores over time, the threshold and the detected calls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.join(output_dir, PLOTS_DIR), exist_ok=True)
    figure, axis = plt.subplots(figsize=(12, 2.8))
    centres = np.asarray(starts_s) + config.window_seconds / 2
    axis.plot(centres, scores, lw=1, label="window score")
    axis.axhline(config.threshold, color="gray", ls="--", lw=1, label=f"threshold {config.threshold:.2f}")
    for start, end, _ in detections:
        axis.axvspan(start, end, color="tab:red", alpha=0.25)
    axis.set(xlabel="time (s)", ylabel="call probability", ylim=(-0.02, 1.02),
             title=f"{os.path.basename(recording)}: {len(detections)} calls")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, PLOTS_DIR, os.path.basename(recording) + ".png"), dpi=90)
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


def run_counting(
    model: str,
    recordings: str,
    output_dir: str,
    threshold: Optional[float] = None,
    hop_seconds: float = features.HOP_SECONDS,
    beam_args: Optional[List[str]] = None,
    plots: bool = False,
) -> Dict:
    """Counts calls in every recording not yet done in `output_dir`, then rewrites the tables from all
    finished recordings. Re-running skips what is done; a killed run picks up where it stopped.

    Args:
      model: a pushed SavedModel, or the Pusher's base folder (newest version).
      recordings: a folder (searched recursively) or a glob.
      output_dir: where the tables go.
      threshold: call threshold; default: the one the pipeline chose for this model, else the tutorial's 0.99.
      hop_seconds: step between 3 s windows (3.0 = the tutorial's non-overlapping windows).
      beam_args: Beam pipeline options; default: DirectRunner, one thread per core.
      plots: also write a PNG per recording.

    Returns:
      The summary (also written to summary.json).
    """
    started = time.time()
    model_dir = scoring.resolve_model_dir(model)
    if threshold is None:
        threshold = scoring.read_threshold(model_dir) or features.TUTORIAL_THRESHOLD
    config = CountingConfig(threshold=threshold, hop_seconds=hop_seconds)
    all_recordings = list_recordings(recordings)
    parts = os.path.join(output_dir, PARTS_DIR)
    os.makedirs(parts, exist_ok=True)
    for name in os.listdir(parts):  # half-written parts of a killed run
        if not name.endswith(".json"):
            os.remove(os.path.join(parts, name))
    done = load_parts(output_dir)
    pending = [r for r in all_recordings if r not in done]
    _log.info("Counting calls in %d recordings (%d already done) with %s, threshold %.3f, hop %.2f s",
                    len(pending), len(all_recordings) - len(pending), model_dir, threshold, hop_seconds)
    if pending:
        with beam.Pipeline(options=PipelineOptions(with_local_parallelism(beam_args))) as pipeline:
            _ = (
                pipeline
                | "ListRecordings" >> beam.Create(pending)
                | "CountCalls" >> CountCalls(model_dir, config, output_dir, len(all_recordings), plots)
            )
    results = load_parts(output_dir)
    write_tables(results.values(), output_dir)
    seconds = sum(r["seconds"] for r in results.values())
    wall = time.time() - started
    summary = {
        "model": model_dir,
        "threshold": threshold,
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
    with open(os.path.join(output_dir, SUMMARY_JSON), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
