"""Benchmark: which rule turns frame scores into calls, chosen without looking at the fold it is scored on.

    python bench/count_rules.py RUN_DIR [--planted RUN_DIR/planted] [--folds 5]

RUN_DIR is the output of `bench/accuracy.py --models default --output-dir RUN_DIR` (one trained model per
fold, and the fold's planted recordings). Each fold's model scores its planted recordings once, window by
window (cached in the fold's folder as window_scores_hop<H>.npz); every rule of the grid below then counts them
from those scores, the way the counting job would:

- hop: seconds between the 3 s windows (the counting job's --hop-seconds, now 1.5);
- track: each moment's score from the window it is most central in ('central', the counting job's), or
  the mean of every window covering it ('mean');
- preferred: the threshold ThresholdSelector's rule picks on the fold's eval clips, with this preferred
  threshold (PREFERRED_THRESHOLD, now 0.5: the fewest wrong clips, ties within one clip go to the one
  nearest the preferred);
- low: hysteresis, as a share of the threshold (1 = none): a call is a run of frames above threshold x low
  that peaks above the threshold;
- gap: runs closer than this are joined; min: runs shorter than this are dropped.

Leave one fold out: for each fold, the rule with the lowest count MAE on the *other* folds (ties: more
recordings exact, then the counting job's current rule) counts the fold. The mean over folds of those
held-out counts is the honest number; the rule chosen on all five folds is the one to make the default.
"""

import argparse
import itertools
import json
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import planted  # noqa: E402
from accuracy import best_threshold  # noqa: E402
from pipeline_runs import trained_model_dir  # noqa: E402

from components import counting, scoring, synthetic_data  # noqa: E402
from model import features  # noqa: E402

HOPS = (features.HOP_SECONDS, 1.0, 0.75)
TRACKS = ("central", "mean")
PREFERRED = (0.5, 0.4, 0.3)
LOWS = (1.0, 0.6, 0.4, 0.2)
GAPS = (0.5, 1.0)
MINS = (0.5, 0.75, 1.0)
CURRENT = (features.HOP_SECONDS, "central", features.PREFERRED_THRESHOLD, 1.0, features.CALL_GAP_SECONDS,
           features.MIN_CALL_SECONDS)


def window_scores(fold_dir: str, recordings: str, hop_seconds: float):
    """{recording: (window starts in seconds, frame scores [windows, frames])} from the fold's model,
    cached in the fold's folder."""
    cache = os.path.join(fold_dir, f"window_scores_hop{hop_seconds:g}.npz")
    if not os.path.exists(cache):
        scored = planted.score_recordings(scoring.WindowScorer(trained_model_dir(fold_dir)), recordings, hop_seconds)
        np.savez(cache, **{f"{n}/starts": s for n, (s, _) in scored.items()},
                 **{f"{n}/frames": f for n, (_, f) in scored.items()})
    saved = np.load(cache)
    return {name: (saved[f"{name}/starts"], saved[f"{name}/frames"])
            for name in synthetic_data.read_forest_truth(recordings)}


def mean_track(starts_s: np.ndarray, frame_scores: np.ndarray) -> np.ndarray:
    """Each model frame of the recording: the mean score of every window that covers it."""
    frames = frame_scores.shape[1]
    slots = np.floor(starts_s / features.MODEL_FRAME_STEP_SECONDS + 0.5).astype(np.int64)[:, None] + np.arange(frames)
    total = np.zeros(slots.max() + 1)
    covered = np.zeros(slots.max() + 1)
    np.add.at(total, slots, frame_scores)
    np.add.at(covered, slots, 1)
    return (total / np.maximum(covered, 1)).astype(np.float32)


def count(tracks, truth, rule, thresholds) -> dict:
    _, _, preferred, low, gap, minimum = rule
    threshold = thresholds[preferred]
    detections = {}
    for name, track in tracks.items():
        times = np.arange(len(track)) * features.MODEL_FRAME_STEP_SECONDS
        calls = counting.frame_calls(times, track, threshold, low * threshold, gap, minimum)
        detections[name] = [(s, e) for s, e, _ in calls]
    return planted.count_scores({n: len(d) for n, d in detections.items()}, detections, truth)


