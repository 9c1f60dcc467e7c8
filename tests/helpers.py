"""Helpers shared by the tests: generated tones, the tiny synthetic spec, the real-data switch."""

import os

import numpy as np
import pytest
import soundfile as sf

from components import audio, synthetic_data

REAL_DATA_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "capuchin"))

# A few dozen clips and two short recordings: enough to exercise every path in seconds.
TINY_SPEC = synthetic_data.SyntheticSpec(
    call_groups=6, negative_groups_per_kind=2, clips_per_group=3, recordings=2, recording_seconds=40.0,
    max_calls_per_recording=4, seed=7,
)


# The default clips (same seed, so the same 270 clips as `make run`) with three 1-minute recordings:
# the pipeline and counting tests train the default model on the default data, as users do.
SMALL_DEFAULT_SPEC = synthetic_data.SyntheticSpec(recordings=3, recording_seconds=60.0, max_calls_per_recording=6)


def tone(freq_hz: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def write_audio(path: str, data: np.ndarray, rate: int) -> str:
    if path.endswith(".mp3"):
        audio.write_mp3(path, data, rate)
    else:
        sf.write(path, data, rate, subtype="PCM_16")
    return path


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


requires_real_data = pytest.mark.skipif(
    not os.path.isdir(REAL_DATA_ROOT), reason=f"real data not found at {REAL_DATA_ROOT}"
)
