"""Planting real calls into background audio, with the truth kept: for site calibration and the count benchmark.

A call clip is added whole, with short fades, at a loudness relative to the background it lands on (clip
RMS over background RMS across the same span, in dB), and the next call follows after a gap drawn from
one of several ranges (back to back, a few seconds, far apart), as calls sit in a forest recording.
"""

import dataclasses
from typing import Dict, List, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class PlantingSpec:
    max_calls: int = 8
    # Clip RMS over background RMS (over the same span), uniform in this range of dB.
    snr_db: Tuple[float, float] = (-6.0, 6.0)
    # After each call, the gap to the next one (end to start) is drawn from one of these ranges:
    # (probability, shortest s, longest s).
    gaps_s: Tuple[Tuple[float, float, float], ...] = ((0.5, 2.0, 6.0), (0.5, 6.0, 40.0))
    fade_s: float = 0.1
    # No call starts before this or ends within this of the end.
    margin_s: float = 0.5
    first_call_by_s: float = 20.0


def fade(clip: np.ndarray, seconds: float, rate: int) -> np.ndarray:
    """The clip with raised-cosine fades of `seconds` (at most half the clip) at both ends."""
    n = min(int(seconds * rate), len(clip) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n, dtype=np.float32))
    out = clip.astype(np.float32, copy=True)
    out[:n] *= ramp
    out[len(out) - n :] *= ramp[::-1]
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-9)


def plant(
    rng: np.random.Generator, background: np.ndarray, calls: Sequence[np.ndarray], spec: PlantingSpec, rate: int
) -> Tuple[np.ndarray, List[Tuple[float, float, float]]]:
    """Adds 0..spec.max_calls of `calls` (mono clips at `rate`) to a mono background at `rate`.

    Returns the mix (scaled down to a 0.9 peak if it would clip) and the planted calls as
    (start_s, end_s, snr_db), in order.
    """
    mix = background.astype(np.float32).copy()
    wanted = int(rng.integers(0, spec.max_calls + 1))
    shares = np.array([share for share, _, _ in spec.gaps_s])
    planted: List[Tuple[float, float, float]] = []
    position = rng.uniform(spec.margin_s, spec.first_call_by_s)
    while len(planted) < wanted:
        clip = calls[rng.integers(len(calls))]
        begin = int(position * rate)
        end = begin + len(clip)
        if end > len(mix) - int(spec.margin_s * rate):
            break
        snr_db = rng.uniform(*spec.snr_db)
        gain = rms(mix[begin:end]) / rms(clip) * 10 ** (snr_db / 20)
        mix[begin:end] += fade(clip, spec.fade_s, rate) * np.float32(gain)
        planted.append((round(begin / rate, 3), round(end / rate, 3), round(snr_db, 1)))
        _, shortest, longest = spec.gaps_s[rng.choice(len(shares), p=shares / shares.sum())]
        position = end / rate + rng.uniform(shortest, longest)
    peak = np.max(np.abs(mix)) if len(mix) else 0.0
    return (mix / peak * 0.9 if peak > 0.9 else mix), planted


def trim_silence(clip: np.ndarray) -> np.ndarray:
    """The clip without the exact zeros that padding to a window's length added at either end."""
    sounding = np.flatnonzero(clip)
    return clip[sounding[0] : sounding[-1] + 1] if len(sounding) else clip[:0]


def matched_pairs(
    detections: Sequence[Tuple[float, float]], calls: Sequence[Tuple[float, float]]
) -> List[Tuple[int, int]]:
    """(detection index, call index) of each match, one to one: a detection matches a call it overlaps,
    pairs taken in order of overlap."""
    pairs = sorted(
        ((min(d[1], c[1]) - max(d[0], c[0]), i, j) for i, d in enumerate(detections) for j, c in enumerate(calls)
         if min(d[1], c[1]) > max(d[0], c[0])),
        reverse=True,
    )
    used_d, used_c, matched = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_c:
            used_d.add(i)
            used_c.add(j)
            matched.append((i, j))
    return matched


def match_events(
    detections: Sequence[Tuple[float, float]], calls: Sequence[Tuple[float, float]]
) -> int:
    """How many calls a detection matches (`matched_pairs`)."""
    return len(matched_pairs(detections, calls))


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
