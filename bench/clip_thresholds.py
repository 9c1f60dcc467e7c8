"""Benchmark: clip F1 on each fold's unseen sources at clip thresholds chosen without the fold.

    python bench/clip_thresholds.py --runs runs/bench_b [--show-errors]

Reads what `bench/accuracy.py` left in each training's folds (clip_scores.json: every test clip's score,
and every eval clip's, fold k+1's, which the eval-clip threshold is chosen on; row.json: the operating
points it counted at) and scores fold k's clips at:
- the eval-clip threshold (ThresholdSelector on the Evaluator's confusion matrices: what `score_clips.py`
  calls clips at);
- the site-calibrated threshold (what `count_calls.py` counts at);
- ThresholdSelector's rule applied to the eval clips' scores here (a check on the first; the Evaluator's eval
  split also holds site windows, so it can differ where eval clips tie);
- the best threshold for fold k itself (a bound, not an operating point: it is chosen with the fold).
Prints each training's mean F1 over its folds, the mean over trainings and their spread, and per fold
the thresholds. `--show-errors` lists the clips each fold gets wrong at the eval-clip threshold.
"""

import argparse
import glob
import json
import os
import statistics

import numpy as np

from accuracy import CLIP_SCORES_JSON, f1_at
from components import threshold as threshold_selector
from pipeline import configs

RULES = ("eval_clip", "calibrated", "selector_here", "own_best")
RULE_NAMES = {"eval_clip": "eval-clip threshold (score_clips.py)", "calibrated": "site-calibrated (count_calls.py)",
              "selector_here": "ThresholdSelector's rule on the eval scores here",
              "own_best": "the fold's own best (a bound)"}
# The Evaluator's confusion matrices: thresholds i / (n - 1) (pipeline/pipeline.py, ConfusionMatrixPlot).
GRID = np.linspace(0.0, 1.0, configs.PR_CURVE_THRESHOLDS)


def error_points(labels: np.ndarray, scores: np.ndarray):
    """What ThresholdSelector's rule (threshold.choose_threshold) reads of each grid step: the wrong clips
    (false alarms + missed calls)."""
    return [{"threshold": float(t), "errors": int(np.sum((scores >= t) != (labels == 1)))} for t in GRID]


def fold_thresholds(fold_dir: str) -> dict:
    with open(os.path.join(fold_dir, CLIP_SCORES_JSON)) as f:
        clip_scores = json.load(f)
    with open(os.path.join(fold_dir, "row.json")) as f:
        row = json.load(f)
    split = {name: (np.array([c[1] for c in clips]), np.array([c[2] for c in clips]), [c[0] for c in clips])
             for name, clips in clip_scores.items()}
    labels, scores, paths = split["test"]
    eval_labels, eval_scores, _ = split["eval"]
    thresholds = {"eval_clip": row["points"]["before"]["threshold"], "calibrated": row["points"]["threshold"]["threshold"],
                  "selector_here": threshold_selector.choose_threshold(error_points(eval_labels, eval_scores))["threshold"],
                  "own_best": float(max(GRID, key=lambda t: f1_at(labels, scores, t)))}
    return {"fold": row["fold"], "thresholds": thresholds,
            "f1": {rule: f1_at(labels, scores, t) for rule, t in thresholds.items()},
            "wrong": [(os.path.relpath(p, os.path.dirname(os.path.dirname(p))), int(l), float(s))
                      for p, l, s in zip(paths, labels, scores) if (s >= thresholds["eval_clip"]) != bool(l)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="bench/accuracy.py output folders")
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    trainings = []
    for run in args.runs:
        for training in sorted(glob.glob(os.path.join(run, "seeds-*"))):
            folds = [fold_thresholds(d) for d in sorted(glob.glob(os.path.join(training, "fold*")))
                     if os.path.exists(os.path.join(d, CLIP_SCORES_JSON)) and os.path.exists(os.path.join(d, "row.json"))]
            if folds:
                trainings.append((training, folds))
    print("| clip threshold | " + " | ".join(os.path.basename(t) for t, _ in trainings) + " | mean (± half the spread) |")
    print("|---|" + "---:|" * (len(trainings) + 1))
    for rule in RULES:
        means = [statistics.mean(f["f1"][rule] for f in folds) for _, folds in trainings]
        print(f"| {RULE_NAMES[rule]} | " + " | ".join(f"{m:.3f}" for m in means)
              + f" | **{statistics.mean(means):.3f}** (± {(max(means) - min(means)) / 2:.3f}) |")
    for training, folds in trainings:
        print(f"\n{os.path.basename(training)}: fold: thresholds (F1) " + ", ".join(RULES))
        for f in folds:
            print(f"  {f['fold']}: " + " / ".join(f"{f['thresholds'][r]:.3f} ({f['f1'][r]:.3f})" for r in RULES))
            if args.show_errors:
                for path, label, score in f["wrong"]:
                    print(f"      {'missed call' if label else 'false call'} {score:.3f} {path}")


if __name__ == "__main__":
    main()
