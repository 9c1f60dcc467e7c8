"""Forest recordings with planted real calls and known truth, for the count benchmark.

Each recording is 3 minutes of background (a call-free real forest recording, or the fold's negative
clips joined with cross-fades) into which whole positive clips are added with short fades, at random
gains around the background level, some of them only 2–6 s apart. It is written as 48 kHz stereo
128 kbit/s mp3, like the real forest recordings, with the truth in the synthetic data's two CSVs
(`forest_truth.csv`, `forest_calls.csv`), so `synthetic_data.read_forest_*` read both.
"""

import dataclasses
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from components import audio, counting, synthetic_data
from model import features

RATE = synthetic_data.FOREST_RATE  # planted at 48 kHz, written at 48 kHz
# The real forest recordings in which no Capuchinbird calls (checked by eye on spectrograms; see
# BENCHMARKS.md): usable as backgrounds without adding calls nobody planted.
CALL_FREE_FOREST = ("recording_02", "recording_03", "recording_12", "recording_13", "recording_14", "recording_18")


@dataclasses.dataclass(frozen=True)
class PlantingSpec:
    seconds: float = 180.0
    max_calls: int = 8
    # Clip RMS over background RMS (over the same span), uniform in this range of dB.
    snr_db: Tuple[float, float] = (-6.0, 6.0)
    # After each call: with probability `close_share` the next call starts 2-6 s after it ends,
    # otherwise 6-40 s after.
    close_gap_s: Tuple[float, float] = (2.0, 6.0)
    far_gap_s: Tuple[float, float] = (6.0, 40.0)
    close_share: float = 0.5
    fade_s: float = 0.1


def _fade(clip: np.ndarray, seconds: float) -> np.ndarray:
    n = min(int(seconds * RATE), len(clip) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32))
    out = clip.copy()
    out[:n] *= ramp
    out[len(out) - n :] *= ramp[::-1]
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-9)


def joined_background(rng: np.random.Generator, clips: Sequence[np.ndarray], seconds: float) -> np.ndarray:
    """Clips in random order, each cross-faded into the next, until `seconds` are filled."""
    n, fade = int(seconds * RATE), int(0.1 * RATE)
    out = np.zeros(n + 10 * RATE, dtype=np.float32)
    position = 0
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    while position < n:
        clip = clips[rng.integers(len(clips))] * np.float32(10 ** (rng.uniform(-6, 6) / 20))
        if len(clip) <= 2 * fade:
            continue
        clip = clip.copy()
        clip[:fade] *= ramp
        clip[-fade:] *= ramp[::-1]
        clip = clip[: len(out) - position]
        out[position : position + len(clip)] += clip
        position += len(clip) - fade
    return out[:n]


def plant(
    rng: np.random.Generator, background: np.ndarray, positives: Sequence[np.ndarray], spec: PlantingSpec
) -> Tuple[np.ndarray, List[Tuple[float, float, float]]]:
    """Adds 0..max_calls positive clips to a mono 48 kHz background.

    Returns the mix and the calls as (start_s, end_s, snr_db).
    """
    mix = background.astype(np.float32).copy()
    wanted = int(rng.integers(0, spec.max_calls + 1))
    calls: List[Tuple[float, float, float]] = []
    position = rng.uniform(0.5, 20.0)
    while len(calls) < wanted:
        clip = positives[rng.integers(len(positives))]
        begin, end = int(position * RATE), int(position * RATE) + len(clip)
        if end > len(mix) - int(0.5 * RATE):
            break
        snr_db = rng.uniform(*spec.snr_db)
        gain = _rms(mix[begin:end]) / _rms(clip) * 10 ** (snr_db / 20)
        mix[begin:end] += _fade(clip, spec.fade_s) * np.float32(gain)
        calls.append((round(begin / RATE, 3), round(end / RATE, 3), round(snr_db, 1)))
        gap = spec.close_gap_s if rng.random() < spec.close_share else spec.far_gap_s
        position = end / RATE + rng.uniform(*gap)
    peak = np.max(np.abs(mix))
    return (mix / peak * 0.9 if peak > 0.9 else mix), calls


