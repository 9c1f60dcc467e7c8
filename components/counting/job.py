"""The resumable counting job: `run_counting` counts the recordings not yet done in an output folder,
then rewrites its tables and summary from every finished recording (components/counting/outputs.py)."""

import functools
import logging
import os
import threading
import time
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from components import files, scoring
from components.counting import outputs, scorer, transform
from components.counting.config import CountingConfig
from model import features

_log = logging.getLogger("capuchin.counting")


def list_recordings(source: str) -> List[str]:
    """Audio files in a folder (recursive) or matching a glob, sorted; local or gs://.
    Other files are not recordings."""
    paths = files.walk_files(source) if files.isdir(source) else files.glob(source)
    return sorted(
        p for p in paths if os.path.splitext(p)[1].lower() in features.AUDIO_EXTENSIONS and not files.isdir(p)
    )


# Worker threads beyond one per core: while a thread holds the GIL (Beam's bookkeeping, NumPy's small
# steps), the others' decoding and scoring still run. Two cores were busy 93 % of the time with two
# threads; four count 1.05x (three networks) to 1.07x (one) faster for ~110 MB more (BENCHMARKS.md).
EXTRA_WORKER_THREADS = 2


def with_local_parallelism(beam_args: Optional[List[str]]) -> List[str]:
    """Beam args as given; when they pick no runner or running mode, the DirectRunner on every core
    (EXTRA_WORKER_THREADS more threads than cores).

    Threads, not processes: decoding (libmpg123, libsndfile, soxr) and scoring (TensorFlow) release the
    GIL, so threads keep the cores busy (1.5x faster on the real recordings, see BENCHMARKS.md) without
    the seconds it takes to start worker processes.
    """
    beam_args = list(beam_args or [])
    if any(arg.startswith(("--runner", "--direct_running_mode")) for arg in beam_args):
        return beam_args
    workers = (os.cpu_count() or 1) + EXTRA_WORKER_THREADS
    return beam_args + ["--direct_running_mode=multi_threading", f"--direct_num_workers={workers}"]


def scores_in_this_process(beam_args: Sequence[str]) -> bool:
    """Whether these Beam args run the workers as threads of this process (the DirectRunner's default
    and in-memory modes), where a scorer loaded here is the one they use."""
    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    mode = options.view_as(DirectOptions).direct_running_mode
    return runner in (None, "DirectRunner") and mode != "multi_processing"


def _preload(model_dir: str, config: CountingConfig) -> None:
    try:
        scorer.warm_scorer(model_dir, config)
    except Exception:  # noqa: BLE001  the workers load it again, and fail with the error where it is reported
        pass


def _count(model_dir: str, config: CountingConfig, recordings: List[str], output_dir: str,
           beam_args: List[str], plots: bool, progress: transform.Progress) -> Dict[str, int]:
    """Runs CountCalls over `recordings`; returns its Beam counters."""
    if scores_in_this_process(beam_args):
        # The model loads and warms up while Beam starts and the first recordings decode.
        threading.Thread(target=_preload, args=(model_dir, config), daemon=True).start()
    handler = transform.ChunkScorerHandler(functools.partial(scorer.warm_scorer, model_dir, config))
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    _ = (
        pipeline
        | "ListRecordings" >> beam.Create(recordings)
        | "CountCalls" >> transform.CountCalls(config, handler, output_dir, plots, progress)
    )
    result = pipeline.run()
    result.wait_until_finish()
    try:
        return transform.counters(result)
    except NotImplementedError:  # the DaskRunner collects no metrics (components/on_dask.py)
        return {}


def run_counting(
    model: str,
    recordings: str,
    output_dir: str,
    threshold: Optional[float] = None,
    hop_seconds: Optional[float] = None,
    beam_args: Optional[List[str]] = None,
    plots: bool = False,
    chunk_windows: Optional[int] = None,
    whole_recordings: Optional[bool] = None,
    log_mel_once: Optional[bool] = None,
    bfloat16: Optional[bool] = None,
    operating_point: Optional[Dict] = None,
) -> Dict:
    """Counts calls in every recording not yet done in `output_dir`, then rewrites the tables from all
    finished recordings. Re-running skips what is done; a killed run picks up where it stopped.

    Args:
      model: a pushed SavedModel, or the Pusher's base folder (newest version).
      recordings: a folder (searched recursively) or a glob.
      output_dir: where the tables go.
      threshold: call threshold; default: the operating point's.
      hop_seconds: step between 3 s windows (3.0 = the tutorial's non-overlapping windows); default:
        CountingConfig's.
      beam_args: Beam pipeline options; default: DirectRunner, threads (with_local_parallelism).
      plots: also write a PNG per recording.
      chunk_windows: windows per scoring chunk (a multiple of SCORE_BATCH); results do not depend on it.
        Default: CountingConfig's.
      whole_recordings: score each recording whole where the model can (CountingConfig's default), else
        (False) window by window.
      log_mel_once: scored whole, each recording's log-mel computed once where the model gives it
        (CountingConfig's default), else (False) each window's spectrogram on its own.
      bfloat16: the networks in bfloat16 where the CPU computes it natively (CountingConfig's default),
        else (False) float32.
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
    config = CountingConfig.of(point["threshold"], hop_seconds=hop_seconds, chunk_windows=chunk_windows,
                               whole_recordings=whole_recordings, log_mel_once=log_mel_once, bfloat16=bfloat16,
                               band_hz=scoring.band_read(model_dir),
                               gap_seconds=point["gap_seconds"],
                               min_call_seconds=point["min_call_seconds"])
    all_recordings = list_recordings(recordings)
    done = outputs.prepare_parts(output_dir)
    pending = [r for r in all_recordings if r not in done]
    _log.info("Counting calls in %d recordings (%d already done) with %s, threshold %.3f, hop %.2f s",
              len(pending), len(all_recordings) - len(pending), model_dir, config.threshold, config.hop_seconds)
    if pending:
        progress = transform.Progress(len(all_recordings), len(all_recordings) - len(pending))
        counters = _count(model_dir, config, pending, output_dir, with_local_parallelism(beam_args), plots, progress)
        if counters:
            _log.info("This run: %d files, %d failed, %d s of audio", counters.get("files", 0),
                      counters.get("failed", 0), counters.get("audio_seconds", 0))
    results = outputs.load_parts(output_dir)
    outputs.write_tables(results.values(), output_dir)
    return outputs.write_summary(output_dir, results, pending, time.time() - started, model_dir, point, config)
