"""ThresholdSelector: a TFX component after Evaluator and Pusher that picks the counting threshold.

From the Evaluator's own confusion matrices (TFMA ConfusionMatrixPlot on the eval split) it takes the
threshold with the fewest wrong eval clips (ties, within THRESHOLD_TIE_CLIPS: the one nearest
PREFERRED_THRESHOLD; see model/features.py), writes it with a PR-curve PNG into its artifact, and, when
the model was pushed, also into the pushed model (`assets.extra/threshold.json`) so the counting job
finds it there.
"""

import json
import os
from typing import Dict, List

from tfx import v1 as tfx
from tfx.types import artifact

from components import tfma_results
from components.scoring import THRESHOLD_FILE, pushed_destination
from model import features

THRESHOLD_JSON = "threshold.json"
PR_CURVE_PNG = "pr_curve.png"


class CallThreshold(artifact.Artifact):
    """The decision threshold for counting, with the PR curve it came from."""

    TYPE_NAME = "capuchin.CallThreshold"  # <namespace>.<Name>: the form KFP v2 accepts for custom types


def pr_points(evaluation_uri: str) -> List[Dict[str, float]]:
    """[{threshold, precision, recall, f1, errors}] for the candidate model on the overall slice, by
    threshold; errors = false positives + false negatives (clips)."""
    points = []
    for matrix in tfma_results.confusion_matrices(evaluation_uri):
        threshold = matrix.get("threshold", 0.0)
        if not 0.0 <= threshold <= 1.0:  # TFMA adds sentinels just outside [0, 1]
            continue
        tp, fp, fn = (matrix.get(k, 0.0) for k in ("truePositives", "falsePositives", "falseNegatives"))
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        points.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1, "errors": fp + fn})
    return sorted(points, key=lambda p: p["threshold"])


def choose_threshold(
    points: List[Dict[str, float]],
    preferred: float = features.PREFERRED_THRESHOLD,
    tie_clips: int = features.THRESHOLD_TIE_CLIPS,
) -> Dict[str, float]:
    """The point with the fewest wrong clips; points within `tie_clips` of the fewest tie, and of those
    the one nearest `preferred` wins. One clip cannot move the threshold on its own."""
    fewest = min(p["errors"] for p in points)
    ties = [p for p in points if p["errors"] <= fewest + tie_clips + 1e-9]
    return min(ties, key=lambda p: abs(p["threshold"] - preferred))


def write_pr_curve(points: List[Dict[str, float]], chosen: Dict[str, float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4.5))
    axis.plot([p["recall"] for p in points], [p["precision"] for p in points], lw=2)
    axis.scatter([chosen["recall"]], [chosen["precision"]], color="red", zorder=3,
                 label=f"threshold {chosen['threshold']:.3f} (F1 {chosen['f1']:.3f})")
    axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="Eval PR curve")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


@tfx.dsl.components.component
def ThresholdSelector(
    evaluation: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    pushed_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.PushedModel],
    threshold: tfx.dsl.components.OutputArtifact[CallThreshold],
) -> None:
    """Picks the counting threshold on eval (choose_threshold); writes threshold.json and pr_curve.png."""
    import tensorflow as tf

    points = pr_points(evaluation.uri)
    chosen = choose_threshold(points)
    tf.io.gfile.makedirs(threshold.uri)
    write_pr_curve(points, chosen, os.path.join(threshold.uri, PR_CURVE_PNG))
    payload = json.dumps({**chosen, "evaluation": evaluation.uri}, indent=2)
    with tf.io.gfile.GFile(os.path.join(threshold.uri, THRESHOLD_JSON), "w") as f:
        f.write(payload)
    for name in ("threshold", "precision", "recall", "f1"):
        threshold.set_float_custom_property(name, float(chosen[name]))
    destination = pushed_destination(pushed_model)
    if destination is not None:
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(destination, THRESHOLD_FILE)))
        with tf.io.gfile.GFile(os.path.join(destination, THRESHOLD_FILE), "w") as f:
            f.write(payload)
