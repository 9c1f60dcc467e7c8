"""The real training pipeline (LocalDagRunner, Beam, ML Metadata) on the default synthetic clips.

One output dir, two runs (see `trained_pipeline` in conftest.py): the first must bless and push a
model that tells calls from noise; the second, with a recall floor above 1.0, must not bless and must not push.
"""

import csv
import glob
import json
import os

import numpy as np
import pytest

from components import audio, calibration, dataset, ingest, scoring, synthetic_data
from model import constants, features, model
from pipeline import metadata
from runners import inspect_metadata, local_runner, score_clips

pytestmark = pytest.mark.e2e

COMPONENTS = [
    "ImportExampleGen", "latest_blessed_model_resolver", "StatisticsGen", "SchemaGen", "ExampleValidator",
    "Transform", "Trainer", "Evaluator", "Pusher", "ThresholdSelector", "CountCalibrator", "CallCounter",
]


@pytest.fixture(scope="module")
def runs(trained_pipeline):
    _, output_dir, good, failing = trained_pipeline
    return output_dir, good, failing


def _executions(output_dir):
    store = metadata.open_store(os.path.join(output_dir, metadata.METADATA_SQLITE))
    return [metadata.run_report(store, run) for run in metadata.list_runs(store)]


def test_every_component_executed_and_is_recorded_in_ml_metadata(runs):
    output_dir, _, _ = runs
    first, second = _executions(output_dir)
    assert sorted(c["component"] for c in first["components"]) == sorted(COMPONENTS)
    assert all(c["state"] == "COMPLETE" for c in first["components"])
    # The second run reuses the unchanged steps from cache and re-evaluates with the new floors.
    states = {c["component"]: c["state"] for c in second["components"]}
    assert states["Trainer"] == "CACHED" and states["Evaluator"] == "COMPLETE"


def test_first_run_blesses_and_pushes_a_model_with_its_site_calibrated_operating_point(runs):
    output_dir, good, _ = runs
    assert good["blessed"] is True
    assert good["metrics"]["recall_at_precision"] >= 0.9  # the gate: recall at a threshold of precision >= 0.9
    assert good["pushed_to"] and os.path.exists(os.path.join(good["pushed_to"], "saved_model.pb"))
    assert os.path.dirname(good["pushed_to"]) == os.path.join(output_dir, "serving_model")
    assert 0.0 < good["threshold"] < 1.0  # the eval-clip threshold
    assert os.path.getsize(os.path.join(good["threshold_uri"], "pr_curve.png")) > 1_000
    # The synthetic data has call-free backgrounds, so the operating point comes from site calibration.
    calibrated = good["calibration"]
    assert calibrated["calibrated"] == 1 and calibrated["background_failures"] == 0
    carried = scoring.read_operating_point(good["pushed_to"])
    assert carried["source"] == calibration.SITE_CALIBRATION
    assert carried["threshold"] == pytest.approx(calibrated["threshold"])
    assert carried["gap_seconds"] == pytest.approx(calibrated["gap_seconds"])
    with open(os.path.join(good["calibration_uri"], calibration.CALIBRATION_JSON)) as f:
        result = json.load(f)
    assert result["backgrounds"] == ["background_00.mp3", "background_01.mp3", "background_02.mp3"]
    assert result["planted_recordings"] == len(result["truth"]) > 0 and result["calls"] > 0
    assert result["chosen"]["mae"] <= 0.5 and result["chosen"]["false_calls_per_hour"] <= 10
    assert os.path.getsize(os.path.join(good["calibration_uri"], calibration.CALIBRATION_PNG)) > 1_000
    assert len(calibration.read_calls(good["pushed_to"])) == result["calls"]


def test_the_calibration_is_linked_to_its_model_and_feeds_the_count_in_ml_metadata(runs):
    output_dir, good, _ = runs
    first = _executions(output_dir)[0]
    by_name = {c["component"]: c for c in first["components"]}
    model_id = next(a["id"] for a in by_name["Trainer"]["outputs"] if a["key"] == "model")
    calibrator = by_name["CountCalibrator"]
    assert model_id in [a["id"] for a in calibrator["inputs"] if a["key"] == "model"]
    assert {a["key"] for a in calibrator["inputs"]} == {"examples", "model", "threshold", "pushed_model"}
    calibration_id = next(a["id"] for a in calibrator["outputs"] if a["key"] == "calibration_result")
    assert calibration_id in [a["id"] for a in by_name["CallCounter"]["inputs"]]
    # The count used the calibrated operating point.
    with open(os.path.join(good["counts_uri"], "summary.json")) as f:
        summary = json.load(f)
    assert summary["threshold"] == pytest.approx(good["calibration"]["threshold"])
    assert summary["operating_point"]["source"] == calibration.SITE_CALIBRATION


