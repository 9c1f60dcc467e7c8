"""Benchmark: grouped K-fold cross-validation on the real clips, through the real pipeline.

    python bench/accuracy.py [--data-root ../shared/capuchin] [--folds 5] [--models default seed]

For each fold k, `runners/local_runner.py --fold k N` ingests with the groups (XC<id> / sound name) of
fold k as eval and the rest as train, and runs the whole TFX pipeline (fresh output dir, no counting).
Prints, per architecture, recall, precision and F1 at 0.5 (the Evaluator's), F1 at the threshold
ThresholdSelector picked on that fold (optimistic: chosen on the same eval clips) and average precision,
as mean ± standard deviation over folds, then one row per fold.
"""

import argparse
import json
import os
import platform
import statistics

from model import constants
from pipeline_runs import EPOCHS, REAL_DATA_ROOT, f1, run_local_pipeline


def run_fold(data_root: str, output_dir: str, architecture: str, fold: int, folds: int) -> dict:
    report, wall = run_local_pipeline(
        data_root, os.path.join(output_dir, architecture, f"fold{fold}"), architecture, (fold, folds), quiet=True
    )
    with open(os.path.join(report["threshold_uri"], "threshold.json")) as f:
        chosen = json.load(f)
    m, clips = report["metrics"], report["ingestion"]["clips"]["eval"]
    return {
        "fold": fold, "eval_calls": clips["call"], "eval_others": clips["not_call"],
        "recall": m["recall"], "precision": m["precision"], "f1": f1(m["precision"], m["recall"]),
        "f1_tuned": chosen["f1"], "threshold": chosen["threshold"], "ap": m["average_precision"],
        "blessed": report["blessed"], "wall": wall,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_kfold"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(constants.ARCHITECTURES))
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores. Data: {os.path.abspath(args.data_root)}; "
          f"{args.folds} folds by source group.\n")
    for architecture in args.models:
        rows = [run_fold(args.data_root, args.output_dir, architecture, k, args.folds) for k in range(args.folds)]
        print(f"**{architecture}** ({EPOCHS[architecture]} epochs)\n")
        print("| metric | mean | std |\n|---|---:|---:|")
        for key, name in (("recall", "recall at 0.5"), ("precision", "precision at 0.5"), ("f1", "F1 at 0.5"),
                          ("f1_tuned", "F1 at the fold's chosen threshold"), ("ap", "average precision")):
            values = [r[key] for r in rows]
            print(f"| {name} | {statistics.mean(values):.3f} | {statistics.stdev(values):.3f} |")
        print("\n| fold | eval calls / others | recall | precision | F1 | F1 (chosen threshold) | threshold | AP | blessed | wall s |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in rows:
            print(f"| {r['fold']} | {r['eval_calls']} / {r['eval_others']} | {r['recall']:.3f} | {r['precision']:.3f} | "
                  f"{r['f1']:.3f} | {r['f1_tuned']:.3f} | {r['threshold']:.3f} | {r['ap']:.3f} | "
                  f"{'yes' if r['blessed'] else 'no'} | {r['wall']:.0f} |")
        print(flush=True)


if __name__ == "__main__":
    main()
