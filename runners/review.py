"""Draws a review sample from a counting output and writes a static page to label it.

    python runners/review.py --counts runs/counts --output-dir runs/review [--per-bin 10] [--bins 8] [--seed 0]
        [--model DIR]

The recordings are scored again with the counting run's model (3 s windows at its hop), then every
detection and --per-bin windows of each of --bins score bins (below the threshold too, where missed calls
hide) are cut out (components/review.py). Writes REVIEW/index.html (open it in a browser, from disk),
review.csv (id,recording,start_s,end_s,score,bin,label: labels may be typed in directly), bins.json (what
runners/estimate_calls.py needs about all the windows) and snippets/. Recordings that have moved since
they were counted are named and skipped.
"""

import argparse
import logging
import os
import sys

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import review, review_page


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", required=True, help="a counting output folder (runners/count_calls.py)")
    parser.add_argument("--output-dir", required=True, help="the review folder to create (must not exist or be empty)")
    parser.add_argument("--per-bin", type=int, default=review.DEFAULT_PER_BIN,
                        help=f"windows drawn from each score bin (default {review.DEFAULT_PER_BIN})")
    parser.add_argument("--bins", type=int, default=review.DEFAULT_BINS,
                        help=f"score bins: the lowest half of the windows, the next quarter, ... "
                             f"(default {review.DEFAULT_BINS})")
    parser.add_argument("--seed", type=int, default=0, help="the sample's random seed (default 0)")
    parser.add_argument("--model", help="the model to score with; default: the one summary.json names")
    args = parser.parse_args(argv)
    try:
        counting_run = review.read_counting_run(args.counts)
        model_dir = args.model or find_model(counting_run.summary.get("model"), args.counts)
        print(f"Scoring {len(counting_run.paths)} recordings with {model_dir} ...", flush=True)
        recordings, described = review.draw_review(counting_run, model_dir, args.per_bin, args.bins, args.seed)
        print(f"Writing {len(described['items'])} snippets ...", flush=True)
        review_page.write_review(args.output_dir, recordings, described)
    except review.ReviewError as error:
        sys.exit(f"Cannot review: {error}")
    print(summary_line(described, args.output_dir))
    return described


def find_model(model: str, counts_dir: str) -> str:
    """The model a counting run names, which may be relative to where it was run: as given, else below
    each folder above the counting output."""
    if not model:
        raise review.ReviewError("summary.json names no model: pass --model")
    candidates = [model] if os.path.isabs(model) or "://" in model else [model] + [
        os.path.join(folder, model) for folder in _ancestors(os.path.abspath(counts_dir))]
    for candidate in candidates:
        if "://" in candidate or os.path.isdir(candidate):
            return candidate
    raise review.ReviewError(f"the model the counting run used ({model}) is not found: pass --model")


def _ancestors(folder: str):
    while True:
        yield folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def summary_line(described: dict, output_dir: str) -> str:
    items = described["items"]
    detections = sum(item["kind"] == "detection" for item in items)
    missing = described["missing"]
    gone = f"; {len(missing)} recordings not found, skipped: {', '.join(missing)}" if missing else ""
    return (f"Review of {len(items)} items ({detections} detections, {len(items) - detections} windows from "
            f"{described['bins']} score bins) from {len(described['recordings'])} recordings{gone}\n"
            f"  open {os.path.join(output_dir, review.INDEX_HTML)} in a browser; labels: the page's download, "
            f"or type them into {os.path.join(output_dir, review.REVIEW_CSV)}")


if __name__ == "__main__":
    quiet.setup_logging(logging.WARNING)
    run()
