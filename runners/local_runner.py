"""Runs capuchin locally on the Beam DirectRunner.

    python runners/local_runner.py [--data-root DIR] [--output-dir OUT] [Beam args]

Without --data-root it first generates the synthetic default dataset into OUT/data (once; later runs
reuse it). It then ingests the labelled clips into OUT/ingested/{train,eval} TFRecords.
"""

import argparse
import logging
import os

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import dataset, ingest, synthetic_data
from model import features

DEFAULT_OUTPUT_DIR = os.path.join("runs", "local")


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="dataset in the Kaggle layout; default: generate synthetic data")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="everything this run writes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic default data")
    parser.add_argument("--eval-percent", type=int, default=dataset.DEFAULT_EVAL_PERCENT,
                        help="share of source groups (not clips) held out for eval")
    parser.add_argument("--pad", choices=[features.PAD_FRONT, features.PAD_BACK], default=features.DEFAULT_PAD,
                        help="where clips shorter than 3 s get their zeros")
    args, beam_args = parser.parse_known_args(argv)

    data_root = args.data_root
    if data_root is None:
        data_root = os.path.join(args.output_dir, "data")
        print(f"Generating the synthetic default data in {data_root} (seed {args.seed}) ...", flush=True)
        made = synthetic_data.generate_dataset(data_root, synthetic_data.SyntheticSpec(seed=args.seed))
        print(
            f"  {made['positives']} call clips, {made['negatives']} other clips, "
            f"{made['recordings']} forest recordings with {made['planted_calls']} planted calls",
            flush=True,
        )

    ingested_dir = os.path.join(args.output_dir, "ingested")
    print(f"Ingesting clips from {data_root} ...", flush=True)
    summary = ingest.run_ingestion(data_root, ingested_dir, beam_args, args.eval_percent, args.pad)
    print(ingest.summary_line(summary, ingested_dir), flush=True)
    return summary


if __name__ == "__main__":
    quiet.setup_logging(logging.WARNING)
    run()
