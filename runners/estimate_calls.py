"""Calls per recording and in total, with 90 % intervals, from a labelled review of a counting output.

    python runners/estimate_calls.py --counts runs/counts --review runs/review/review_labels.csv \
        --output runs/review/estimate.json [--review-dir runs/review] [--prior score|jeffreys|uniform]

--review is the page's download or review.csv with its label column filled in (call, not_call, unsure or
empty); --review-dir is the folder runners/review.py wrote (default: the CSV's folder). The method is in
components/estimate.py. Writes {"total": {"calls", "low", "high"}, "recordings": {name: {...}},
"precision", "missed_calls", "calls_per_hour", "labels": {"used", "unsure", "empty"}, "details"}.
Unsure and empty labels are left out. A CSV with other columns or ids, an empty review or one drawn from
another counting run is refused and nothing is written.
"""

import argparse
import sys

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import estimate


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", required=True, help="the counting output the review was drawn from")
    parser.add_argument("--review", required=True, help="the labels: the page's CSV download, or review.csv")
    parser.add_argument("--review-dir", help="the review folder (bins.json); default: the CSV's folder")
    parser.add_argument("--output", required=True, help="where estimate.json goes")
    parser.add_argument("--prior", choices=estimate.PRIORS, default=estimate.DEFAULT_PRIOR,
                        help="each stratum's Beta prior (default: centred on its mean score, worth one label)")
    args = parser.parse_args(argv)
    try:
        result = estimate.run_estimate(args.counts, args.review, args.output, args.review_dir, args.prior)
    except estimate.ReviewError as error:
        sys.exit(f"Cannot estimate: {error}")
    print(summary_line(result, args.output))
    return result


def summary_line(result: dict, output: str) -> str:
    total, missed, labels = result["total"], result["missed_calls"], result["labels"]
    precision = result["precision"]
    found = ""
    if precision:
        found = f"precision {precision['value']:.2f} [{precision['low']:.2f}, {precision['high']:.2f}], "
    return (f"{total['calls']:.1f} calls (90 % interval {total['low']:.0f}–{total['high']:.0f}) in "
            f"{len(result['recordings'])} recordings: {found}missed {missed['calls']:.1f} "
            f"[{missed['low']:.0f}, {missed['high']:.0f}], {result['calls_per_hour']['calls']:.1f} calls per hour; "
            f"labels used {labels['used']}, unsure {labels['unsure']}, empty {labels['empty']} → {output}")


if __name__ == "__main__":
    run()
