"""Reads what the pipeline recorded in ML Metadata: runs, each component's execution and artifacts,
the evaluation, the blessing, the pushed model and the counting threshold.

Everything is found through ML Metadata (executions, events, artifacts and their properties); only
the metric values are read from the evaluation artifact that ML Metadata points to.
"""

import json
import os
from typing import Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import scoring, tfma_results

METADATA_SQLITE = "metadata.sqlite"
_RUN_CONTEXT = "pipeline_run"
_NODE_CONTEXT = "node"
_EVENT_DIRECTION = {
    metadata_store_pb2.Event.INPUT: "in",
    metadata_store_pb2.Event.DECLARED_INPUT: "in",
    metadata_store_pb2.Event.OUTPUT: "out",
    metadata_store_pb2.Event.DECLARED_OUTPUT: "out",
    metadata_store_pb2.Event.INTERNAL_OUTPUT: "out",
}
_SHOWN_PROPERTIES = (
    "blessed", "pushed", "pushed_destination", "threshold", "precision", "recall", "f1", "split_names",
    "counted", "files", "failures", "calls", "audio_hours", "calibrated", "gap_seconds", "min_call_seconds",
    "calibration_mae", "calibration_exact", "calibration_false_calls_per_hour", "calibration_event_recall",
    "background_hours", "background_failures",
)


def open_store(sqlite_path: str) -> metadata_store.MetadataStore:
    if not os.path.exists(sqlite_path):
        raise FileNotFoundError(f"no ML Metadata at {sqlite_path}: has the pipeline run in that output dir?")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = sqlite_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _value(value: metadata_store_pb2.Value):
    """int, float or string; None for structured values (protos, structs), which are not shown."""
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("int_value", "double_value", "string_value") else None


def _properties(artifact: metadata_store_pb2.Artifact) -> Dict:
    merged = {**artifact.properties, **artifact.custom_properties}
    values = {k: _value(v) for k, v in merged.items() if k in _SHOWN_PROPERTIES}
    return {k: v for k, v in values.items() if v is not None}


def _custom_config(execution: metadata_store_pb2.Execution) -> Dict:
    """The component's custom_config (the Trainer's architecture, seeds and review file), as TFX records it."""
    value = execution.custom_properties.get("custom_config") or execution.properties.get("custom_config")
    try:
        return json.loads(value.string_value) if value is not None and value.string_value else {}
    except ValueError:
        return {}


def run_report(store: metadata_store.MetadataStore, run: metadata_store_pb2.Context) -> Dict:
    """One pipeline run: its components in execution order, each with state and artifacts."""
    node_types = store.get_context_type(_NODE_CONTEXT).id
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list({ev.artifact_id for ev in events}))}
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    components = []
    for execution in executions:
        node = next(
            (c.name.split(".", 1)[-1] for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_types),
            execution.type,
        )
        record = {
            "component": node,
            "execution_id": execution.id,
            "state": metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            "config": _custom_config(execution),
            "inputs": [],
            "outputs": [],
        }
        for event in (ev for ev in events if ev.execution_id == execution.id):
            direction = _EVENT_DIRECTION.get(event.type)
            if direction is None:
                continue
            artifact = artifacts[event.artifact_id]
            record["inputs" if direction == "in" else "outputs"].append(
                {
                    "key": event.path.steps[0].key if event.path.steps else "",
                    "type": type_names.get(artifact.type_id, artifact.type),
                    "id": artifact.id,
                    "uri": artifact.uri,
                    "properties": _properties(artifact),
                }
            )
        components.append(record)
    report = {"run": run.name, "components": components}
    report.update(_outcome(components))
    return report


def _output(components: List[Dict], component: str, key: str) -> Optional[Dict]:
    for record in components:
        if record["component"] == component:
            return next((a for a in record["outputs"] if a["key"] == key), None)
    return None


def _outcome(components: List[Dict]) -> Dict:
    """Model, metrics, blessing, push and threshold of a run, from its artifacts."""
    model = _output(components, "Trainer", "model")
    blessing = _output(components, "Evaluator", "blessing")
    evaluation = _output(components, "Evaluator", "evaluation")
    pushed = _output(components, "Pusher", "pushed_model")
    threshold = _output(components, "ThresholdSelector", "threshold")
    calibration = _output(components, "CountCalibrator", "calibration_result")
    counts = _output(components, "CallCounter", "counts")
    trainer = next((c for c in components if c["component"] == "Trainer"), None)
    return {
        "model_uri": model and model["uri"],
        "reviewed": trainer and trainer["config"].get("reviewed"),
        "blessed": bool(blessing and blessing["properties"].get("blessed") == 1),
        "metrics": tfma_results.overall_metrics(evaluation["uri"]) if evaluation else {},
        "pushed_to": pushed and scoring.pushed_destination(pushed["properties"]),
        "threshold": threshold and threshold["properties"].get("threshold"),
        "threshold_uri": threshold and threshold["uri"],
        "calibration_uri": calibration and calibration["uri"],
        "calibration": calibration and calibration["properties"],
        "counts_uri": counts["uri"] if counts and counts["properties"].get("counted") == 1 else None,
        "counts": counts and counts["properties"],
    }


