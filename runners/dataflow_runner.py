"""Runs the training pipeline with its Beam steps (statistics, Transform, Evaluator, counting input
listing) on Google Cloud Dataflow; TFX orchestrates from this machine, ML Metadata stays in SQLite here.

    python runners/dataflow_runner.py --project P --region europe-west1 --gcs-root gs://BUCKET/capuchin \
        --ingested-dir gs://BUCKET/capuchin/ingested [--recordings gs://BUCKET/recordings] [--backgrounds gs://BUCKET/backgrounds] [--validate-only]

The ingestion TFRecords must already be in --ingested-dir (runners/ingest_clips.py with the same Dataflow
flags writes them). --validate-only builds the pipeline and checks the Dataflow options offline. The
training, gate and counting flags are the local runner's (runners/pipeline_flags.py).
"""

import argparse
import os
import sys

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from pipeline import beam_options
from runners import pipeline_flags


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--gcs-root", required=True, help="gs:// folder: pipeline artifacts, temp files, models")
    parser.add_argument("--ingested-dir", required=True, help="the ingestion's output (train/, eval/ TFRecords)")
    parser.add_argument("--metadata-path", default=os.path.join("runs", "dataflow", "metadata.sqlite"),
                        help="local SQLite ML Metadata")
    parser.add_argument("--max-workers", type=int, default=beam_options.DATAFLOW_MAX_WORKERS)
    parser.add_argument("--validate-only", action="store_true", help="check the options offline, run nothing")
    pipeline_flags.add_pipeline_flags(parser)
    quiet.add_verbose_flag(parser)
    args, extra_beam_args = parser.parse_known_args(argv)
    from tfx import v1 as tfx

    from pipeline import pipeline

    beam_args = beam_options.dataflow_beam_args(
        args.project, args.region, f"{args.gcs_root}/tmp", args.max_workers) + extra_beam_args
    errors = beam_options.validate_dataflow_args(beam_args)
    if errors:
        sys.exit("Dataflow options are not valid:\n  " + "\n  ".join(errors))
    training = pipeline.create_pipeline(
        pipeline_root=f"{args.gcs_root}/pipeline",
        ingested_dir=args.ingested_dir,
        serving_model_dir=f"{args.gcs_root}/serving_model",
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(args.metadata_path),
        beam_pipeline_args=beam_args,
        **pipeline_flags.pipeline_settings(args),
    )
    if args.validate_only:
        print(f"Valid: {len(training.components)} components; Beam args: {' '.join(beam_args)}")
        return training
    os.makedirs(os.path.dirname(os.path.abspath(args.metadata_path)), exist_ok=True)
    with quiet.component_progress():
        tfx.orchestration.LocalDagRunner().run(training)
    return training


if __name__ == "__main__":
    quiet.setup_logging()
    run()
