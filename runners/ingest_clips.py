"""Ingests a labelled dataset (the Kaggle layout) into train/eval TFRecords.

    python runners/ingest_clips.py --data-root ../shared/capuchin --output-dir runs/ingested \
        [--eval-percent 20] [--pad front|back] [--reviewed LABELS.csv] [--backgrounds DIR_OR_GLOB]
        [Beam args, e.g. --direct_num_workers=2 or --runner=DaskRunner]
"""

import argparse

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import dataset, ingest
from model import features
from pipeline import beam_options, dask_cluster


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder with Parsed_Capuchinbird_Clips/ etc.")
    parser.add_argument("--output-dir", required=True, help="where train/, eval/ and failures.csv go")
    parser.add_argument("--eval-percent", type=int, default=dataset.DEFAULT_EVAL_PERCENT,
                        help="share of source groups (not clips) held out for eval")
    parser.add_argument("--pad", choices=[features.PAD_FRONT, features.PAD_BACK], default=features.DEFAULT_PAD,
                        help="where clips shorter than 3 s get their zeros")
    parser.add_argument("--reviewed", metavar="LABELS_CSV",
                        help="a review's labels (runners/review.py): its labelled snippets are added as clips, "
                             "grouped by recording")
    parser.add_argument("--backgrounds", metavar="DIR_OR_GLOB",
                        help="call-free recordings of the site, cut into non-call windows (one group each)")
    quiet.add_verbose_flag(parser)
    args, beam_args = parser.parse_known_args(argv)
    beam_args = beam_options.with_setup_file(beam_args)
    # On Dask: four shards per worker thread, so that the workers finish together.
    with dask_cluster.cluster_for(beam_args, partitions_per_thread=4) as beam_args:
        summary = ingest.run_ingestion(args.data_root, args.output_dir, beam_args, args.eval_percent, args.pad,
                                       reviewed=args.reviewed, backgrounds=args.backgrounds)
    print(ingest.summary_line(summary, args.output_dir))
    return summary


if __name__ == "__main__":
    quiet.setup_logging()
    run()
