"""Reading the Evaluator's output (a TFMA evaluation artifact): the new model's overall metrics and
its confusion matrices. Used by ThresholdSelector and by the run reports (pipeline/metadata.py)."""

from typing import Dict, List


def candidate_overall(evaluation_uri: str, kind: str) -> Dict:
    """The new model's overall-slice 'slicing_metrics' or 'plots' from a TFMA evaluation artifact."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers import eval_config_writer

    # With a baseline TFMA names the new model 'candidate'; without one, the only model has no name.
    # Asking for a name the run lacks would log a warning, so the names are read first.
    model_names = eval_config_writer.load_eval_run(evaluation_uri)[3]
    result = tfma.load_eval_result(evaluation_uri, model_name="candidate" if "candidate" in model_names else None)
    overall = [value for slice_key, value in getattr(result, kind) or [] if slice_key == ()]
    if not overall:
        raise ValueError(f"no overall {kind} in the evaluation at {evaluation_uri}")
    return overall[0]


def overall_metrics(evaluation_uri: str) -> Dict[str, float]:
    """The new model's overall metrics by name ({} if the evaluation has none)."""
    try:
        values = candidate_overall(evaluation_uri, "slicing_metrics")[""][""]
    except ValueError:
        return {}
    # Undefined metrics (precision with no positive predictions) come back as the string "NaN".
    return {name: float(value["doubleValue"]) for name, value in values.items() if "doubleValue" in value}


def confusion_matrices(evaluation_uri: str) -> List[Dict]:
    """The new model's overall confusion matrices (ConfusionMatrixPlot), one per threshold:
    {threshold, truePositives, falsePositives, falseNegatives, ...}, zero counts left out."""
    return _find_key(candidate_overall(evaluation_uri, "plots"), "confusionMatrixAtThresholds")["matrices"]


def _find_key(tree, key):
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None
