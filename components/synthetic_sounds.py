"""Synthetic sounds for the default data: a call-like "moo", the non-call sounds, coloured noise.

Each sound takes a random generator, a sample rate and a duration, and returns float32 mono with peak
about 1. The same generator state gives the same samples, so the data built from them
(`components/synthetic_data.py`) is a pure function of its seed.
"""

from typing import Callable, Dict

import numpy as np
import scipy.fft


def capuchin_call(rng: np.random.Generator, rate: int, base_f0: float, duration: float) -> np.ndarray:
    """A low harmonic "moo": fundamental `base_f0` (300–900 Hz) rising then falling, with vibrato."""
    t = np.arange(int(duration * rate)) / rate
    contour = 1.0 + 0.25 * np.sin(np.pi * t / duration)  # rises by a quarter, then falls back
    vibrato = 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(5, 8) * t)
    f0 = base_f0 * contour * vibrato
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = np.zeros_like(t)
    for harmonic in range(1, 7):
        if harmonic * f0.max() < min(4_000, rate / 2):  # calls live below ~4 kHz
            wave += np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi)) / harmonic**1.2
    return normalise(wave * _envelope(len(t), rate, attack=0.1, release=0.25))


def chirps(rng: np.random.Generator, rate: int, duration: float) -> np.ndarray:
    """Fast high frequency sweeps (small songbirds): 30–80 ms each, 2.5–7 kHz."""
    out = np.zeros(int(duration * rate))
    position = rng.uniform(0, 0.2)
    top = min(7_000, 0.45 * rate)
    while position < duration - 0.1:
        length = rng.uniform(0.03, 0.08)
        t = np.arange(int(length * rate)) / rate
        start_f, end_f = rng.uniform(0.4, 0.6) * top, rng.uniform(0.8, 1.0) * top
        if rng.random() < 0.5:
            start_f, end_f = end_f, start_f
        freq = np.linspace(start_f, end_f, len(t))
        chirp = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.hanning(len(t))
        begin = int(position * rate)
        out[begin : begin + len(chirp)] += chirp[: len(out) - begin]
        position += length + rng.uniform(0.05, 0.3)
    return normalise(out)


def insect_trill(rng: np.random.Generator, rate: int, duration: float) -> np.ndarray:
    """A steady high carrier (4–7 kHz) pulsed 20–60 times a second (crickets, cicadas)."""
    t = np.arange(int(duration * rate)) / rate
    carrier = rng.uniform(4_000, 7_000) * min(1.0, 0.45 * rate / 7_000)
    pulses = (np.sin(2 * np.pi * rng.uniform(20, 60) * t) > rng.uniform(-0.2, 0.4)).astype(float)
    return normalise(np.sin(2 * np.pi * carrier * t) * pulses)


def rain(rng: np.random.Generator, rate: int, duration: float) -> np.ndarray:
    """Broadband hiss with sparse drop clicks."""
    n = int(duration * rate)
    hiss = rng.normal(size=n) * 0.3
    drops = (rng.random(n) < 40 / rate) * rng.normal(size=n) * 3.0
    return normalise(hiss + np.convolve(drops, np.exp(-np.arange(64) / 8.0), mode="same"))


def wind(rng: np.random.Generator, rate: int, duration: float) -> np.ndarray:
    """Low rumbling noise (red spectrum) with slow gusts: energy in the calls' own band."""
    n = int(duration * rate)
    gusts = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * np.arange(n) / rate + rng.uniform(0, 6))
    return normalise(coloured_noise(rng, n, exponent=2.0) * gusts)


def silence(rng: np.random.Generator, rate: int, duration: float) -> np.ndarray:
    """Near-silence: recorder self-noise about 70 dB below full scale."""
    return (rng.normal(size=int(duration * rate)) * 3e-4).astype(np.float32)


NEGATIVE_SOUNDS: Dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "chirps": chirps,
    "trill": insect_trill,
    "rain": rain,
    "wind": wind,
    "silence": silence,
}


def coloured_noise(rng: np.random.Generator, n: int, exponent: float = 1.0) -> np.ndarray:
    """Noise with power ∝ 1/f**exponent (1 = pink, 2 = red), unit RMS."""
    padded = scipy.fft.next_fast_len(n, real=True)  # odd lengths make the FFT 10x slower
    spectrum = scipy.fft.rfft(rng.normal(size=padded))
    # Flat below 1/400 of the sample rate (~100 Hz at 44.1 kHz): no rumble far below any sound of interest.
    frequencies = np.maximum(np.arange(len(spectrum), dtype=float), padded / 400)
    noise = scipy.fft.irfft(spectrum / frequencies ** (exponent / 2), padded)[:n]
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def _envelope(n: int, rate: int, attack: float, release: float) -> np.ndarray:
    envelope = np.ones(n)
    a, r = min(int(attack * rate), n // 2), min(int(release * rate), n // 2)
    envelope[:a] = np.linspace(0, 1, a)
    envelope[n - r :] = np.linspace(1, 0, r)
    return envelope


def normalise(x: np.ndarray) -> np.ndarray:
    """float32 with peak about 1."""
    return (x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)
