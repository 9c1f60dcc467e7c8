"""runners/pipeline_flags.py: every pipeline runner has every shared flag; the defaults are worked out once."""

import argparse
import json

import pytest

from model import constants, features
from pipeline import configs
from runners import dataflow_runner, kubeflow_v2_runner, local_runner, pipeline_flags

SHARED_FLAGS = ("--architecture", "--epochs", "--ensemble-seeds", "--student", "--augmentations", "--recall-floor", "--precision-floor",
                "--max-regression", "--recordings", "--backgrounds", "--hop-seconds", "--no-cache", "--verbose")


def _settings(*argv):
    parser = argparse.ArgumentParser()
    pipeline_flags.add_pipeline_flags(parser)
    return pipeline_flags.pipeline_settings(parser.parse_args(argv))


def test_the_defaults_come_from_model_constants_and_features():
    settings = _settings()
    assert settings["architecture"] == constants.ARCHITECTURE_DEFAULT
    assert settings["epochs"] == constants.EPOCHS[constants.ARCHITECTURE_DEFAULT]
    assert settings["ensemble_seeds"] == list(constants.ENSEMBLE_SEEDS)
    assert settings["hop_seconds"] == features.HOP_SECONDS
    assert settings["enable_cache"] is True
    assert settings["student"] is configs.STUDENT is True  # a student distilled from the ensemble is exported


def test_given_values_win_and_the_tutorial_architecture_is_one_network():
    settings = _settings("--epochs", "3", "--ensemble-seeds", "5", "11")
    assert settings["epochs"] == 3 and settings["ensemble_seeds"] == [5, 11]
    tutorial = _settings("--architecture", constants.ARCHITECTURE_TUTORIAL, "--ensemble-seeds", "5", "11")
    assert tutorial["epochs"] == constants.TUTORIAL_EPOCHS and tutorial["ensemble_seeds"] == [constants.SEED]
    assert _settings("--student")["student"] is True and _settings("--no-student")["student"] is False
    assert _settings("--augmentations", "speed", "band_noise")["augmentations"] == ["speed", "band_noise"]
    assert settings["augmentations"] == list(configs.AUGMENTATIONS) == []
    assert _settings("--augmentations")["augmentations"] == [] and tutorial["augmentations"] == []
    assert _settings("--architecture", constants.ARCHITECTURE_TUTORIAL, "--student")["student"] is False


@pytest.mark.parametrize("runner", [local_runner, dataflow_runner, kubeflow_v2_runner])
def test_every_pipeline_runner_takes_every_shared_flag(runner, capsys):
    with pytest.raises(SystemExit):
        runner.run(["--help"])
    usage = capsys.readouterr().out
    assert [flag for flag in SHARED_FLAGS if flag not in usage] == []


def test_the_dataflow_runner_passes_its_flags_to_the_pipeline():
    training = dataflow_runner.run([
        "--project=capuchin-test", "--region=europe-west1", "--gcs-root", "gs://capuchin-bucket/root",
        "--ingested-dir", "gs://capuchin-bucket/ingested", "--validate-only",
        "--architecture", constants.ARCHITECTURE_TUTORIAL, "--epochs", "2", "--hop-seconds", "3",
    ])
    components = {component.id: component for component in training.components}
    custom_config = json.loads(components["Trainer"].exec_properties["custom_config"])
    assert custom_config == {"architecture": constants.ARCHITECTURE_TUTORIAL, "epochs": 2,
                             "ensemble_seeds": [constants.SEED], "student": False, "augmentations": [],
                             "reviewed": None}
    assert components["CountCalibrator"].exec_properties["hop_seconds"] == 3.0


def test_the_review_a_model_learnt_from_is_in_the_trainers_config_and_read_back_from_ml_metadata(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    from pipeline import metadata, pipeline

    reviewed = {"file": "/reviews/site/review.csv", "sha256": "ab" * 32, "calls": 3, "not_calls": 9}
    settings = _settings()
    training = pipeline.create_pipeline(pipeline_root=str(tmp_path / "root"), ingested_dir=str(tmp_path / "in"),
                                        serving_model_dir=str(tmp_path / "serving"), reviewed=reviewed, **settings)
    trainer = next(c for c in training.components if c.id == "Trainer")
    recorded = json.loads(trainer.exec_properties["custom_config"])["reviewed"]
    assert recorded == {"file": reviewed["file"], "sha256": reviewed["sha256"]}

    # TFX stores custom_config as a JSON string property of the Trainer's execution.
    execution = metadata_store_pb2.Execution()
    execution.custom_properties["custom_config"].string_value = trainer.exec_properties["custom_config"]
    assert metadata._custom_config(execution)["reviewed"] == recorded
    report = {"run": "r", "components": [{"component": "Trainer", "state": "COMPLETE",
                                          "config": metadata._custom_config(execution),
                                          "outputs": [], "inputs": []}]}
    outcome = metadata._outcome(report["components"])
    assert outcome["reviewed"] == recorded
    assert "trained with the review labels /reviews/site/review.csv" in metadata.format_run_summary({**report, **outcome})