def describe(rule) -> str:
    hop, track, preferred, low, gap, minimum = rule
    return f"hop {hop:g} s, {track}, preferred {preferred:g}, low ×{low:g}, gap {gap:g} s, min {minimum:g} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--planted", help="the planted recordings (fold0/, fold1/, ...); default RUN_DIR/planted")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    planted_dir = args.planted or os.path.join(args.run_dir, "planted")

    rules = list(itertools.product(HOPS, TRACKS, PREFERRED, LOWS, GAPS, MINS))
    with open(os.path.join(args.run_dir, "default.json")) as f:  # the eval clips' labels and scores
        clip_scores = {row["fold"]: (np.array(row["labels"]), np.array(row["scores"])) for row in json.load(f)}
    results = {}  # (rule, fold) -> count scores
    for fold in range(args.folds):
        fold_dir = os.path.join(args.run_dir, "default", f"fold{fold}")
        recordings = os.path.join(planted_dir, f"fold{fold}")
        truth = synthetic_data.read_forest_calls(recordings)
        thresholds = {p: best_threshold(*clip_scores[fold], preferred=p) for p in PREFERRED}
        tracks = {}
        for hop in HOPS:
            scored = window_scores(fold_dir, recordings, hop)
            tracks[hop, "central"] = {n: counting.frame_track(s, f)[1] for n, (s, f) in scored.items()}
            tracks[hop, "mean"] = {n: mean_track(s, f) for n, (s, f) in scored.items()}
        for rule in rules:
            results[rule, fold] = count(tracks[rule[:2]], truth, rule, thresholds)
        print(f"fold {fold}: {len(truth)} recordings scored; thresholds chosen with preferred "
              + ", ".join(f"{p:g}: {t:.3f}" for p, t in thresholds.items()), flush=True)

    def mean(rule, folds, key):
        return statistics.mean(results[rule, f][key] for f in folds)

    def best(folds):
        return min(rules, key=lambda r: (round(mean(r, folds, "mae"), 6), -round(mean(r, folds, "exact"), 6), r != CURRENT))

    all_folds = range(args.folds)
    print("\nLeave one fold out: the rule chosen on the other folds, scored on the held-out fold\n")
    print("| held-out fold | rule chosen on the other folds | count MAE | exact | event P | event R | current rule MAE |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    held_out = []
    for fold in all_folds:
        rule = best([f for f in all_folds if f != fold])
        r = results[rule, fold]
        held_out.append(r)
        print(f"| {fold} | {describe(rule)} | {r['mae']:.2f} | {r['exact']:.2f} | {r['event_precision']:.3f} | "
              f"{r['event_recall']:.3f} | {results[CURRENT, fold]['mae']:.2f} |")
    print(f"| mean | | **{statistics.mean(r['mae'] for r in held_out):.2f}** | "
          f"**{statistics.mean(r['exact'] for r in held_out):.2f}** | "
          f"{statistics.mean(r['event_precision'] for r in held_out):.3f} | "
          f"{statistics.mean(r['event_recall'] for r in held_out):.3f} | {mean(CURRENT, all_folds, 'mae'):.2f} |")

    print("\nEvery fold (rules chosen on all folds; the top ten and the current rule)\n")
    print("| rule | count MAE per fold | mean MAE | exact | event P | event R |\n|---|---|---:|---:|---:|---:|")
    ranked = sorted(rules, key=lambda r: (round(mean(r, all_folds, "mae"), 6), -round(mean(r, all_folds, "exact"), 6)))
    for rule in ranked[:10] + ([CURRENT] if CURRENT not in ranked[:10] else []):
        per_fold = " ".join(f"{results[rule, f]['mae']:.2f}" for f in all_folds)
        print(f"| {describe(rule)}{' (current)' if rule == CURRENT else ''} | {per_fold} | "
              f"{mean(rule, all_folds, 'mae'):.2f} | {mean(rule, all_folds, 'exact'):.2f} | "
              f"{mean(rule, all_folds, 'event_precision'):.3f} | {mean(rule, all_folds, 'event_recall'):.3f} |")


if __name__ == "__main__":
    main()
