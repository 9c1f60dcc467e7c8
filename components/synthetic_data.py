"""Synthetic default data: call-like and non-call clips, and forest recordings with planted calls.

Lets the whole project run, and be tested, on a machine without the real dataset. The output uses
the real dataset's layout (see `components/dataset.py`) and is a pure function of the seed:

    <root>/Parsed_Capuchinbird_Clips/synth-call-<g>-<n>.<ext>        call-like "moos"
    <root>/Parsed_Not_Capuchinbird_Clips/synth-<kind>-<g>-<n>.<ext>  chirps, trills, rain, wind, silence
    <root>/Forest Recordings/recording_<i>.mp3                       48 kHz stereo, 128 kbit/s
    <root>/Forest Backgrounds/background_<i>.mp3                     the same forest with no call (calibration)
    <root>/forest_truth.csv    recording,capuchin_calls
    <root>/forest_calls.csv    recording,start_s,end_s (one row per planted call)

Clips of one group share their parameters (pitch, noise colour, format), like clips cut from one
xeno-canto recording, so a split by clip would leak just as it does on the real data. The sounds
themselves come from `components/synthetic_sounds.py`.
"""

import csv
import dataclasses
import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile as sf

from components import audio as audio_io
from components import dataset
from components import synthetic_sounds as sounds

# Formats the clips are written in, one per group in turn, so every decoder and several
# rates and channel counts are exercised: (extension, sample rate, channels).
CLIP_FORMATS = (
    ("wav", 44_100, 1),
    ("flac", 48_000, 2),
    ("wav", 22_050, 1),
    ("mp3", 44_100, 2),
    ("flac", 11_025, 1),
)
FOREST_RATE = audio_io.MP3_RATE  # 48 kHz, like the real forest recordings
FOREST_CHANNELS = 2
NEGATIVE_KINDS = ("chirps", "trill", "rain", "wind", "silence")
# Planted calls are at least this far apart (end to next start): close enough that a counter which
# merges neighbouring detections carelessly gets them wrong.
MIN_CALL_GAP_SECONDS = 2.0
# Call lengths (a real Capuchinbird call lasts about 1.5-4 s).
CALL_SECONDS = (1.5, 3.0)
MANIFEST = "synthetic_manifest.json"
# Bump when the generator's output changes, so existing default data is regenerated.
GENERATOR_VERSION = 3
TRUTH_CSV = "forest_truth.csv"
CALLS_CSV = "forest_calls.csv"


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """How much to generate. The defaults make the default dataset of `runners/local_runner.py`."""

    call_groups: int = 24
    negative_groups_per_kind: int = 6
    clips_per_group: int = 5
    recordings: int = 6
    recording_seconds: float = 180.0
    max_calls_per_recording: int = 8
    # Call-free recordings of the same forest (as long as the recordings), for site calibration.
    backgrounds: int = 3
    seed: int = 0


# --- Clips and recordings ----------------------------------------------------------------------


def positive_clip(rng: np.random.Generator, rate: int, base_f0: float, noise_exponent: float) -> np.ndarray:
    """A 2–3.5 s clip holding one call over background noise at 10–25 dB SNR."""
    length = int(rng.uniform(2.0, 3.5) * rate)
    longest = min(CALL_SECONDS[1], length / rate - 0.2)
    call = sounds.capuchin_call(rng, rate, base_f0 * rng.uniform(0.95, 1.05), rng.uniform(CALL_SECONDS[0], longest))
    start = rng.integers(0, length - len(call) + 1)
    clip = _noise_at_snr(rng, length, call, rng.uniform(10, 25), noise_exponent)
    clip[start : start + len(call)] += call
    return sounds.normalise(clip) * rng.uniform(0.2, 0.8)


def negative_clip(rng: np.random.Generator, rate: int, kind: str, noise_exponent: float) -> np.ndarray:
    """A 2.5–3.5 s clip of one non-call sound over faint background noise."""
    sound = sounds.NEGATIVE_SOUNDS[kind](rng, rate, rng.uniform(2.5, 3.5))
    if kind == "silence":
        return sound
    clip = sound + _noise_at_snr(rng, len(sound), sound, rng.uniform(15, 30), noise_exponent)
    return sounds.normalise(clip) * rng.uniform(0.2, 0.8)


