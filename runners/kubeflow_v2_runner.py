"""Compiles the training pipeline to a pipeline-spec JSON for Vertex AI Pipelines / Kubeflow (KFP v2).

    python runners/kubeflow_v2_runner.py --image IMAGE --pipeline-root gs://BUCKET/capuchin \
        --ingested-dir gs://BUCKET/capuchin/ingested [--recordings gs://BUCKET/recordings] [--backgrounds gs://BUCKET/backgrounds] \
        [--output capuchin_pipeline.json] [Beam args for the Beam steps, e.g. Dataflow's]

Compiling needs no credentials. The image must have this project installed (`pip install -c
constraints.txt .`): the module callbacks are referenced by name (`model.preprocessing.preprocessing_fn`,
`model.model.run_fn`), so nothing is uploaded at compile time. Submit the JSON with the Vertex AI SDK or
console (see README: Running at scale). The training, gate and counting flags are the local runner's
(runners/pipeline_flags.py).
"""

import argparse
import os

from runners import quiet  # noqa: F401  (must precede TensorFlow)
from pipeline import configs
from runners import pipeline_flags


def run(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, help="container image with the project installed")
    parser.add_argument("--pipeline-root", required=True, help="gs:// folder for every artifact")
    parser.add_argument("--ingested-dir", required=True, help="the ingestion's output (train/, eval/ TFRecords)")
    parser.add_argument("--output", default=f"{configs.PIPELINE_NAME}_pipeline.json")
    pipeline_flags.add_pipeline_flags(parser)
    quiet.add_verbose_flag(parser)
    args, beam_args = parser.parse_known_args(argv)
    from tfx import v1 as tfx

    from pipeline import pipeline

    training = pipeline.create_pipeline(
        pipeline_root=args.pipeline_root,
        ingested_dir=args.ingested_dir,
        serving_model_dir=os.path.join(args.pipeline_root, "serving_model"),
        beam_pipeline_args=beam_args,
        **pipeline_flags.pipeline_settings(args),
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