def build_recordings(
    out_dir: str,
    positive_paths: Sequence[str],
    negative_paths: Sequence[str],
    forest_paths: Sequence[str],
    count: int,
    seed: int,
    spec: PlantingSpec = PlantingSpec(),
) -> Dict[str, List[Tuple[float, float]]]:
    """Writes `count` planted recordings (half on forest backgrounds, half on joined negatives when
    both are given) and their truth into `out_dir`. Returns {file name: [(start_s, end_s, snr_db), ...]}."""
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    positives = [audio.load_audio(p, RATE) for p in positive_paths]
    negatives = [audio.load_audio(p, RATE) for p in negative_paths]
    truth = {}
    for index in range(count):
        use_forest = bool(forest_paths) and (not negatives or index % 2 == 0)
        if use_forest:
            forest = audio.load_audio(forest_paths[rng.integers(len(forest_paths))], RATE)
            background = np.roll(forest, int(rng.integers(len(forest))))[: int(spec.seconds * RATE)]
            kind = "forest"
        else:
            background = joined_background(rng, negatives, spec.seconds)
            kind = "negatives"
        mix, calls = plant(rng, background, positives, spec)
        name = f"planted_{index:03d}_{kind}.mp3"
        stereo = np.stack([mix, mix * np.float32(0.9)], axis=1)
        audio.write_mp3(os.path.join(out_dir, name), stereo, RATE)
        truth[name] = calls
    synthetic_data.write_forest_truth(out_dir, truth, extra_columns=["snr_db"])
    return truth


def match_events(
    detections: Sequence[Tuple[float, float]], calls: Sequence[Tuple[float, float]]
) -> int:
    """How many calls a detection matches, one to one: a detection matches a call it overlaps,
    pairs taken in order of overlap."""
    pairs = sorted(
        ((min(d[1], c[1]) - max(d[0], c[0]), i, j) for i, d in enumerate(detections) for j, c in enumerate(calls)
         if min(d[1], c[1]) > max(d[0], c[0])),
        reverse=True,
    )
    used_d, used_c, matched = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_d and j not in used_c:
            used_d.add(i)
            used_c.add(j)
            matched += 1
    return matched


def count_scores(
    counts: Dict[str, int],
    detections: Dict[str, List[Tuple[float, float]]],
    truth: Dict[str, List[Tuple[float, float]]],
) -> Dict[str, float]:
    """MAE, exact-match rate and event precision/recall of counts against planted truth."""
    names = sorted(truth)
    errors = [abs(counts.get(n, 0) - len(truth[n])) for n in names]
    matched = sum(match_events(detections.get(n, []), truth[n]) for n in names)
    found = sum(len(detections.get(n, [])) for n in names)
    planted = sum(len(truth[n]) for n in names)
    return {
        "recordings": len(names),
        "calls": planted,
        "mae": float(np.mean(errors)),
        "exact": float(np.mean([e == 0 for e in errors])),
        "event_precision": matched / found if found else 1.0,
        "event_recall": matched / planted if planted else 1.0,
    }


def score_recordings(scorer, recordings: str, hop_seconds: float = features.HOP_SECONDS):
    """{file name: (window starts in seconds, frame scores [windows, frames])} of every planted recording
    in `recordings`, windowed and scored as the counting job does it."""
    hop = int(round(hop_seconds * features.SAMPLE_RATE))
    scored = {}
    for name in sorted(synthetic_data.read_forest_truth(recordings)):
        waveform = audio.load_audio(os.path.join(recordings, name))
        starts = counting.window_starts(len(waveform), features.CLIP_SAMPLES, hop)
        scored[name] = (starts / features.SAMPLE_RATE,
                        counting.score_windows(waveform, starts, scorer, features.CLIP_SAMPLES))
    return scored
