"""Benchmark: train both architectures on the real clips through the real pipeline, side by side.

    python bench/train_real.py [--data-root ../shared/capuchin] [--output-dir runs/bench_train]

Each architecture runs `runners/local_runner.py` in its own output dir (fresh ML Metadata, no cache)
on the same grouped split, and the script prints a Markdown table: eval recall, precision, F1 and
average precision from the Evaluator, the F1-best threshold, blessing, and wall time.
"""

import argparse
import os
import platform

from model import constants
from pipeline_runs import REAL_DATA_ROOT, f1, run_local_pipeline


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_train"))
    parser.add_argument("--architectures", nargs="+", default=list(constants.ARCHITECTURES))
    args = parser.parse_args()
    rows = []
    for architecture in args.architectures:
        report, wall = run_local_pipeline(args.data_root, os.path.join(args.output_dir, architecture), architecture)
        m = report["metrics"]
        rows.append(
            f"| {architecture} | {constants.EPOCHS[architecture]} | {m['example_count']:.0f} | {m['recall']:.3f} | "
            f"{m['precision']:.3f} | {f1(m['precision'], m['recall']):.3f} | {m['average_precision']:.3f} | "
            f"{report['threshold']:.3f} | {'yes' if report['blessed'] else 'no'} | {wall:.0f} |"
        )
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores. Data: {os.path.abspath(args.data_root)}\n")
    print("| architecture | epochs | eval clips | recall | precision | F1 | average precision | F1-best threshold | blessed | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
