"""CallCounter: the counting job as a TFX component after Pusher and ThresholdSelector.

Its `counts` artifact (the counting job's output folder) is recorded in ML Metadata with the pushed
model and the threshold as inputs, so every count can be traced to the model and blessing behind it.
"""

import hashlib
import json
import os

from tfx import v1 as tfx
from tfx.types import artifact

from components import counting
from components.threshold import CallThreshold


class CallCounts(artifact.Artifact):
    """counts.csv, detections.csv, selections.txt, failures.csv and summary.json of one counting run."""

    TYPE_NAME = "capuchin.CallCounts"


def recordings_fingerprint(recordings: str) -> str:
    """Changes when a recording is added, removed or modified, so a cached count is never stale.

    Local paths only; for remote ones (gs://, compiled for Vertex) it is the path itself.
    """
    if "://" in recordings:
        return recordings
    digest = hashlib.sha256()
    for path in counting.list_recordings(recordings):
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@tfx.dsl.components.component
def CallCounter(
    pushed_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.PushedModel],
    threshold: tfx.dsl.components.InputArtifact[CallThreshold],
    counts: tfx.dsl.components.OutputArtifact[CallCounts],
    recordings: tfx.dsl.components.Parameter[str],
    recordings_fingerprint: tfx.dsl.components.Parameter[str],
    hop_seconds: tfx.dsl.components.Parameter[float],
) -> None:
    """Counts calls in `recordings` with the pushed model at its chosen threshold (nothing if not pushed)."""
    del recordings_fingerprint  # only there to key the cache
    os.makedirs(counts.uri, exist_ok=True)
    if pushed_model.get_int_custom_property("pushed") != 1:
        with open(os.path.join(counts.uri, counting.SUMMARY_JSON), "w") as f:
            json.dump({"skipped": "the model was not blessed, so nothing was pushed or counted"}, f)
        counts.set_int_custom_property("counted", 0)
        return
    summary = counting.run_counting(
        pushed_model.get_string_custom_property("pushed_destination"),
        recordings,
        counts.uri,
        threshold=threshold.get_float_custom_property("threshold"),
        hop_seconds=hop_seconds,
    )
    counts.set_int_custom_property("counted", 1)
    for name in ("files", "failures", "calls"):
        counts.set_int_custom_property(name, int(summary[name]))
    counts.set_float_custom_property("audio_hours", float(summary["audio_hours"]))
