"""Fills in a review of the real forest recordings as a careful reviewer would, where the truth is known.

    python bench/oracle_review.py --review runs/review_real [--output runs/review_real/labels.csv]

The review (runners/review.py over a counting run of `Forest Recordings/`) has no labels, and those
recordings have no published ones. This oracle answers only where a recording's call count is known
independently and the counting run agrees with it, so the detections are where the calls are:
- known: counted by eye on spectrograms (bench/count_real.py BY_EYE), else the count that at least 8 of
  the 9 distinct reference models agree on (bench/count_real.py reference_consensus);
- in a known recording whose count the run matches: a detection is a call; a window that overlaps no
  detection (widened by WINDOW_MARGIN_SECONDS) is not a call; a window partly on a detection is unsure
  (a reviewer would not call 3 s with part of a call in it either way);
- in every other recording: unsure (left out of training, as components/reviewed.py leaves unsure out).

Writes the labels CSV (review.csv with the label column filled) and prints what it labelled. Used by
bench/accuracy.py --reviewed to measure retraining with reviewed snippets.
"""

import argparse
import csv
import os
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from count_real import BY_EYE, REAL_DATA, reference_consensus  # noqa: E402
from components import estimate, review  # noqa: E402

# A window this close to a detection may hold the call's start or tail, which the detection's edges miss.
WINDOW_MARGIN_SECONDS = 0.5


def known_counts(reference_dir: str) -> dict:
    """{recording: calls} where the count is known: by eye first, else the reference models' consensus."""
    known = {name: count for name, (count, _) in reference_consensus(reference_dir).items()}
    known.update(BY_EYE)
    return known


def oracle_label(item: dict, detections, known, counted) -> str:
    """'call', 'not_call' or 'unsure' for one review item (see the module docstring)."""
    name = item["recording"]
    if name not in known or known[name] != counted.get(name):
        return "unsure"
    if item["bin"] == review.DETECTION_BIN:
        return "call"
    start, end = float(item["start_s"]), float(item["end_s"])
    near = any(start < d_end + WINDOW_MARGIN_SECONDS and d_start - WINDOW_MARGIN_SECONDS < end
               for d_start, d_end in detections.get(name, []))
    return "unsure" if near else "not_call"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--review", required=True, help="the folder runners/review.py wrote")
    parser.add_argument("--output", help="the labels CSV (default: REVIEW/labels.csv)")
    parser.add_argument("--reference-counts", default=os.path.join(REAL_DATA, "reference_counts"))
    args = parser.parse_args()
    described = estimate.load_review(args.review)
    run = review.read_counting_run(described["counts_dir"])
    detections = {name: [(s, e) for s, e, _ in found] for name, found in run.detections.items()}
    counted = {name: len(found) for name, found in run.detections.items()}
    known = known_counts(args.reference_counts)
    output = args.output or os.path.join(args.review, "labels.csv")
    labels = Counter()
    with open(os.path.join(args.review, review.REVIEW_CSV), newline="") as f:
        rows = list(csv.DictReader(f))
    items = {item["id"]: item for item in described["items"]}
    for row in rows:
        row["label"] = oracle_label(items[row["id"]], detections, known, counted)
        labels[row["label"]] += 1
    with open(output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=review.REVIEW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    agreeing = sorted(name for name in known if name in counted and known[name] == counted[name])
    disagreeing = sorted(name for name in known if name in counted and known[name] != counted[name])
    print(f"{len(rows)} items: {dict(labels)}. Known counts for {len(agreeing) + len(disagreeing)} of {len(counted)} "
          f"recordings; the run matches {len(agreeing)}" + (f", not {', '.join(disagreeing)}" if disagreeing else "")
          + f". Wrote {output}")


if __name__ == "__main__":
    main()