def forest_recording(
    rng: np.random.Generator, seconds: float, num_calls: int
) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """A stereo forest recording with `num_calls` planted calls and non-call events in between.

    Returns:
      float32[frames, 2] at FOREST_RATE, and the planted calls as (start_s, end_s), in order.
    """
    rate = FOREST_RATE
    n = int(seconds * rate)
    background = 0.02 * np.stack([sounds.coloured_noise(rng, n, 1.0), sounds.coloured_noise(rng, n, 1.0)], axis=1)
    calls = _call_times(rng, seconds, num_calls)
    for start, end in calls:
        call = sounds.capuchin_call(rng, rate, rng.uniform(300, 900), end - start)
        gain = 0.02 * 10 ** (rng.uniform(12, 24) / 20)  # 12–24 dB above the background RMS
        _add(background, call * gain, start, rate)
    # Non-call events fill some of the gaps, never overlapping a call (the truth stays unambiguous).
    for _ in range(int(seconds / 10)):
        kind = rng.choice(["chirps", "trill", "rain"])
        length = rng.uniform(1.0, 4.0)
        start = rng.uniform(0, seconds - length)
        if all(start + length < s - 0.5 or start > e + 0.5 for s, e in calls):
            _add(background, sounds.NEGATIVE_SOUNDS[kind](rng, rate, length) * 0.1, start, rate)
    return np.clip(background, -1, 1).astype(np.float32), calls


def _call_times(rng: np.random.Generator, seconds: float, num_calls: int) -> List[Tuple[float, float]]:
    """`num_calls` call intervals in order, MIN_CALL_GAP_SECONDS apart, 0.5 s clear of the ends.

    Built, not rejection-sampled: durations first, then the spare time shared out at random.
    """
    durations = rng.uniform(*CALL_SECONDS, size=num_calls)
    spare = seconds - 1.0 - durations.sum() - MIN_CALL_GAP_SECONDS * max(num_calls - 1, 0)
    if spare < 0:
        raise ValueError(f"{num_calls} calls do not fit in {seconds} s with {MIN_CALL_GAP_SECONDS} s gaps")
    shares = rng.dirichlet(np.ones(num_calls + 1)) * spare  # extra space before each call and at the end
    calls, position = [], 0.5
    for duration, extra in zip(durations, shares):
        start = position + extra
        calls.append((round(start, 3), round(start + duration, 3)))
        position = start + duration + MIN_CALL_GAP_SECONDS
    return calls


def generate_dataset(root: str, spec: SyntheticSpec = SyntheticSpec()) -> Dict[str, int]:
    """Writes the whole synthetic dataset under `root`; skips the work when the same spec is there.

    Returns:
      {'positives': n, 'negatives': n, 'recordings': n, 'planted_calls': n}.
    """
    manifest_path = os.path.join(root, MANIFEST)
    wanted = {**dataclasses.asdict(spec), "generator_version": GENERATOR_VERSION}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest["spec"] == wanted:
            return manifest["summary"]
    rng = np.random.default_rng(spec.seed)
    positives = _write_positive_clips(root, spec, rng)
    negatives = _write_negative_clips(root, spec, rng)
    truth = _write_forest_recordings(root, spec, rng)
    _write_backgrounds(root, spec, rng)  # after the rest, so the rest stays as it was before backgrounds
    summary = {
        "positives": positives,
        "negatives": negatives,
        "recordings": len(truth),
        "planted_calls": sum(len(calls) for calls in truth.values()),
        "backgrounds": spec.backgrounds,
    }
    with open(manifest_path, "w") as f:
        json.dump({"spec": wanted, "summary": summary}, f, indent=2)
    return summary


def write_forest_truth(root: str, truth: Dict[str, list], extra_columns: Sequence[str] = ()) -> None:
    """`forest_truth.csv` and `forest_calls.csv` from {recording file name: [(start_s, end_s, *extra), ...]}."""
    with open(os.path.join(root, TRUTH_CSV), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "capuchin_calls"])
        writer.writerows((name, len(calls)) for name, calls in truth.items())
    with open(os.path.join(root, CALLS_CSV), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "start_s", "end_s", *extra_columns])
        writer.writerows((name, *call) for name, calls in truth.items() for call in calls)


def read_forest_truth(root: str) -> Dict[str, int]:
    """{recording file name: number of planted calls} from `forest_truth.csv`."""
    with open(os.path.join(root, TRUTH_CSV), newline="") as f:
        return {row["recording"]: int(row["capuchin_calls"]) for row in csv.DictReader(f)}


