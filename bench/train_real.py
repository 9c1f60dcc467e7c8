"""Benchmark: train both architectures on the real clips through the real pipeline, side by side.

    python bench/train_real.py [--data-root ../shared/capuchin] [--output-dir runs/bench_train]

Each architecture runs `runners/local_runner.py` in its own output dir (fresh ML Metadata, no cache)
on the same grouped split, and the script prints a Markdown table: eval recall, precision, F1 and
average precision from the Evaluator, the F1-best threshold, blessing, and wall time.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from model import constants

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS = {constants.ARCHITECTURE_DEFAULT: constants.DEFAULT_EPOCHS, constants.ARCHITECTURE_SEED: 4}  # seed: the tutorial's 4 epochs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.path.join(HERE, "..", "..", "shared", "capuchin"))
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_train"))
    parser.add_argument("--models", nargs="+", default=list(constants.ARCHITECTURES))
    args = parser.parse_args()
    rows = []
    for architecture in args.models:
        out = os.path.join(args.output_dir, architecture)
        shutil.rmtree(out, ignore_errors=True)
        report_path = os.path.join(out, "report.json")
        command = [
            sys.executable, os.path.join(HERE, "..", "runners", "local_runner.py"), "--data-root", args.data_root,
            "--output-dir", out, "--model", architecture, "--epochs", str(EPOCHS[architecture]),
            "--report-json", report_path, "--recordings", "",  # training only: counting is benchmarked apart
        ]
        started = time.time()
        subprocess.run(command, check=True)
        wall = time.time() - started
        with open(report_path) as f:
            report = json.load(f)
        m = report["metrics"]
        recall, precision = m["recall"], m["precision"]
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        rows.append(
            f"| {architecture} | {EPOCHS[architecture]} | {m['example_count']:.0f} | {recall:.3f} | {precision:.3f} | "
            f"{f1:.3f} | {m['average_precision']:.3f} | {report['threshold']:.3f} | "
            f"{'yes' if report['blessed'] else 'no'} | {wall:.0f} |"
        )
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores. Data: {os.path.abspath(args.data_root)}\n")
    print("| model | epochs | eval clips | recall | precision | F1 | average precision | F1-best threshold | blessed | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
