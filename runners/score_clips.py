"""Scores every clip in a folder (recursive) with a pushed model: `path,score,call` per clip.

    python runners/score_clips.py --model runs/local/serving_model --clips DIR --output scores.csv [--threshold T]

Each clip is loaded like a training clip (first 3 s at 16 kHz mono, zero-padded at the front by
default). `call` is 1 where the score reaches the model's clip threshold (the one chosen on eval clips:
scoring.read_clip_threshold; not the site-calibrated counting threshold), or --threshold. Files that
cannot be decoded are listed in `<output stem>_failures.csv` with the reason.
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
    parser.add_argument("--output", required=True, help="CSV to write: path,score,call")
    parser.add_argument("--pad", choices=[features.PAD_FRONT, features.PAD_BACK], default=features.DEFAULT_PAD)
    parser.add_argument("--threshold", type=float, default=None,
                        help="call a clip at this score or above (default: the model's clip threshold)")
    quiet.add_verbose_flag(parser)
    args = parser.parse_args(argv)

    scorer = scoring.WindowScorer(args.model)
    clip_threshold = scoring.read_clip_threshold(scorer.model_dir)
    if args.threshold is not None:
        clip_threshold = {"threshold": args.threshold, "source": "--threshold"}
    threshold = clip_threshold["threshold"]
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
        writer.writerow(["path", "score", "call"])
        writer.writerows((path, f"{score:.6f}", int(score >= threshold)) for path, score in scores.items())
    with open(failures_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows(failures)
    calls = sum(score >= threshold for score in scores.values())
    print(f"Scored {len(scores)} clips with {scorer.model_dir} → {args.output}: {calls} calls at threshold "
          f"{threshold:.3f} ({clip_threshold['source']}); "
          f"{len(failures)} failures" + (f" (see {failures_path})" if failures else ""))
    return {"scores": scores, "failures": failures, "threshold": clip_threshold}


if __name__ == "__main__":
    quiet.setup_logging()
    run()
