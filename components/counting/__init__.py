"""Counting calls in recordings: window, score with the pushed model, turn the scores into calls.

Windows of 3 s every `hop` seconds are cut from each recording. The default model scores each 40 ms
frame; every moment of the recording takes its score from the window it sits most central in, and a
call is a run of frames at or above the threshold (runs less than CALL_GAP_SECONDS apart joined, runs
shorter than MIN_CALL_SECONDS dropped). A model with one score per window (the tutorial's) counts the
tutorial's way: each run of consecutive windows at or above the threshold is one call.

    config.py     CountingConfig: the job's settings and their defaults
    windows.py    window geometry: window starts, chunks of long recordings, joining windows' scores
    scorer.py     scoring a recording: how a model scores it (whole or window by window), the warm scorer
    rules.py      call rules (plain numpy): scores → calls
    transform.py  the Beam transform CountCalls, its DoFns and RunInference model handler, its counters
    outputs.py    the output folder: part files, tables, plots, summary
    job.py        run_counting, the resumable job

The names other packages use are importable from here: `from components import counting`.
"""

from components.counting.config import SCORE_BATCH, CountingConfig
from components.counting.job import list_recordings, run_counting, scores_in_this_process, with_local_parallelism
from components.counting.outputs import (
    COUNTS_CSV,
    DETECTIONS_CSV,
    FAILURES_CSV,
    PARTS_DIR,
    PLOTS_DIR,
    SELECTIONS_TXT,
    SUMMARY_JSON,
    load_parts,
    write_tables,
)
from components.counting.rules import calls_in
from components.counting.scorer import HowScored, RecordingScorer, ScoredChunk, warm_scorer
from components.counting.transform import METRICS_NAMESPACE, ChunkScorerHandler, CountCalls, counters
from components.counting.windows import Chunk, whole_chunk
