"""CallCounter: the counting job as a TFX component after Pusher and CountCalibrator.

Its `counts` artifact (the counting job's output folder) is recorded in ML Metadata with the pushed
model and the calibration as inputs, so every count can be traced to the model, blessing and operating
point behind it.
"""

import json
import os

from tfx import v1 as tfx
from tfx.types import artifact

from components import calibration as site_calibration
from components import counting, files, scoring
from components.count_calibrator import CountCalibration


class CallCounts(artifact.Artifact):
    """counts.csv, detections.csv, selections.txt, failures.csv and summary.json of one counting run."""

    TYPE_NAME = "capuchin.CallCounts"


def recordings_fingerprint(recordings: str) -> str:
    """Changes when a recording is added, removed or modified, so a cached count is never stale.

    Local paths only; for remote ones (gs://, compiled for Vertex) it is the path itself.
    """
    if files.is_remote(recordings):  # compiling for Vertex must not need Cloud Storage access
        return recordings
    return files.fingerprint(counting.list_recordings(recordings))


@tfx.dsl.components.component
def CallCounter(
    pushed_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.PushedModel],
    calibration: tfx.dsl.components.InputArtifact[CountCalibration],
    counts: tfx.dsl.components.OutputArtifact[CallCounts],
    recordings: tfx.dsl.components.Parameter[str],
    recordings_fingerprint: tfx.dsl.components.Parameter[str],
    hop_seconds: tfx.dsl.components.Parameter[float],
) -> None:
    """Counts calls in `recordings` with the pushed model at its operating point (nothing if not pushed)."""
    del recordings_fingerprint  # only there to key the cache
    files.makedirs(counts.uri)
    destination = scoring.pushed_destination(pushed_model)
    if destination is None:
        with files.open_file(os.path.join(counts.uri, counting.SUMMARY_JSON), "w") as f:
            f.write(json.dumps({"skipped": "the model was not blessed, so nothing was pushed or counted"}))
        counts.set_int_custom_property("counted", 0)
        return
    summary = counting.run_counting(
        destination,
        recordings,
        counts.uri,
        hop_seconds=hop_seconds,
        operating_point={
            **{name: calibration.get_float_custom_property(name)
               for name in ("threshold", "gap_seconds", "min_call_seconds")},
            "source": site_calibration.SITE_CALIBRATION if calibration.get_int_custom_property("calibrated")
            else "eval clips",
        },
    )
    counts.set_int_custom_property("counted", 1)
    for name in ("files", "failures", "calls"):
        counts.set_int_custom_property(name, int(summary[name]))
    counts.set_float_custom_property("audio_hours", float(summary["audio_hours"]))
