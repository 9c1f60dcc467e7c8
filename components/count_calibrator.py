"""CountCalibrator: a TFX component after Pusher and ThresholdSelector that sets the counting operating
point on the site's own audio (components/calibration.py).

Its `calibration` artifact holds calibration.json (the operating point, the sweep, the planted truth),
calibration_truth.csv and calibration.png, and is recorded in ML Metadata with the model, the pushed
model and the eval-clip threshold as inputs. A pushed model gets the operating point in
`assets.extra/threshold.json`, where the counting job reads it, and the calibration calls beside it.
Without usable background the eval-clip threshold stands, and the artifact says why.
"""

import csv
import json
import logging
import os
from typing import List

import numpy as np
from tfx import v1 as tfx
from tfx.types import artifact

from components import calibration, counting, files, planting
from components.dataset import EVAL_SPLIT
from components.threshold import CallThreshold
from model import features

_log = logging.getLogger("capuchin.calibration")


class CountCalibration(artifact.Artifact):
    """The counting operating point chosen on the site's background, with what it was chosen on."""

    TYPE_NAME = "capuchin.CountCalibration"


def eval_calls(examples_uri: str) -> List[np.ndarray]:
    """The call clips of the eval split (sources the model did not train on), without their padding."""
    import tensorflow as tf

    pattern = os.path.join(examples_uri, f"Split-{EVAL_SPLIT}", "*")
    spec = {features.AUDIO_KEY: tf.io.FixedLenFeature([features.CLIP_SAMPLES], tf.float32),
            features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64)}
    calls = []
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP"):
        example = tf.io.parse_single_example(record, spec)
        if int(example[features.LABEL_KEY][0]) == 1:
            clip = planting.trim_silence(example[features.AUDIO_KEY].numpy())
            if len(clip):
                calls.append(clip)
    return calls


def backgrounds_fingerprint(backgrounds: str) -> str:
    """Changes when a background recording is added, removed or modified (cache key)."""
    if not backgrounds or files.is_remote(backgrounds):
        return backgrounds
    return files.fingerprint(counting.list_recordings(backgrounds))


def _write_outputs(uri: str, payload: dict) -> None:
    with files.open_file(os.path.join(uri, calibration.CALIBRATION_JSON), "w") as f:
        f.write(json.dumps(payload, indent=2))
    with files.open_file(os.path.join(uri, calibration.TRUTH_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "start_s", "end_s", "snr_db"])
        writer.writerows((name, *call) for name, calls in payload.get("truth", {}).items() for call in calls)


@tfx.dsl.components.component
def CountCalibrator(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    threshold: tfx.dsl.components.InputArtifact[CallThreshold],
    pushed_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.PushedModel],
    calibration_result: tfx.dsl.components.OutputArtifact[CountCalibration],
    backgrounds: tfx.dsl.components.Parameter[str],
    backgrounds_fingerprint: tfx.dsl.components.Parameter[str],
    hop_seconds: tfx.dsl.components.Parameter[float],
) -> None:
    """Plants the eval calls into `backgrounds` and picks the operating point that counts them best."""
    from components import scoring

    del backgrounds_fingerprint  # only there to key the cache
    uri = calibration_result.uri
    files.makedirs(uri)
    eval_threshold = threshold.get_float_custom_property("threshold")
    calls = eval_calls(examples.uri)
    usable, failures = calibration.load_backgrounds(counting.list_recordings(backgrounds) if backgrounds else [])
    for path, reason in failures:
        _log.warning("Calibration skips background %s: %s", path, reason)
    point = scoring.default_rule_point(eval_threshold, "eval clips")
    payload = {"failures": [{"path": p, "reason": r} for p, r in failures], "eval_threshold": eval_threshold,
               "calls": len(calls), "model": model.uri}
    if usable and calls:
        scorer = scoring.WindowScorer(os.path.join(model.uri, "Format-Serving"))
        result = calibration.calibrate(scorer, calls, usable, eval_threshold, hop_seconds, progress=_log.info)
        point = result["operating_point"]
        payload.update(result)
        calibration.write_plot(result, eval_threshold, os.path.join(uri, calibration.CALIBRATION_PNG))
        for name in ("mae", "exact", "false_calls_per_hour", "event_recall"):
            calibration_result.set_float_custom_property(f"calibration_{name}", float(result["chosen"][name]))
        calibration_result.set_float_custom_property("background_hours", float(result["background_hours"]))
        _log.info("Site calibration: %s", calibration.summary_line(result))
    else:
        payload["operating_point"] = point
        payload["not_calibrated"] = ("no usable background recording" if not usable else "no eval call clips") + \
            ": the threshold chosen on eval clips stands"
    _write_outputs(uri, payload)
    calibration_result.set_int_custom_property("calibrated", int(point["source"] == calibration.SITE_CALIBRATION))
    calibration_result.set_int_custom_property("background_failures", len(failures))
    for name in ("threshold", "gap_seconds", "min_call_seconds"):
        calibration_result.set_float_custom_property(name, float(point[name]))
    destination = scoring.pushed_destination(pushed_model)
    if destination is not None:
        with files.open_file(os.path.join(destination, scoring.THRESHOLD_FILE)) as f:
            carried = json.loads(f.read())  # ThresholdSelector's, with the eval PR point
        carried.update(point, eval_threshold=eval_threshold, calibration=uri)
        with files.open_file(os.path.join(destination, scoring.THRESHOLD_FILE), "w") as f:
            f.write(json.dumps(carried, indent=2))
        if calls:
            calibration.write_calls(os.path.join(destination, "assets.extra", calibration.CALLS_NPZ), calls)
