"""Forest recordings with planted real calls and known truth, for the count benchmark.

Each recording is 3 minutes of background (a call-free real forest recording from `Forest Backgrounds/`,
or the fold's negative clips joined with cross-fades) into which whole positive clips are added with short fades, at random
gains around the background level, some of them only 2–6 s apart. It is written as 48 kHz stereo
128 kbit/s mp3, like the real forest recordings, with the truth in the synthetic data's two CSVs
(`forest_truth.csv`, `forest_calls.csv`), so `synthetic_data.read_forest_*` read both.
"""

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from components import audio, planting, synthetic_data

RATE = synthetic_data.FOREST_RATE  # planted at 48 kHz, written at 48 kHz


# The benchmark's planting: -6..+6 dB around the background level, half of the calls 2-6 s after the
# previous one, half 6-40 s after.
BENCH_PLANTING = planting.PlantingSpec()
SECONDS = 180.0


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


def build_recordings(
    out_dir: str,
    positive_paths: Sequence[str],
    negative_paths: Sequence[str],
    forest_paths: Sequence[str],
    count: int,
    seed: int,
    spec: planting.PlantingSpec = BENCH_PLANTING,
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
            background = np.roll(forest, int(rng.integers(len(forest))))[: int(SECONDS * RATE)]
            kind = "forest"
        else:
            background = joined_background(rng, negatives, SECONDS)
            kind = "negatives"
        mix, calls = planting.plant(rng, background, positives, spec, RATE)
        name = f"planted_{index:03d}_{kind}.mp3"
        stereo = np.stack([mix, mix * np.float32(0.9)], axis=1)
        audio.write_mp3(os.path.join(out_dir, name), stereo, RATE)
        truth[name] = calls
    synthetic_data.write_forest_truth(out_dir, truth, extra_columns=["snr_db"])
    return truth
