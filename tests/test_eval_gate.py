"""The Evaluator's gate (pipeline._eval_config), run by TFMA itself on scores given directly."""

import pandas as pd
import pytest
import tensorflow_model_analysis as tfma

from model import constants, features
from pipeline import pipeline


def _gate(labels, scores, tmp_path, recall_floor=0.9, precision_floor=0.9):
    """(blessed?, metrics) of the first run's gate (no baseline, so no change threshold) on these scores."""
    config = pipeline._eval_config(recall_floor, precision_floor, 0.0, 1_000)
    config.model_specs[0].ClearField("signature_name")  # scores given, no model to call
    for metric in config.metrics_specs[0].metrics:
        metric.threshold.ClearField("change_threshold")
    data = pd.DataFrame({features.LABEL_KEY: labels, constants.PREDICTION_KEY: scores})
    result = tfma.analyze_raw_data(data, config, output_path=str(tmp_path))
    metrics = {name: value["doubleValue"] for name, value in result.slicing_metrics[0][1][""][""].items()}
    return tfma.load_validation_result(str(tmp_path)).validation_ok, metrics


def test_a_model_whose_scores_sit_high_but_rank_every_call_first_is_blessed(tmp_path):
    # Every non-call scores 0.6 and every call 0.9: precision at 0.5 is 0.5, but at 0.7 nothing is wrong.
    blessed, metrics = _gate([1] * 20 + [0] * 20, [0.9] * 20 + [0.6] * 20, tmp_path)
    assert metrics["precision"] == pytest.approx(0.5) and metrics["recall_at_precision"] == pytest.approx(1.0)
    assert blessed


def test_a_model_that_cannot_reach_the_floors_at_any_threshold_is_not_blessed(tmp_path):
    # Four calls score below every non-call: recall at precision >= 0.9 is at most 16 / 20 = 0.8.
    labels = [1] * 20 + [0] * 20
    scores = [0.9] * 16 + [0.05] * 4 + [0.3] * 20
    blessed, metrics = _gate(labels, scores, tmp_path)
    assert metrics["recall_at_precision"] == pytest.approx(0.8)
    assert not blessed
    # The same scores pass a recall floor of 0.8.
    assert _gate(labels, scores, tmp_path / "lower", recall_floor=0.8)[0]
