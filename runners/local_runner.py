"""Runs capuchin end to end locally: data → ingestion → TFX training pipeline (LocalDagRunner, Beam
DirectRunner, ML Metadata in SQLite).

    python runners/local_runner.py [--data-root DIR] [--output-dir OUT] [--architecture default|tutorial]
                                   [--epochs N] [--recall-floor R] [--precision-floor P] [--verbose] [Beam args]

Without --data-root it first generates the synthetic default dataset into OUT/data (once). Beam args
such as `--direct_running_mode=multi_processing --direct_num_workers=0` go to every Beam step.

    OUT/ingested/        train/eval TFRecords, failures.csv, summary.json
    OUT/pipeline/        every component's artifacts
    OUT/metadata.sqlite  ML Metadata (see runners/inspect_metadata.py)
    OUT/serving_model/   pushed models, one timestamped folder each

Windows of the call-free backgrounds (--backgrounds, default: the data's 'Forest Backgrounds/') are
ingested as non-call examples, and training hears its planted calls in them (--train-backgrounds: others).
After the Pusher, CountCalibrator sets the counting operating point on eval calls planted into
the same backgrounds, and the pipeline's CallCounter counts the
calls in --recordings (default: the data's 'Forest Recordings/'); the closing summary says where
counts.csv is. The flags it shares with the Dataflow and Kubeflow runners are in runners/pipeline_flags.py.
"""

import argparse
import json
import os

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from components import dataset, ingest, synthetic_data
from model import constants, features
from runners import pipeline_flags

DEFAULT_OUTPUT_DIR = os.path.join("runs", "local")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="dataset in the Kaggle layout; default: generate synthetic data")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="everything this run writes")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic default data")
    parser.add_argument("--eval-percent", type=int, default=dataset.DEFAULT_EVAL_PERCENT,
                        help="share of source groups (not clips) held out for eval")
    parser.add_argument("--pad", choices=[features.PAD_FRONT, features.PAD_BACK], default=features.DEFAULT_PAD,
                        help="where clips shorter than 3 s get their zeros")
    parser.add_argument("--fold", type=int, nargs=2, metavar=("K", "N"),
                        help="grouped k-fold: eval is fold K (0-based) of N instead of --eval-percent")
    parser.add_argument("--held-out-fold", type=int, metavar="J",
                        help="with --fold: leave fold J's groups out of both splits (a benchmark's test fold)")
    parser.add_argument("--reviewed", metavar="LABELS_CSV",
                        help="a review's labels (runners/review.py): its labelled snippets are added as training "
                             "clips, grouped by recording, and ML Metadata records the file")
    parser.add_argument("--train-backgrounds", metavar="DIR_OR_GLOB",
                        help="call-free recordings of the site whose windows are non-call examples, dealt to "
                             "train and eval by recording (default: --backgrounds; '': train on the clips only)")
    parser.add_argument("--unlabelled", metavar="DIR_OR_GLOB",
                        help="with --student: unlabelled recordings of the site whose windows the student also "
                             "learns from, labelled by the ensemble (default: --recordings; '': none)")
    pipeline_flags.add_pipeline_flags(parser)
    parser.add_argument("--report-json", help="also write the run's report (metrics, blessing, paths) here")
    quiet.add_verbose_flag(parser)
    return parser.parse_known_args(argv)


def _or_data_folder(given, data_root: str, folder: str):
    """The flag's value; when not given, the data root's `folder` if it has one."""
    if given is None and os.path.isdir(os.path.join(data_root, folder)):
        return os.path.abspath(os.path.join(data_root, folder))
    return given


def run(argv=None) -> dict:
    args, beam_args = parse_args(argv)
    from tfx import v1 as tfx

    from pipeline import metadata, pipeline

    data_root = args.data_root
    if data_root is None:
        data_root = os.path.join(args.output_dir, "data")
        print(f"[1/3] Generating the synthetic default data in {data_root} (seed {args.data_seed}) ...", flush=True)
        made = synthetic_data.generate_dataset(data_root, synthetic_data.SyntheticSpec(seed=args.data_seed))
        print(
            f"      {made['positives']} call clips, {made['negatives']} other clips, "
            f"{made['recordings']} forest recordings with {made['planted_calls']} planted calls, "
            f"{made['backgrounds']} call-free backgrounds",
            flush=True,
        )

    settings = pipeline_flags.pipeline_settings(args)
    settings.update(recordings=_or_data_folder(args.recordings, data_root, dataset.FOREST_DIR),
                    backgrounds=_or_data_folder(args.backgrounds, data_root, dataset.BACKGROUNDS_DIR))
    # The default model also learns the site's own background (the tutorial's learns its clips only).
    site_training = settings["backgrounds"] if args.train_backgrounds is None else args.train_backgrounds
    if settings["architecture"] != constants.ARCHITECTURE_DEFAULT:
        site_training = None
    # The student also learns the ensemble's view of the site's unlabelled sound: the recordings to count.
    unlabelled = (settings["recordings"] if args.unlabelled is None else args.unlabelled) if settings["student"] else None

    ingested_dir = os.path.abspath(os.path.join(args.output_dir, "ingested"))
    print(f"[2/3] Ingesting clips from {data_root}"
          + (f" and windows of the site backgrounds in {site_training}" if site_training else "")
          + (f" and of the unlabelled recordings in {unlabelled}" if unlabelled else "") + " ...", flush=True)
    fold = tuple(args.fold) if args.fold else None
    ingestion = ingest.run_ingestion(data_root, ingested_dir, beam_args, args.eval_percent, args.pad, fold,
                                     args.held_out_fold, args.reviewed, site_training, unlabelled)
    print("      " + ingest.summary_line(ingestion, ingested_dir), flush=True)
    settings["reviewed"] = ingestion.get("reviewed")
    output_dir = os.path.abspath(args.output_dir)
    metadata_path = os.path.join(output_dir, metadata.METADATA_SQLITE)
    print(f"[3/3] Training pipeline ({settings['architecture']} model, {len(settings['ensemble_seeds'])} x "
          f"{settings['epochs']} epochs), metadata in {metadata_path} ...", flush=True)
    training = pipeline.create_pipeline(
        pipeline_root=os.path.join(output_dir, "pipeline"),
        ingested_dir=ingested_dir,
        serving_model_dir=os.path.join(output_dir, "serving_model"),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=beam_args,
        **settings,
    )
    with quiet.component_progress():
        tfx.orchestration.LocalDagRunner().run(training)
    report = metadata.latest_run_report(metadata_path)
    print(metadata.format_run_summary(report), flush=True)
    if args.report_json:
        with open(args.report_json, "w") as f:
            json.dump({**report, "ingestion": ingestion}, f, indent=2)
    return report


if __name__ == "__main__":
    quiet.setup_logging()
    run()
