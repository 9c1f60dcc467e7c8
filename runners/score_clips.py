"""Scores every clip in a folder (recursive) with a pushed model: `path,score` per clip.

    python runners/score_clips.py --model runs/local/serving_model --clips DIR --output scores.csv

Each clip is loaded like a training clip (first 3 s at 16 kHz mono, zero-padded at the front by
default). Files that cannot be decoded are listed in `<output stem>_failures.csv` with the reason.
"""

import argparse
import csv
import os

import numpy as np

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import audio, files, scoring
from model import features

BATCH = 64


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a SavedModel, or the Pusher's serving_model folder")
    parser.add_argument("--clips", required=True, help="folder of clips (searched recursively)")
    parser.add_argument("--output", required=True, help="CSV to write: path,score")
    parser.add_argument("--pad", choices=[features.PAD_FRONT, features.PAD_BACK], default=features.DEFAULT_PAD)
    quiet.add_verbose_flag(parser)
    args = parser.parse_args(argv)

    scorer = scoring.WindowScorer(args.model)
    failures_path = os.path.splitext(args.output)[0] + "_failures.csv"
    scores, failures, batch, batch_paths = {}, [], [], []

    def flush():
        for path, score in zip(batch_paths, scorer(np.stack(batch))):
            scores[path] = float(score)
        batch.clear()
        batch_paths.clear()

    for path in sorted(files.walk_files(args.clips)):
        try:
            batch.append(audio.load_clip(path, args.pad))
            batch_paths.append(path)
        except audio.AudioLoadError as error:
            failures.append((path, error.reason))
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "score"])
        writer.writerows((path, f"{score:.6f}") for path, score in scores.items())
    with open(failures_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows(failures)
    print(f"Scored {len(scores)} clips with {scorer.model_dir} → {args.output}; "
          f"{len(failures)} failures" + (f" (see {failures_path})" if failures else ""))
    return {"scores": scores, "failures": failures}


if __name__ == "__main__":
    quiet.setup_logging()
    run()
