"""Two bench/accuracy.py outputs side by side, paired training by training and fold by fold.

    python bench/compare_accuracy.py --baseline runs/bench_siteB_recount --candidate runs/bench_review
                                     [--point threshold]

Both must come from the same folds and planted test sets; the trainings (seeds-*/foldK/row.json) and
folds counted in both are compared (a run still going gives a partial table). Prints, for one operating point (default: the calibrated threshold, what ships), each metric's value per
training for both, their means, and the paired difference per training; then the forest MAE per fold.
"""

import argparse
import glob
import json
import os
import statistics

from accuracy import COUNT_METRICS, POINT_NAMES, POINTS, training_summary


def trainings(folder: str) -> dict:
    """{seeds name: [row per fold]} for every training with all its folds counted."""
    found = {}
    for training in sorted(glob.glob(os.path.join(folder, "seeds-*"))):
        if os.path.isdir(training):
            rows = []
            for path in sorted(glob.glob(os.path.join(training, "fold*", "row.json"))):
                with open(path) as f:
                    rows.append(json.load(f))
            found[os.path.basename(training)] = rows
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--point", choices=POINTS, default="threshold")
    args = parser.parse_args()
    baseline, candidate = trainings(args.baseline), trainings(args.candidate)
    for name in [n for n in baseline if n in candidate]:  # the folds counted in both
        common = {r["fold"] for r in baseline[name]} & {r["fold"] for r in candidate[name]}
        baseline[name] = [r for r in baseline[name] if r["fold"] in common]
        candidate[name] = [r for r in candidate[name] if r["fold"] in common]
    names = [n for n in baseline if candidate.get(n) and [r["fold"] for r in baseline[n]] == [r["fold"] for r in candidate[n]]]
    if not names:
        raise SystemExit("no fold counted in both")
    print(f"At the {POINT_NAMES[args.point]}; trainings {', '.join(names)}; folds "
          f"{[r['fold'] for r in baseline[names[0]]]}\n")
    print("| metric | baseline (per training → mean) | candidate | paired difference per training |")
    print("|---|---|---|---|")
    summaries = {name: (training_summary(baseline[name]), training_summary(candidate[name])) for name in names}
    keys = [(f"forest.{k}", f"forest: {n}") for k, n in COUNT_METRICS]
    keys += [("plain.false_per_hour", "plain backgrounds: false calls per hour"),
             ("hard.mae", "hard backgrounds: count MAE"), ("f1", "clip F1 at the threshold")]
    for key, label in keys:
        before = [summaries[n][0][f"{args.point}.{key}"] for n in names]
        after = [summaries[n][1][f"{args.point}.{key}"] for n in names]
        print(f"| {label} | {' / '.join(f'{v:.3f}' for v in before)} → **{statistics.mean(before):.3f}** | "
              f"{' / '.join(f'{v:.3f}' for v in after)} → **{statistics.mean(after):.3f}** | "
              f"{' / '.join(f'{a - b:+.3f}' for a, b in zip(after, before))} |")
    before = [summaries[n][0]["ap"] for n in names]
    after = [summaries[n][1]["ap"] for n in names]
    print(f"| clip average precision | {' / '.join(f'{v:.4f}' for v in before)} | {' / '.join(f'{v:.4f}' for v in after)} | |")
    print("\nForest count MAE per fold (baseline → candidate), and the calibrated thresholds:\n")
    print("| fold | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, row in enumerate(baseline[names[0]]):
        cells = []
        for n in names:
            b, c = baseline[n][i], candidate[n][i]
            cells.append(f"{b[args.point]['forest']['mae']:.2f} → {c[args.point]['forest']['mae']:.2f} "
                         f"({b['points'][args.point]['threshold']:.3f} → {c['points'][args.point]['threshold']:.3f})")
        print(f"| {row['fold']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