def test_pushed_model_scores_a_planted_call_above_forest_noise(trained_pipeline):
    data_root, output_dir, _, _ = trained_pipeline
    scorer = scoring.WindowScorer(os.path.join(output_dir, "serving_model"))
    calls = synthetic_data.read_forest_calls(data_root)
    name = next(n for n, c in calls.items() if c)
    recording = audio.load_audio(os.path.join(data_root, dataset.FOREST_DIR, name))
    start, end = calls[name][0]
    centre = int((start + end) / 2 * 16_000)
    call_window = recording[centre - 24_000 : centre + 24_000]
    # A 3 s stretch at least 2 s away from every call: background only.
    quiet_start = next(
        s for s in np.arange(0, 57, 0.5) if all(s + 3 < a - 2 or s > b + 2 for a, b in calls[name])
    )
    noise_window = recording[int(quiet_start * 16_000) : int(quiet_start * 16_000) + 48_000]
    call_score, noise_score = scorer(np.stack([call_window, noise_window]))
    assert call_score > 0.5 > noise_score


def test_a_model_that_cannot_pass_is_not_blessed_and_not_pushed(runs):
    output_dir, good, failing = runs
    assert failing["blessed"] is False
    assert failing["pushed_to"] is None
    versions = os.listdir(os.path.join(output_dir, "serving_model"))
    assert versions == [os.path.basename(good["pushed_to"])]


def test_inspect_metadata_lists_both_runs_with_artifacts(runs, capsys):
    output_dir, good, _ = runs
    reports = inspect_metadata.run(["--output-dir", output_dir])
    printed = capsys.readouterr().out
    assert len(reports) == 2
    assert [r["blessed"] for r in reports] == [True, False]
    assert "2 pipeline run(s)" in printed
    assert good["pushed_to"] in printed and "blessed=1" in printed and "blessed=0" in printed
    assert "CountCalibrator" in printed and f"calibration: {good['calibration_uri']}" in printed


def test_score_clips_scores_every_clip_and_lists_failures(trained_pipeline, tmp_path):
    data_root, output_dir, _, _ = trained_pipeline
    clips = tmp_path / "clips"
    clips.mkdir()
    positives = os.path.join(data_root, dataset.POSITIVE_DIR)
    negatives = os.path.join(data_root, dataset.NEGATIVE_DIR)
    for folder in (positives, negatives):
        for name in sorted(os.listdir(folder)):
            if dataset.split_of(dataset.group_of(name)) == dataset.EVAL_SPLIT:
                os.symlink(os.path.join(folder, name), clips / name)
    (clips / "broken.wav").write_bytes(b"nope")
    output = tmp_path / "scores.csv"

    model = os.path.join(output_dir, "serving_model")
    result = score_clips.run(["--model", model, "--clips", str(clips), "--output", str(output)])

    with open(output, newline="") as f:
        rows = {os.path.basename(r["path"]): (float(r["score"]), int(r["call"])) for r in csv.DictReader(f)}
    scores = {name: score for name, (score, _) in rows.items()}
    assert len(scores) == len(os.listdir(clips)) - 1
    calls = [s for n, s in scores.items() if n.startswith("synth-call")]
    others = [s for n, s in scores.items() if not n.startswith("synth-call")]
    assert calls and others and min(calls) > max(others)
    # Clips are called at the threshold chosen on these eval clips (kept beside the site-calibrated one),
    # which gets at most THRESHOLD_TIE_CLIPS of them wrong.
    with open(os.path.join(scoring.resolve_model_dir(model), scoring.THRESHOLD_FILE)) as f:
        carried = json.load(f)
    threshold = result["threshold"]["threshold"]
    assert threshold == carried["eval_threshold"] and result["threshold"]["source"] == "eval clips"
    assert all(call == int(score >= threshold) for score, call in rows.values())
    wrong = sum(call != name.startswith("synth-call") for name, (_, call) in rows.items())
    assert wrong <= features.THRESHOLD_TIE_CLIPS
    with_flag = score_clips.run(["--model", model, "--clips", str(clips), "--output", str(tmp_path / "all.csv"),
                                 "--threshold", "0"])
    assert with_flag["threshold"] == {"threshold": 0.0, "source": "--threshold"}
    with open(tmp_path / "all.csv", newline="") as f:
        assert [int(r["call"]) for r in csv.DictReader(f)] == [1] * len(scores)
    with open(tmp_path / "scores_failures.csv", newline="") as f:
        assert [os.path.basename(r["path"]) for r in csv.DictReader(f)] == ["broken.wav"]


