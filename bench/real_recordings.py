"""Benchmark: a pushed model on the real recordings, at its eval-clip threshold and at its site-calibrated
operating point: false calls per hour on `Forest Backgrounds/`, and agreement with the reference models on
`Forest Recordings/` where at least 8 of the 9 distinct reference models agree.

    python bench/real_recordings.py --model runs/real/serving_model [--data-root ../shared/capuchin]
                                    [--output-dir runs/real_recordings]

The backgrounds are the ones a production run calibrates on, so their false calls at the calibrated point
are in-sample (bench/accuracy.py gives the out-of-fold rate); the reference counts are other models'
outputs, not ground truth.
"""

import argparse
import csv
import json
import os

from count_real import reference_consensus
from components import counting, dataset, scoring
from pipeline_runs import REAL_DATA_ROOT


def count(model_dir: str, recordings: str, out_dir: str, point: dict):
    """{recording: calls} and the hours of audio counted."""
    summary = counting.run_counting(model_dir, recordings, out_dir, operating_point=point)
    with open(os.path.join(out_dir, counting.COUNTS_CSV)) as f:
        return {row["recording"]: int(row["capuchin_calls"]) for row in csv.DictReader(f)}, summary["audio_hours"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--output-dir", default=os.path.join("runs", "real_recordings"))
    args = parser.parse_args()
    model_dir = scoring.resolve_model_dir(args.model)
    calibrated = scoring.read_operating_point(model_dir)
    with open(os.path.join(model_dir, scoring.THRESHOLD_FILE)) as f:
        eval_threshold = json.load(f).get("eval_threshold", calibrated["threshold"])
    points = {"eval-clip threshold": scoring.default_rule_point(eval_threshold, "eval clips"),
              "site calibration": calibrated}
    consensus = reference_consensus(os.path.join(args.data_root, "reference_counts"))
    print(f"Model {model_dir}\n")
    print("| operating point | threshold, gap, min | background false calls (per hour) | agrees with the "
          "consensus | MAE against it | calls in Forest Recordings |")
    print("|---|---|---:|---:|---:|---:|")
    for name, point in points.items():
        folder = os.path.join(args.output_dir, name.split()[0])
        backgrounds, hours = count(model_dir, os.path.join(args.data_root, dataset.BACKGROUNDS_DIR),
                                   os.path.join(folder, "backgrounds"), point)
        forest, _ = count(model_dir, os.path.join(args.data_root, dataset.FOREST_DIR), os.path.join(folder, "forest"),
                          point)
        false_calls = sum(backgrounds.values())
        agreed = [n for n in forest if n in consensus]
        errors = [abs(forest[n] - consensus[n][0]) for n in agreed]
        print(f"| {name} | {point['threshold']:.3f}, {point['gap_seconds']:g} s, {point['min_call_seconds']:g} s | "
              f"{false_calls} ({false_calls / hours:.2f}) | {sum(e == 0 for e in errors)}/{len(agreed)} | "
              f"{sum(errors) / max(1, len(errors)):.2f} | {sum(forest.values())} |")
        noisy = {n: c for n, c in backgrounds.items() if c}
        if noisy:
            print(f"|  | backgrounds with calls: {noisy} | | | | |")
        points[name]["forest"] = forest
    print("\n| recording | consensus (models agreeing) | " + " | ".join(points) + " |")
    print("|---|---:|" + "---:|" * len(points))
    for name in sorted(next(iter(points.values()))["forest"]):
        agreed = f"{consensus[name][0]} ({consensus[name][1]})" if name in consensus else "–"
        print(f"| {name} | {agreed} | " + " | ".join(str(p["forest"].get(name, "")) for p in points.values()) + " |")


if __name__ == "__main__":
    main()
