"""The counting job's output folder: a part file per finished recording, the tables, plots and summary.

    OUT/counts.csv        recording,capuchin_calls,calls_per_hour   one row per input file that could be read
    OUT/detections.csv    recording,start_s,end_s,score one row per call
    OUT/selections.txt    Raven selection table of all calls (Begin File column names the recording)
    OUT/failures.csv      recording,reason              files that could not be counted
    OUT/summary.json      the model and its version, the operating point, hop and code version; files,
                          audio hours, calls, wall time, realtime factor, files per decoder
    OUT/parts/            one JSON per finished recording: what makes a re-run skip it and a killed run
                          resume; its `decoder` says what read the file (audio.MPG123 or audio.SOUNDFILE)
    OUT/plots/            with plots: a PNG per recording, its spectrogram above its scores, the calls marked
"""

import csv
import functools
import hashlib
import json
import os
import subprocess
from typing import Dict, Iterable, Sequence

import numpy as np

from components import audio, files, scoring
from components.counting.config import CountingConfig
from model import features

COUNTS_CSV = "counts.csv"
DETECTIONS_CSV = "detections.csv"
SELECTIONS_TXT = "selections.txt"
FAILURES_CSV = "failures.csv"
SUMMARY_JSON = "summary.json"
PARTS_DIR = "parts"
PLOTS_DIR = "plots"


def _part_path(output_dir: str, recording: str) -> str:
    return os.path.join(output_dir, PARTS_DIR, hashlib.sha256(recording.encode()).hexdigest()[:20] + ".json")


def save_part(output_dir: str, result: Dict) -> None:
    """A recording's result as its part file, written whole or not at all (a killed run leaves no half part)."""
    path = _part_path(output_dir, result["recording"])
    temporary = f"{path}.tmp{os.getpid()}"
    with files.open_file(temporary, "w") as f:
        f.write(json.dumps(result))
    files.replace(temporary, path)


def prepare_parts(output_dir: str) -> Dict[str, Dict]:
    """Makes the parts folder, removes what a killed run left half-written, and returns the finished
    results by recording."""
    parts = os.path.join(output_dir, PARTS_DIR)
    files.makedirs(parts)
    for name in files.listdir(parts):
        if not name.endswith(".json"):
            files.remove(os.path.join(parts, name))
    return load_parts(output_dir)


def load_parts(output_dir: str) -> Dict[str, Dict]:
    """The finished recordings' results, by recording."""
    results = {}
    parts = os.path.join(output_dir, PARTS_DIR)
    for name in sorted(files.listdir(parts)):
        if name.endswith(".json"):
            with files.open_file(os.path.join(parts, name)) as f:
                result = json.loads(f.read())
            results[result["recording"]] = result
    return results