def test_ensemble_seeds_train_one_network_per_seed_and_export_their_average(tiny_dataset, tmp_path):
    import tensorflow as tf
    import tf_keras

    report = local_runner.run(["--data-root", tiny_dataset, "--output-dir", str(tmp_path), "--eval-percent", "50",
                               "--ensemble-seeds", "42", "7", "--epochs", "1", "--no-student", "--recordings", ""])
    model_dir = os.path.join(report["model_uri"], "Format-Serving")
    members = [layer for layer in tf_keras.models.load_model(model_dir, compile=False).layers
               if layer.name.endswith("frame_logits")]
    assert [m.name for m in members] == ["member0_frame_logits", "member1_frame_logits"]
    clip = audio.load_clip(os.path.join(tiny_dataset, dataset.POSITIVE_DIR,
                                        sorted(os.listdir(os.path.join(tiny_dataset, dataset.POSITIVE_DIR)))[0]))
    spectrogram = tf.saved_model.load(model_dir).tft_layer({"audio": clip[None]})["audio_xf"]
    member_frames = [tf.sigmoid(m(spectrogram)[0, :, 0]).numpy() for m in members]
    assert np.abs(member_frames[0] - member_frames[1]).max() > 1e-4  # two seeds, two different networks
    served = scoring.WindowScorer(model_dir, bfloat16=False).frames(clip[None])[0]  # Keras's float32 arithmetic
    np.testing.assert_allclose(served, np.mean(member_frames, axis=0), atol=1e-5)


def test_student_is_one_network_distilled_from_the_ensemble_and_is_what_is_exported(tiny_dataset, tmp_path, capfd):
    import tf_keras

    # Every augmentation on too, so the Trainer runs each of them in its input pipeline; and the forest
    # recordings as the student's unlabelled windows, all in train.
    report = local_runner.run(["--data-root", tiny_dataset, "--output-dir", str(tmp_path), "--eval-percent", "50",
                               "--ensemble-seeds", "42", "--epochs", "1", "--student", "--recordings", "",
                               "--unlabelled", os.path.join(tiny_dataset, dataset.FOREST_DIR),
                               "--augmentations", *constants.AUGMENTATIONS])
    with open(tmp_path / "ingested" / ingest.SUMMARY_JSON) as f:
        unlabelled = json.load(f)[ingest.UNLABELLED_WINDOWS]
    assert unlabelled[dataset.EVAL_SPLIT] == 0 and unlabelled[dataset.TRAIN_SPLIT] > 0
    assert f"and {unlabelled[dataset.TRAIN_SPLIT]} unlabelled windows for the student" in capfd.readouterr().out
    model_dir = os.path.join(report["model_uri"], "Format-Serving")
    networks = [layer.name for layer in tf_keras.models.load_model(model_dir, compile=False).layers
                if layer.name.endswith("frame_logits")]
    assert networks == ["student_frame_logits"]  # the teacher's member is not exported as the model
    # The teacher is exported beside it, to be counted in its place (bench/accuracy.py --teacher).
    teacher_dir = os.path.join(report["model_uri"], model.TEACHER_EXPORT)
    teacher_networks = [layer.name for layer in tf_keras.models.load_model(teacher_dir, compile=False).layers
                        if layer.name.endswith("frame_logits")]
    assert teacher_networks == ["member0_frame_logits"]
    assert glob.glob(str(tmp_path / "pipeline" / "Trainer" / "model_run" / "*" / "logs" / "student"))
    clip = audio.load_clip(os.path.join(tiny_dataset, dataset.POSITIVE_DIR,
                                        sorted(os.listdir(os.path.join(tiny_dataset, dataset.POSITIVE_DIR)))[0]))
    frames = scoring.WindowScorer(model_dir).frames(clip[None])[0]
    assert frames.shape == (features.MODEL_FRAMES,) and np.all((frames > 0) & (frames < 1))
    # Warm-started from the member's weights, then distilled: a network of its own, not the member's copy.
    teacher_frames = scoring.WindowScorer(teacher_dir).frames(clip[None])[0]
    assert np.abs(frames - teacher_frames).max() > 1e-4
