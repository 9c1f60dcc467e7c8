"""Benchmark: counting throughput on real forest recordings, side by side in one run.

    python bench/count_real.py --model runs/bench_train/default/serving_model \
        --seed-model runs/bench_train/seed/serving_model [--recordings "../shared/capuchin/Forest Recordings"]

Each method runs in its own process (so peak memory is its own), over the same recordings:
  decode-only  the floor: our loader (soundfile + streamed soxr) and nothing else
  counting     runners/count_calls.py: our loader, 1.5 s hop, the default model, Beam DirectRunner
  tutorial     the tutorial's method: tfio decode + tfio resample, 3 s non-overlapping windows,
               the `seed` model (|STFT| 320/32 in its graph), threshold 0.99, consecutive windows = one call
Prints a Markdown table (audio seconds / wall seconds, ratios, peak RSS) and the counts per recording.
"""

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REAL_FOREST = os.path.join(HERE, "..", "..", "shared", "capuchin", "Forest Recordings")


def _decode_only(recordings: str) -> dict:
    from components import audio, counting

    seconds = 0.0
    for path in counting.list_recordings(recordings):
        seconds += len(audio.load_audio(path)) / 16_000
    return {"audio_seconds": seconds}


def _tutorial(recordings: str, model: str) -> dict:
    import itertools

    import tensorflow as tf
    import tensorflow_io as tfio

    from components import counting, scoring
    from model import features

    scorer = scoring.WindowScorer(model)
    counts, seconds = {}, 0.0
    for path in counting.list_recordings(recordings):
        # The tutorial's load_mp3_16k_mono: tfio decode, average channels, tfio resample.
        tensor = tfio.audio.AudioIOTensor(path)
        wav = tf.math.reduce_sum(tensor.to_tensor(), axis=1) / 2
        wav = tfio.audio.resample(wav, rate_in=tf.cast(tensor.rate, tf.int64), rate_out=16_000).numpy()
        seconds += len(wav) / 16_000
        # timeseries_dataset_from_array(sequence_length=48000, sequence_stride=48000): full windows only.
        windows = wav[: len(wav) // features.CLIP_SAMPLES * features.CLIP_SAMPLES].reshape(-1, features.CLIP_SAMPLES)
        scores = np.concatenate([scorer(windows[i : i + 16]) for i in range(0, len(windows), 16)])
        positives = [1 if s > features.TUTORIAL_THRESHOLD else 0 for s in scores]
        counts[os.path.basename(path)] = sum(key for key, _ in itertools.groupby(positives))
    return {"audio_seconds": seconds, "counts": counts}


def _counting(recordings: str, model: str, extra: list) -> dict:
    from runners import count_calls

    out = tempfile.mkdtemp()
    summary = count_calls.run(["--model", model, "--recordings", recordings, "--output-dir", out, *extra])
    with open(os.path.join(out, "counts.csv")) as f:
        counts = {row["recording"]: int(row["capuchin_calls"]) for row in csv.DictReader(f)}
    return {"audio_seconds": summary["audio_hours"] * 3600, "counts": counts}


def child(method: str, args: argparse.Namespace) -> None:
    """Runs one method in this process and prints its result as JSON on the last line."""
    from runners import quiet  # noqa: F401
    import apache_beam  # noqa: F401  (imports are start-up, not throughput: done before the clock starts)
    import tensorflow  # noqa: F401
    import tensorflow_io  # noqa: F401

    started = time.time()
    if method == "decode-only":
        result = _decode_only(args.recordings)
    elif method == "tutorial":
        result = _tutorial(args.recordings, args.seed_model)
    else:
        # counting: the job's default (one thread per core); counting:in_memory (one thread);
        # counting:processes:N (the multi-processing DirectRunner with N workers).
        mode = method.split(":")[1] if ":" in method else None
        if mode == "processes":
            extra = ["--direct_running_mode=multi_processing", f"--direct_num_workers={method.split(':')[2]}"]
        else:
            extra = {None: [], "in_memory": ["--direct_running_mode=in_memory"]}[mode]
        result = _counting(args.recordings, args.model, extra)
    result["wall_seconds"] = time.time() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recordings", default=REAL_FOREST)
    parser.add_argument("--model", required=True, help="pushed default model (or serving_model folder)")
    parser.add_argument("--seed-model", help="pushed seed model, for the tutorial's method")
    parser.add_argument("--methods", nargs="+", default=["decode-only", "counting", "tutorial"],
                        help="decode-only, counting, counting:in_memory, counting:processes:N, tutorial")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    results = {}
    for method in args.methods:
        if method == "tutorial" and not args.seed_model:
            continue
        command = [sys.executable, os.path.abspath(__file__), "--child", method, "--recordings", args.recordings,
                   "--model", args.model] + (["--seed-model", args.seed_model] if args.seed_model else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[method] = json.loads(output.strip().splitlines()[-1])
    floor = results["decode-only"]
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores. Recordings: {os.path.abspath(args.recordings)} "
          f"({floor['audio_seconds'] / 3600:.2f} h). Wall time excludes Python imports (done before the clock starts in every method) and includes model loading.\n")
    print("| method | wall s | × realtime | vs decode-only floor | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for method, r in results.items():
        rate = r["audio_seconds"] / r["wall_seconds"]
        print(f"| {method} | {r['wall_seconds']:.1f} | {rate:,.0f} | "
              f"{rate / (floor['audio_seconds'] / floor['wall_seconds']):.2f} | {r['peak_rss_mb']:,.0f} |")
    counted = {m: r["counts"] for m, r in results.items() if "counts" in r}
    if counted:
        names = sorted(next(iter(counted.values())))
        print("\n| recording | " + " | ".join(counted) + " |")
        print("|---|" + "---:|" * len(counted))
        for name in names:
            print(f"| {name} | " + " | ".join(str(c.get(name, "")) for c in counted.values()) + " |")


if __name__ == "__main__":
    main()
