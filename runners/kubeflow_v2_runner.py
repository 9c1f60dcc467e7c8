"""Compiles the training pipeline to a pipeline-spec JSON for Vertex AI Pipelines / Kubeflow (KFP v2).

    python runners/kubeflow_v2_runner.py --image IMAGE --pipeline-root gs://BUCKET/capuchin \
        --ingested-dir gs://BUCKET/capuchin/ingested [--recordings gs://BUCKET/recordings] [--backgrounds gs://BUCKET/backgrounds] \
        [--output capuchin_pipeline.json] [Beam args for the Beam steps, e.g. Dataflow's]

Compiling needs no credentials. The image must have this project installed (`pip install -c
constraints.txt .`): the module callbacks are referenced by name (`model.preprocessing.preprocessing_fn`,
`model.model.run_fn`), so nothing is uploaded at compile time. Submit the JSON with the Vertex AI SDK or
console (see README: Running at scale).
"""

import argparse
import os

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from model import constants, features
from pipeline import configs


def run(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, help="container image with the project installed")
    parser.add_argument("--pipeline-root", required=True, help="gs:// folder for every artifact")
    parser.add_argument("--ingested-dir", required=True, help="the ingestion's output (train/, eval/ TFRecords)")
    parser.add_argument("--recordings", help="recordings to count after a push (gs:// folder or glob)")
    parser.add_argument("--backgrounds", help="call-free site recordings (gs:// folder or glob) to calibrate the counting on")
    parser.add_argument("--output", default=f"{configs.PIPELINE_NAME}_pipeline.json")
    parser.add_argument("--model", choices=constants.ARCHITECTURES, default=configs.ARCHITECTURE)
    parser.add_argument("--epochs", type=int, help=configs.EPOCHS_HELP)
    parser.add_argument("--model-seeds", type=int, nargs="+", metavar="SEED", help=configs.MODEL_SEEDS_HELP)
    parser.add_argument("--recall-floor", type=float, default=configs.RECALL_FLOOR)
    parser.add_argument("--precision-floor", type=float, default=configs.PRECISION_FLOOR)
    quiet.add_verbose_flag(parser)
    args, beam_args = parser.parse_known_args(argv)
    from tfx import v1 as tfx

    from pipeline import pipeline

    training = pipeline.create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=args.pipeline_root,
        ingested_dir=args.ingested_dir,
        preprocessing_fn=configs.PREPROCESSING_FN,
        run_fn=configs.RUN_FN,
        serving_model_dir=os.path.join(args.pipeline_root, "serving_model"),
        architecture=args.model,
        epochs=args.epochs,
        model_seeds=args.model_seeds,
        recall_floor=args.recall_floor,
        precision_floor=args.precision_floor,
        max_regression=configs.MAX_REGRESSION,
        pr_curve_thresholds=configs.PR_CURVE_THRESHOLDS,
        recordings=args.recordings,
        backgrounds=args.backgrounds,
        hop_seconds=features.HOP_SECONDS,
        beam_pipeline_args=beam_args,
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_filename=args.output,
    )
    runner.run(training)
    print(f"Wrote {args.output}: {len(training.components)} components, image {args.image}")
    return args.output


if __name__ == "__main__":
    quiet.setup_logging()
    run()