def calls_per_hour(result: Dict) -> float:
    return round(result["calls"] * 3600 / result["seconds"], 2) if result["seconds"] else 0.0


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, and the git commit when the code runs from a checkout (with '+dirty' for
    uncommitted changes), so a summary says which code counted."""
    from importlib import metadata

    try:
        version = metadata.version("capuchin")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        commit = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version} ({commit})" if commit else version


def write_tables(results: Iterable[Dict], output_dir: str) -> None:
    """counts.csv, detections.csv, selections.txt and failures.csv, in recording order."""
    ordered = sorted(results, key=lambda r: r["recording"])
    counted = [r for r in ordered if r["reason"] is None]
    with files.open_file(os.path.join(output_dir, COUNTS_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "capuchin_calls", "calls_per_hour"])
        writer.writerows((os.path.basename(r["recording"]), r["calls"], calls_per_hour(r)) for r in counted)
    with files.open_file(os.path.join(output_dir, DETECTIONS_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "start_s", "end_s", "score"])
        writer.writerows((os.path.basename(r["recording"]), *d) for r in counted for d in r["detections"])
    with files.open_file(os.path.join(output_dir, SELECTIONS_TXT), "w") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                         "Low Freq (Hz)", "High Freq (Hz)", "Begin File", "Score"])
        selection = 0
        for r in counted:
            for start, end, score in r["detections"]:
                selection += 1
                writer.writerow([selection, "Spectrogram 1", 1, start, end, features.MEL_LOWER_HZ,
                                 features.MEL_UPPER_HZ, os.path.basename(r["recording"]), score])
    with files.open_file(os.path.join(output_dir, FAILURES_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "reason"])
        writer.writerows((r["recording"], r["reason"]) for r in ordered if r["reason"] is not None)


def decoder_tally(results: Iterable[Dict]) -> Dict[str, int]:
    """{decoder: files it read}. Parts saved before results named their decoder were read by soundfile."""
    tally: Dict[str, int] = {}
    for result in results:
        decoder = result.get("decoder", audio.SOUNDFILE)
        tally[decoder] = tally.get(decoder, 0) + 1
    return dict(sorted(tally.items()))


def write_summary(output_dir: str, results: Dict[str, Dict], new: Sequence[str], wall_seconds: float,
                  model_dir: str, operating_point: Dict, config: CountingConfig) -> Dict:
    """summary.json of all finished recordings (`results`), `new` of them counted in this run; returns it."""
    seconds = sum(r["seconds"] for r in results.values())
    new_seconds = sum(results[r]["seconds"] for r in new)
    summary = {
        "model": model_dir,
        # The Pusher's version folder (a timestamp); a model folder that is no push names itself.
        "model_version": os.path.basename(model_dir.rstrip("/")),
        "code_version": code_version(),
        "threshold": config.threshold,
        "operating_point": operating_point,
        "hop_seconds": config.hop_seconds,
        # The networks' arithmetic on this machine (the workers': where they run on CPUs like it).
        "networks": "bfloat16" if scoring.networks_in_bfloat16(config.bfloat16) else "float32",
        "files": len(results),
        "counted": sum(r["reason"] is None for r in results.values()),
        "failures": sum(r["reason"] is not None for r in results.values()),
        "audio_hours": round(seconds / 3600, 4),
        "calls": sum(r["calls"] or 0 for r in results.values()),
        "new_this_run": len(new),
        "wall_seconds": round(wall_seconds, 2),
        "realtime_factor": round(new_seconds / wall_seconds, 1) if new and wall_seconds else None,
        "decoders": decoder_tally(results.values()),
    }
    with files.open_file(os.path.join(output_dir, SUMMARY_JSON), "w") as f:
        f.write(json.dumps(summary, indent=2))
    return summary


def plot_recording(recording, times, scores, detections, config: CountingConfig, output_dir: str) -> None:
    """A PNG of the recording's spectrogram (up to the features' upper band edge) above its scores over
    time (per frame, or per window centre), with the threshold and the calls marked on both, so a person
    can check a count at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import signal


    waveform = audio.load_audio(recording)
    frequencies, frame_times, power = signal.spectrogram(waveform, fs=features.SAMPLE_RATE, nperseg=512,
                                                         noverlap=256)
    band = frequencies <= features.MEL_UPPER_HZ
    files.makedirs(os.path.join(output_dir, PLOTS_DIR))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=[3, 2])
    top.pcolormesh(frame_times, frequencies[band], 10 * np.log10(power[band] + 1e-12), shading="auto",
                   cmap="magma", rasterized=True)
    top.set(ylabel="Hz", title=f"{os.path.basename(recording)}: {len(detections)} calls")
    bottom.plot(times, scores, lw=1, label="score")
    bottom.axhline(config.threshold, color="gray", ls="--", lw=1, label=f"threshold {config.threshold:.2f}")
    for start, end, _ in detections:
        bottom.axvspan(start, end, color="tab:red", alpha=0.25)
        top.axvspan(start, end, ymin=0.0, ymax=0.04, color="cyan")
    bottom.set(xlabel="time (s)", ylabel="call probability", ylim=(-0.02, 1.02))
    bottom.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    with files.open_file(os.path.join(output_dir, PLOTS_DIR, os.path.basename(recording) + ".png"), "wb") as f:
        figure.savefig(f, format="png", dpi=90)
    plt.close(figure)