def list_runs(store: metadata_store.MetadataStore) -> List[metadata_store_pb2.Context]:
    return sorted(store.get_contexts_by_type(_RUN_CONTEXT), key=lambda c: c.create_time_since_epoch)


def latest_run_report(sqlite_path: str) -> Dict:
    store = open_store(sqlite_path)
    runs = list_runs(store)
    if not runs:
        raise ValueError(f"ML Metadata at {sqlite_path} records no pipeline run")
    return run_report(store, runs[-1])


def format_run_summary(report: Dict) -> str:
    """The local runner's closing lines: metrics, blessing, where the model and threshold are."""
    metrics = report["metrics"]
    lines = [
        f"Run {report['run']}: "
        + ", ".join(f"{report_state(report, c)}" for c in ("Trainer", "Evaluator", "Pusher")),
        "  eval ({:.0f} clips): best recall at the precision floor {:.3f} (the gate), average precision {:.3f}; "
        "at 0.5: recall {:.3f}, precision {:.3f}, accuracy {:.3f}".format(
            metrics.get("example_count", 0), metrics.get("recall_at_precision", float("nan")),
            metrics.get("average_precision", float("nan")), metrics.get("recall", float("nan")),
            metrics.get("precision", float("nan")), metrics.get("binary_accuracy", float("nan")),
        ),
        f"  blessed: {'yes' if report['blessed'] else 'NO (below a floor, or worse than the last blessed model)'}",
        f"  model: {report['model_uri']}",
        f"  pushed to: {report['pushed_to'] or 'nothing pushed'}",
    ]
    if report.get("reviewed"):
        lines.append(f"  trained with the review labels {report['reviewed']['file']}")
    if report["threshold"] is not None:
        lines.append(f"  threshold chosen on eval clips (score_clips.py calls clips there): {report['threshold']:.3f}; "
                     f"PR curve: {os.path.join(report['threshold_uri'], 'pr_curve.png')}")
    calibration = report.get("calibration")
    if calibration and calibration.get("calibrated") == 1:
        lines.append(
            f"  counting operating point (site calibration): threshold {calibration['threshold']:.3f}, gap "
            f"{calibration['gap_seconds']:g} s, min call {calibration['min_call_seconds']:g} s; calibration count MAE "
            f"{calibration['calibration_mae']:.2f} ({calibration['calibration_exact']:.0%} exact), "
            f"{calibration['calibration_false_calls_per_hour']:.2f} false calls per hour on "
            f"{calibration['background_hours']:.2f} h of site background; "
            f"plot: {os.path.join(report['calibration_uri'], 'calibration.png')}")
    elif calibration:
        lines.append(f"  counting operating point: the eval-clip threshold (not calibrated: no usable site background; "
                     f"see {os.path.join(report['calibration_uri'], 'calibration.json')})")
    if calibration and calibration.get("background_failures"):
        lines.append(f"  {calibration['background_failures']} background recording(s) skipped: see calibration.json")
    if report.get("counts_uri"):
        counts = report["counts"]
        lines.append(f"  counted {counts.get('calls')} calls in {counts.get('files', 0) - counts.get('failures', 0)} "
                     f"recordings ({counts.get('failures')} failures): {os.path.join(report['counts_uri'], 'counts.csv')}")
    return "\n".join(lines)


def report_state(report: Dict, component: str) -> str:
    state = next((c["state"] for c in report["components"] if c["component"] == component), "NOT RUN")
    return f"{component} {state.lower()}"


def format_run_report(report: Dict) -> str:
    """Every component of a run with its state and artifacts (inspect_metadata's listing)."""
    lines = [f"Run {report['run']}"]
    for record in report["components"]:
        lines.append(f"  {record['component']:<31} {record['state']:<9} execution {record['execution_id']}")
        for direction in ("inputs", "outputs"):
            for artifact in record[direction]:
                properties = "".join(f" {k}={v}" for k, v in sorted(artifact["properties"].items()))
                arrow = "<-" if direction == "inputs" else "->"
                lines.append(f"      {arrow} {artifact['key']}: {artifact['type']} #{artifact['id']} {artifact['uri']}{properties}")
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(report["metrics"].items()))
    lines.append(f"  eval metrics: {metrics or 'none'}")
    lines.append(f"  blessed: {report['blessed']}; pushed to: {report['pushed_to']}; threshold: {report['threshold']}")
    if report.get("reviewed"):
        lines.append(f"  trained with the review: {report['reviewed']['file']} (sha256 {report['reviewed']['sha256'][:12]})")
    if report.get("calibration"):
        lines.append(f"  calibration: {report['calibration_uri']} {report['calibration']}")
    if report.get("counts_uri"):
        lines.append(f"  counts: {report['counts_uri']} {report['counts']}")
    return "\n".join(lines)
