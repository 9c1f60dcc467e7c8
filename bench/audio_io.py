"""Benchmark: decoders (soundfile, libmpg123 at the file's rate and below it, tensorflow-io) and resamplers
(soxr, scipy, tfio) on a 3-minute mp3.

    python bench/audio_io.py [--recording PATH] [--repeats 5]

Default recording: the first real forest mp3 in ../shared/capuchin, else a synthetic one. Prints a
Markdown table for BENCHMARKS.md: median wall time per step, realtime factor, and agreement
between the methods (so the fast one is shown to be correct, not just fast).
"""

import argparse
import glob
import os
import platform
import statistics
import tempfile
import time

from runners import quiet  # noqa: F401  (must precede TensorFlow)

import numpy as np
import scipy.signal
import soundfile as sf
import soxr
import tensorflow as tf
import tensorflow_io as tfio

from components import audio, mpg123, synthetic_data
from model import features

REAL_FOREST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "capuchin", "Forest Recordings")


def decode_soundfile(path):
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def decode_tfio(path):
    tensor = tfio.audio.AudioIOTensor(path)
    samples = tensor.to_tensor().numpy()  # [frames, channels] float32
    return samples.mean(axis=1), int(tensor.rate.numpy())


def decode_mpg123(path, down_sample, feed=True):
    """libmpg123 itself, mixed to mono, at the file's rate over 2**down_sample: (samples, rate, its decoder core).
    `feed`: the file given to it a MiB at a time (as counting does), else read by libmpg123 frame by frame."""
    with mpg123.Mp3File(path, down_sample, feed=feed) as mp3:
        return np.concatenate(list(mp3.blocks())), mp3.rate, mp3.synthesis


def resample_soxr(x, rate):
    return soxr.resample(x, rate, features.SAMPLE_RATE, quality="HQ").astype(np.float32)


def resample_scipy(x, rate):
    g = np.gcd(rate, features.SAMPLE_RATE)
    return scipy.signal.resample_poly(x, features.SAMPLE_RATE // g, rate // g).astype(np.float32)


def resample_tfio(x, rate):
    return tfio.audio.resample(tf.constant(x), rate_in=rate, rate_out=features.SAMPLE_RATE).numpy()


def timed(fn, *args, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def agreement(reference, other, band_hz=6_000):
    """(lag in samples, SNR in dB below `band_hz` after removing the lag) of `other` against `reference`.

    Filters differ near Nyquist and may delay the signal; below 6 kHz (all our features use) and once
    aligned, a correct resampler matches the reference closely.
    """
    n = min(len(reference), len(other))
    reference, other = reference[:n], other[:n]
    correlation = scipy.signal.correlate(other, reference, mode="full", method="fft")
    lag = int(np.argmax(correlation) - (n - 1))
    other = np.roll(other, -lag)

    def low(y):
        spectrum = np.fft.rfft(y[1000:-1000])
        spectrum[np.fft.rfftfreq(len(y) - 2000, 1 / features.SAMPLE_RATE) > band_hz] = 0
        return np.fft.irfft(spectrum, len(y) - 2000)

    ref_low, other_low = low(reference), low(other)
    return lag, 10 * np.log10(np.sum(ref_low**2) / (np.sum((ref_low - other_low) ** 2) + 1e-20))


def tone_error_hz(resampler):
    """Where a 1 kHz tone at 48 kHz lands after resampling to 16 kHz (should be 1000)."""
    t = np.arange(48_000 * 2) / 48_000
    out = resampler(np.sin(2 * np.pi * 1_000 * t).astype(np.float32), 48_000)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    return abs(np.argmax(spectrum) * features.SAMPLE_RATE / len(out) - 1_000)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recording")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    path = args.recording or next(iter(sorted(glob.glob(os.path.join(REAL_FOREST, "*.mp3")))), None)
    if path is None:
        path = os.path.join(tempfile.mkdtemp(), "synthetic.mp3")
        recording, _ = synthetic_data.forest_recording(np.random.default_rng(0), 180.0, 5)
        audio.write_mp3(path, recording, synthetic_data.FOREST_RATE)
    info = sf.info(path)
    seconds = info.duration
    decode_tfio(path), resample_tfio(np.zeros(48_000, np.float32), 48_000)  # warm up TF kernels

    rows = []
    t_sf, (x_sf, rate) = timed(decode_soundfile, path, repeats=args.repeats)
    t_tfio, (x_tfio, _) = timed(decode_tfio, path, repeats=args.repeats)
    rows.append(("decode", "soundfile (libsndfile/mpg123)", t_sf, "reference"))
    rows.append(("decode", "tensorflow-io AudioIOTensor", t_tfio,
                 f"max abs diff vs soundfile {np.max(np.abs(x_sf[:len(x_tfio)] - x_tfio[:len(x_sf)])):.1e}, "
                 f"{len(x_tfio) - len(x_sf):+d} samples"))
    if mpg123.available():  # what counting decodes with: below the file's rate, libmpg123 has no SIMD synthesis
        for down_sample in (0, 1, 2):
            t, (_, mp3_rate, synthesis) = timed(decode_mpg123, path, down_sample, repeats=args.repeats)
            rows.append(("decode", f"libmpg123 mono at {mp3_rate} Hz", t, f"its {synthesis} synthesis"))
        t, (_, mp3_rate, _) = timed(decode_mpg123, path, 2, False, repeats=args.repeats)
        rows.append(("decode", f"libmpg123 mono at {mp3_rate} Hz, reading the file itself", t,
                     "two read() calls per frame, where counting feeds it a MiB at a time"))
    resamplers = [("soxr HQ", resample_soxr), ("scipy resample_poly", resample_scipy),
                  ("tensorflow-io resample", resample_tfio)]
    outputs = {}
    for name, fn in resamplers:
        t, outputs[name] = timed(fn, x_sf, rate, repeats=args.repeats if "tensorflow" not in name else 2)
        rows.append(("resample", f"{name} {rate}→{features.SAMPLE_RATE}", t, None))
    reference = outputs["scipy resample_poly"]
    first_resampler = len(rows) - len(resamplers)
    for i, (name, fn) in enumerate(resamplers):
        step, label, t, _ = rows[first_resampler + i]
        lag, snr = agreement(reference, outputs[name])
        rows[first_resampler + i] = (step, label, t,
                       f"vs scipy: delay {lag} samples, SNR below 6 kHz {snr:.0f} dB; "
                       f"1 kHz tone off by {tone_error_hz(fn):.1f} Hz, {len(outputs[name])} samples")

    print(f"Recording: `{os.path.basename(path)}`, {seconds:.1f} s, {info.samplerate} Hz, {info.channels} ch, "
          f"{info.format}. Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
          f"Median of {args.repeats} runs (tfio resample: 2).\n")
    print("| step | method | wall s | × realtime | agreement |")
    print("|---|---|---:|---:|---|")
    for step, label, t, note in rows:
        print(f"| {step} | {label} | {t:.3f} | {seconds / t:,.0f} | {note} |")
    resample_time = dict(zip((name for name, _ in resamplers), (r[2] for r in rows[first_resampler:])))
    chosen = t_sf + resample_time["soxr HQ"]
    tutorial = t_tfio + resample_time["tensorflow-io resample"]
    print(f"\nDecode + resample: soundfile + soxr {chosen:.3f} s ({seconds / chosen:,.0f}× realtime) vs "
          f"tensorflow-io decode + resample {tutorial:.3f} s ({seconds / tutorial:,.0f}×): "
          f"{tutorial / chosen:.1f}× faster.")


if __name__ == "__main__":
    main()
