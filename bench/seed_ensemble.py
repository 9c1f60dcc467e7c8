"""Benchmark: how much the counts depend on the training seed, and what averaging seeds buys.

    python bench/seed_ensemble.py RUN_DIR [RUN_DIR ...] [--planted runs/bench_kfold/planted]
                                  [--thresholds 0.3 0.5 0.7 0.9] [--tie-clips 1]

Each RUN_DIR is the output of `bench/accuracy.py --models default [--model-seeds S ...] --output-dir
RUN_DIR` (one model per fold, of one network or more). For every fold, each model scores the fold's eval
clips and planted recordings once; then every single model and every average of two or more of them
(the ensemble the pipeline exports with `--model-seeds S1 S2 ...`: mean frame probability) is counted the
counting job's way (hop 1.5 s, frame track, runs joined < 1 s apart and kept when >= 1 s), at the threshold
ThresholdSelector's rule picks on the eval clips (components.threshold.choose_threshold), at fixed
thresholds, and at the two thresholds the fold's own sounds play no part in, as in bench/accuracy.py:
'pooled' (the rule on the other folds' clips together) and 'others' (each other fold's chosen threshold
in turn, the metrics averaged). Combining offline skips retraining: an ensemble trained by the pipeline
trains the same members, up to run-to-run noise (training is not bit-reproducible on CPU), and that noise
is not small: six networks counted 0.21 / 82 % combined offline and 0.25 / 79 % trained (BENCHMARKS.md).
"""

import argparse
import itertools
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import planted  # noqa: E402
from accuracy import COUNT_METRICS, average_precision, best_threshold, eval_clips, f1_at, pooled_threshold  # noqa: E402
from pipeline_runs import REAL_DATA_ROOT, trained_model_dir  # noqa: E402

from components import audio, counting, scoring, synthetic_data  # noqa: E402
from model import features  # noqa: E402


def fold_scores(run_dir: str, fold: int, folds: int, data_root: str, recordings: str):
    """One fold's model: frame probabilities of the eval clips [clips, frames] and the frame track of
    each planted recording, cached in the fold's folder."""
    fold_dir = os.path.join(run_dir, "default", f"fold{fold}")
    cache = os.path.join(fold_dir, "frame_scores.npz")
    if os.path.exists(cache):
        saved = dict(np.load(cache))
        return saved.pop("eval_clips"), saved
    scorer = scoring.WindowScorer(trained_model_dir(fold_dir))
    windows = np.stack([audio.load_clip(c.path) for c in eval_clips(data_root, fold, folds)])
    clips = np.concatenate([scorer.frames(windows[i : i + counting.SCORE_BATCH])
                            for i in range(0, len(windows), counting.SCORE_BATCH)])
    tracks = {name: counting.frame_track(starts_s, frames)[1]
              for name, (starts_s, frames) in planted.score_recordings(scorer, recordings).items()}
    np.savez(cache, eval_clips=clips, **tracks)
    return clips, tracks


def count_at(tracks, truth, threshold: float) -> dict:
    detections = {}
    for name, track in tracks.items():
        times = np.arange(len(track)) * features.MODEL_FRAME_STEP_SECONDS
        detections[name] = [(s, e) for s, e, _ in counting.frame_calls(times, track, threshold)]
    return planted.count_scores({n: len(d) for n, d in detections.items()}, detections, truth)


def _average(results):
    """(threshold, F1, count metrics) averaged over several thresholds (the threshold itself is not)."""
    counts = [c for _, _, c in results]
    return (None, statistics.mean(f1 for _, f1, _ in results),
            {key: statistics.mean(c[key] for c in counts) for key, _ in COUNT_METRICS})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--planted", default=os.path.join("runs", "bench_kfold", "planted"),
                        help="bench/accuracy.py's planted recordings (fold0/, fold1/, ...)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--tie-clips", type=int, default=features.THRESHOLD_TIE_CLIPS,
                        help="ThresholdSelector's tie width in clips (0: only exact ties)")
    args = parser.parse_args()

    labels, truth, scores = {}, {}, {}
    for fold in range(args.folds):
        labels[fold] = np.array([c.label for c in eval_clips(args.data_root, fold, args.folds)])
        recordings = os.path.join(args.planted, f"fold{fold}")
        truth[fold] = synthetic_data.read_forest_calls(recordings)
        for run in args.run_dirs:
            scores[run, fold] = fold_scores(run, fold, args.folds, args.data_root, recordings)
    names = {run: os.path.basename(os.path.normpath(run)) for run in args.run_dirs}
    print("| models averaged | threshold | per-fold thresholds | clip F1 | AP | count MAE (per fold) | mean | exact "
          "| event P | event R |\n|---|---|---|---:|---:|---|---:|---:|---:|---:|")
    for size in range(1, len(args.run_dirs) + 1):
        for runs in itertools.combinations(args.run_dirs, size):
            clips, tracks, chosen = {}, {}, {}
            for fold in range(args.folds):
                clips[fold] = np.mean([scores[r, fold][0] for r in runs], axis=0).max(axis=1)  # window = best frame
                tracks[fold] = {n: np.mean([scores[r, fold][1][n] for r in runs], axis=0) for n in truth[fold]}
                chosen[fold] = best_threshold(labels[fold], clips[fold], args.tie_clips)
            rows = {}
            for fold in range(args.folds):
                others = [f for f in range(args.folds) if f != fold]
                pooled = pooled_threshold([labels[f] for f in others], [clips[f] for f in others], args.tie_clips)

                def at(threshold, fold=fold):  # (threshold, clip F1, count metrics) on this fold
                    return threshold, f1_at(labels[fold], clips[fold], threshold)[0], \
                        count_at(tracks[fold], truth[fold], threshold)

                rows[fold] = {"chosen": at(chosen[fold]), "pooled": at(pooled),
                              "others": _average([at(chosen[f]) for f in others]),
                              **{t: at(t) for t in args.thresholds}}
            aps = [average_precision(labels[fold], clips[fold]) for fold in range(args.folds)]
            for setting in ["chosen", "pooled", "others"] + args.thresholds:
                per_fold = [rows[f][setting] for f in range(args.folds)]
                counts = [c for _, _, c in per_fold]
                mean = lambda key: statistics.mean(c[key] for c in counts)  # noqa: E731
                thresholds = " ".join(f"{t:.3f}" for t, _, _ in per_fold) if setting in ("chosen", "pooled") else "–"
                fold_maes = " ".join(f"{c['mae']:.2f}" for c in counts)
                print(f"| {' + '.join(names[r] for r in runs)} | {setting} | {thresholds} | "
                      f"{statistics.mean(f1 for _, f1, _ in per_fold):.3f} | {statistics.mean(aps):.4f} | "
                      f"{fold_maes} | {mean('mae'):.2f} | {mean('exact'):.2f} | {mean('event_precision'):.3f} | "
                      f"{mean('event_recall'):.3f} |", flush=True)


if __name__ == "__main__":
    main()
