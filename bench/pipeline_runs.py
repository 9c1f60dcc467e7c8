"""Shared by the training benchmarks: one fresh `runners/local_runner.py` run on real clips, and its report."""

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Optional, Sequence, Tuple

from pipeline import configs

HERE = os.path.dirname(os.path.abspath(__file__))
REAL_DATA_ROOT = os.path.join(HERE, "..", "..", "shared", "capuchin")


def run_local_pipeline(
    data_root: str, output_dir: str, architecture: str, fold: Optional[Tuple[int, int]] = None, quiet: bool = False,
    ensemble_seeds: Optional[Sequence[int]] = None, held_out_fold: Optional[int] = None,
    train_backgrounds: str = "", reviewed: str = "", student: bool = configs.STUDENT,
    augmentations: Sequence[str] = configs.AUGMENTATIONS,
    unlabelled: str = "",
) -> Tuple[dict, float]:
    """Ingestion + the whole pipeline in a fresh `output_dir`, training only (no counting), with the
    architecture's default epochs. `train_backgrounds`: site recordings to train on as well (k-fold deals
    them to folds, and leaves the held-out fold's out). `reviewed`: a review's labels CSV whose snippets
    are added as training clips (local_runner.py --reviewed). `student`: distil the ensemble into one network
    and export that (--student; else --no-student; default: the pipeline's); `unlabelled`: recordings whose
    windows it also learns from (--unlabelled).
    `augmentations`: local_runner.py --augmentations (none: an empty one).

    Returns the run's report (metrics, blessing, threshold, ingestion summary) and its wall seconds.
    """
    shutil.rmtree(output_dir, ignore_errors=True)
    report_path = os.path.join(output_dir, "report.json")
    command = [
        sys.executable, os.path.join(HERE, "..", "runners", "local_runner.py"), "--data-root", data_root,
        "--output-dir", output_dir, "--architecture", architecture,
        "--report-json", report_path, "--recordings", "",  # training only: counting
        "--backgrounds", "",  # and calibration are benchmarked apart
        "--train-backgrounds", train_backgrounds,
    ] + (["--fold", str(fold[0]), str(fold[1])] if fold else []) + (
        ["--held-out-fold", str(held_out_fold)] if held_out_fold is not None else []) + (
        ["--ensemble-seeds", *map(str, ensemble_seeds)] if ensemble_seeds else []) + (
        ["--reviewed", reviewed] if reviewed else []) + (["--student" if student else "--no-student"]) + [
        "--augmentations", *augmentations, "--unlabelled", unlabelled]
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL if quiet else None)
    wall = time.time() - started
    with open(report_path) as f:
        return json.load(f), wall


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def trained_model_dir(run_dir: str) -> str:
    """The serving model the Trainer exported in a `run_local_pipeline` output folder."""
    with open(os.path.join(run_dir, "report.json")) as f:
        return os.path.join(json.load(f)["model_uri"], "Format-Serving")
