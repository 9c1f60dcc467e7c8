"""Running at scale, checked offline: the Vertex/Kubeflow spec compiles, Dataflow options validate."""

import json

import pytest

from pipeline import beam_options
from runners import count_calls, dataflow_runner, kubeflow_v2_runner

DATAFLOW = ["--project=capuchin-test", "--region=europe-west1"]


def test_kubeflow_v2_spec_compiles_and_names_every_component(tmp_path):
    output = str(tmp_path / "capuchin.json")
    kubeflow_v2_runner.run([
        "--image", "europe-docker.pkg.dev/capuchin-test/capuchin/pipeline:1",
        "--pipeline-root", "gs://capuchin-bucket/root", "--ingested-dir", "gs://capuchin-bucket/ingested",
        "--recordings", "gs://capuchin-bucket/recordings", "--backgrounds", "gs://capuchin-bucket/backgrounds",
        "--output", output,
    ])
    with open(output) as f:
        spec = json.load(f)
    spec = spec.get("pipelineSpec", spec)
    tasks = set(spec["root"]["dag"]["tasks"])
    for component in ("ImportExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
                      "Trainer", "Evaluator", "Pusher", "ThresholdSelector", "CountCalibrator", "CallCounter"):
        assert component in tasks
    assert any(task.startswith("latest_blessed_model_resolver") for task in tasks)
    text = json.dumps(spec)
    assert "europe-docker.pkg.dev/capuchin-test/capuchin/pipeline:1" in text
    assert "model.preprocessing.preprocessing_fn" in text and "model.model.run_fn" in text
    assert "gs://capuchin-bucket/backgrounds" in text  # the calibration's backgrounds, as a parameter


def test_training_pipeline_dataflow_options_validate_and_carry_the_setup_file():
    training = dataflow_runner.run([*DATAFLOW, "--gcs-root", "gs://capuchin-bucket/root",
                                    "--ingested-dir", "gs://capuchin-bucket/ingested", "--validate-only"])
    args = training.beam_pipeline_args
    assert "--runner=DataflowRunner" in args and f"--setup_file={beam_options.SETUP_FILE}" in args
    assert any(a.startswith("--temp_location=gs://capuchin-bucket/root") for a in args)


def test_counting_dataflow_options_validate_and_get_the_setup_file():
    result = count_calls.run(["--model", "gs://capuchin-bucket/model", "--recordings", "gs://capuchin-bucket/rec",
                              "--output-dir", "gs://capuchin-bucket/counts", "--runner=DataflowRunner", *DATAFLOW,
                              "--temp_location=gs://capuchin-bucket/tmp", "--validate-only"])
    assert f"--setup_file={beam_options.SETUP_FILE}" in result["beam_args"]


def test_bad_dataflow_options_are_reported_before_anything_runs():
    with pytest.raises(SystemExit, match="temp_location"):
        count_calls.run(["--model", "m", "--recordings", "r", "--output-dir", "o", "--runner=DataflowRunner",
                         *DATAFLOW, "--temp_location=/local/tmp", "--validate-only"])
    errors = beam_options.validate_dataflow_args(["--runner=DataflowRunner", "--temp_location=gs://capuchin-bucket/t"])
    assert any("project" in e for e in errors) and any("region" in e for e in errors)
    assert any("setup_file" in e for e in errors)