def read_forest_calls(root: str) -> Dict[str, List[Tuple[float, float]]]:
    """{recording file name: [(start_s, end_s), ...]} from `forest_calls.csv`."""
    calls: Dict[str, List[Tuple[float, float]]] = {name: [] for name in read_forest_truth(root)}
    with open(os.path.join(root, CALLS_CSV), newline="") as f:
        for row in csv.DictReader(f):
            calls[row["recording"]].append((float(row["start_s"]), float(row["end_s"])))
    return calls


def _write_positive_clips(root: str, spec: SyntheticSpec, rng: np.random.Generator) -> int:
    folder = os.path.join(root, dataset.POSITIVE_DIR)
    os.makedirs(folder, exist_ok=True)
    for group in range(spec.call_groups):
        extension, rate, channels = CLIP_FORMATS[group % len(CLIP_FORMATS)]
        base_f0, noise_exponent = rng.uniform(300, 900), rng.uniform(0.5, 2.0)
        for n in range(spec.clips_per_group):
            clip = positive_clip(rng, rate, base_f0, noise_exponent)
            _write(os.path.join(folder, f"synth-call-{group:02d}-{n}.{extension}"), clip, rate, channels)
    return spec.call_groups * spec.clips_per_group


def _write_negative_clips(root: str, spec: SyntheticSpec, rng: np.random.Generator) -> int:
    folder = os.path.join(root, dataset.NEGATIVE_DIR)
    os.makedirs(folder, exist_ok=True)
    count = 0
    for kind_index, kind in enumerate(NEGATIVE_KINDS):
        for group in range(spec.negative_groups_per_kind):
            extension, rate, channels = CLIP_FORMATS[(kind_index + group) % len(CLIP_FORMATS)]
            noise_exponent = rng.uniform(0.5, 2.0)
            for n in range(spec.clips_per_group):
                clip = negative_clip(rng, rate, kind, noise_exponent)
                _write(os.path.join(folder, f"synth-{kind}-{group:02d}-{n}.{extension}"), clip, rate, channels)
                count += 1
    return count


def _write_forest_recordings(root: str, spec: SyntheticSpec, rng: np.random.Generator) -> Dict[str, list]:
    folder = os.path.join(root, dataset.FOREST_DIR)
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for index in range(spec.recordings):
        name = f"recording_{index:02d}.mp3"
        # Longest calls plus gaps must fit: k * longest + (k - 1) * gap + 1 <= seconds.
        longest = CALL_SECONDS[1]
        fits = int((spec.recording_seconds - 1.0 + MIN_CALL_GAP_SECONDS) // (longest + MIN_CALL_GAP_SECONDS))
        num_calls = int(rng.integers(0, min(spec.max_calls_per_recording, fits) + 1))
        audio, calls = forest_recording(rng, spec.recording_seconds, num_calls)
        audio_io.write_mp3(os.path.join(folder, name), audio, FOREST_RATE)
        truth[name] = calls
    write_forest_truth(root, truth)
    return truth


def _write_backgrounds(root: str, spec: SyntheticSpec, rng: np.random.Generator) -> None:
    folder = os.path.join(root, dataset.BACKGROUNDS_DIR)
    os.makedirs(folder, exist_ok=True)
    for index in range(spec.backgrounds):
        audio, _ = forest_recording(rng, spec.recording_seconds, 0)
        audio_io.write_mp3(os.path.join(folder, f"background_{index:02d}.mp3"), audio, FOREST_RATE)


def _write(path: str, mono: np.ndarray, rate: int, channels: int) -> None:
    """Writes a mono signal as `channels` channels (slightly different gains, like two microphones)."""
    data = np.stack([mono * (1.0 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)
    if path.endswith(".mp3"):
        audio_io.write_mp3(path, data, rate)
    else:
        sf.write(path, data, rate, subtype="PCM_16")


def _add(target: np.ndarray, sound: np.ndarray, start_s: float, rate: int) -> None:
    begin = int(start_s * rate)
    end = min(begin + len(sound), len(target))
    target[begin:end] += sound[: end - begin, None]


def _noise_at_snr(rng, n: int, signal: np.ndarray, snr_db: float, exponent: float) -> np.ndarray:
    signal_rms = np.sqrt(np.mean(signal**2)) + 1e-12
    return sounds.coloured_noise(rng, n, exponent) * signal_rms / 10 ** (snr_db / 20)
