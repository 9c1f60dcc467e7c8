"""Benchmark: counting on the real forest recordings: speed, memory and counts, side by side in one run.

    python bench/count_real.py --model runs/real/serving_model \
        --tutorial-model runs/bench_kfold/tutorial/fold0/pipeline/Trainer/model/7/Format-Serving \
        [--recordings "../shared/capuchin/Forest Recordings"] [--copies N] [--other-model DIR]
        [--methods ...] [--rounds N]

Each method runs in its own process (so peak memory is its own), over the same recordings; with
--rounds N the methods run N times in turn (so a load on the machine falls on all of them alike) and
the table gives each one's median wall time and its largest peak RSS; the first method is the reference
of its "vs" column:
  decode-only      our loader (soundfile + streamed soxr), one file after another, one thread
  decode-only:N    the same loader on N threads
  decode-only:mpg123, decode-only:mpg123:N   counting's decoder (audio.fast_decoder: libmpg123 for mp3)
  soundfile:N      issue 18's reference floor: soundfile.read of each file to float32 on N threads, as it
                   is (no mixing to mono, no resampling)
  counting         runners/count_calls.py as users run it (DirectRunner, two more threads than cores)
  counting:soundfile  the same with libmpg123 made unloadable, so every file is read by soundfile
  counting:fullband   the same with every mp3 decoded to 8 kHz (half rate), as if the model read the whole band
  counting:reader  the same with libmpg123 reading each file itself (two read() calls a frame), not fed it
  counting:windows the same with the networks run on every window (--window-by-window)
  counting:spectrograms  the same with each window's spectrogram computed on its own (--spectrograms-by-window)
  counting:float32 the same with the networks in float32 (--float32), where the CPU has bfloat16
  counting:glibc   the same with glibc's malloc as it comes (count_calls.py sets it to keep freed memory)
  counting:other   the same with --other-model (e.g. one network against three, in the same run)
  counting:A+B     options together, e.g. counting:spectrograms+float32 (the counting of before both levers)
  counting:hop3    the same with 3 s windows without overlap (--hop-seconds 3)
  counting:in_memory, counting:processes:N, counting:threads:N   other DirectRunner modes and worker counts
  no-beam:N        counting's own steps (decoder, chunk, warm scorer, rules) on N plain threads without Beam:
                   what the DirectRunner costs on top
  stages           the same steps one recording after another, each stage timed (ms per recording)
  tutorial         the tutorial's method: tfio decode + tfio resample, 3 s non-overlapping windows,
                   the `tutorial` architecture's model, threshold 0.99, consecutive positive windows = one call
With --copies N every recording is listed N times (links under other names), so start-up is amortised.
Prints a Markdown table (audio seconds / wall seconds, ratios, peak RSS) and the counts per recording
beside counts read by eye off spectrograms and the reference models' consensus.
"""

import argparse
import csv
import glob
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REAL_DATA = os.path.join(HERE, "..", "..", "shared", "capuchin")
REAL_FOREST = os.path.join(REAL_DATA, "Forest Recordings")
# Capuchinbird calls in the 16 real recordings, counted by eye on spectrograms (0-4 kHz, 60 s a row):
# a call is the rising growl then a 1.5-4 s harmonic stack at ~0.5-1.6 kHz. Recordings 02, 03, 12, 13,
# 14 and 18 hold none (13/14 and 02/03 share a site whose short 700 Hz notes are another species; 18 has
# a different harmonic bird). These are our reading, not published labels.
BY_EYE = {
    "recording_00.mp3": 5, "recording_02.mp3": 0, "recording_03.mp3": 0, "recording_04.mp3": 4,
    "recording_06.mp3": 5, "recording_07.mp3": 2, "recording_08.mp3": 25, "recording_10.mp3": 5,
    "recording_11.mp3": 3, "recording_12.mp3": 0, "recording_13.mp3": 0, "recording_14.mp3": 0,
    "recording_15.mp3": 2, "recording_16.mp3": 5, "recording_17.mp3": 3, "recording_18.mp3": 0,
}
# varshhh-m's file is a copy of nicknochnack's (the tutorial author's): one vote between them.
_DUPLICATE_REFERENCE = "varshhh-m"


def reference_consensus(folder: str, agree: int = 8):
    """{recording: (count, models agreeing)} where at least `agree` of the distinct reference models agree."""
    votes = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        if os.path.basename(path).startswith(_DUPLICATE_REFERENCE):
            continue
        with open(path) as f:
            for line in f:
                match = re.match(r'\s*(recording_\d+)(?:\.mp3)?\s*,\s*"?(?:tf\.Tensor\()?(\d+)', line)
                if match:
                    votes.setdefault(match.group(1) + ".mp3", []).append(int(match.group(2)))
    consensus = {}
    for name, counts in votes.items():
        best = max(set(counts), key=counts.count)
        if counts.count(best) >= agree:
            consensus[name] = (best, counts.count(best))
    return consensus


_COPY = ".copy"


def _copies(folder: str, copies: int) -> str:
    """A temporary folder listing every recording of `folder` `copies` times: itself, and links named NAME.copyK.mp3."""
    from components import counting

    target = tempfile.mkdtemp(prefix="recordings_x{}_".format(copies))
    for path in counting.list_recordings(folder):
        stem, extension = os.path.splitext(os.path.basename(path))
        for k in range(copies):
            os.symlink(os.path.abspath(path), os.path.join(target, stem + (f"{_COPY}{k}" if k else "") + extension))
    return target


def _decode_only(recordings: str, threads: int, fast: bool) -> dict:
    from components import audio, counting

    def decode(path: str) -> int:
        return len(audio.load_audio(path, decoder=audio.fast_decoder(path) if fast else audio.SOUNDFILE))

    with ThreadPoolExecutor(threads) as pool:
        lengths = list(pool.map(decode, counting.list_recordings(recordings)))
    return {"audio_seconds": sum(lengths) / 16_000}


def _soundfile_only(recordings: str, threads: int) -> dict:
    import soundfile as sf

    from components import counting

    def decode(path: str) -> float:
        samples, rate = sf.read(path, dtype="float32")
        return len(samples) / rate

    with ThreadPoolExecutor(threads) as pool:
        return {"audio_seconds": sum(pool.map(decode, counting.list_recordings(recordings)))}


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


def _without_beam(recordings: str, model: str, threads: int, time_stages: bool = False) -> dict:
    """Counting's steps for each recording of one chunk, as DecodeRecordingFn, RunInference and MergeCallsFn
    run them, on `threads` plain threads. With `time_stages` (one thread), also the time of each stage of the
    scoring (`scorer.recording_track`'s parts, run again beside it)."""
    import functools

    from components import audio, counting, scoring
    from components.counting import rules, scorer, windows
    from components.counting.config import CountingConfig
    from model import features

    model_dir = scoring.resolve_model_dir(model)
    point = scoring.read_operating_point(model_dir)
    config = CountingConfig.of(point["threshold"], band_hz=scoring.band_read(model_dir),
                               gap_seconds=point["gap_seconds"], min_call_seconds=point["min_call_seconds"])
    recording_scorer = scorer.warm_scorer(model_dir, config)
    net = recording_scorer.model
    stages, finished = {}, []

    def timed(stage, function, *args):
        begun = time.perf_counter()
        result = function(*args)
        stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - begun
        return result

    def stage_times(chunk) -> None:
        starts = chunk.starts - chunk.offset
        frames = (starts[-1] - starts[0]) // features.MEL_FRAME_STEP + features.MEL_FRAMES
        timed("of which log-mel", scorer.stretch_log_mel, chunk.samples[starts[0]:], frames, net)
        spectrograms = timed("spectrograms", scorer.window_spectrograms, chunk.samples, starts, net)
        first_frames = (starts - starts[0]) // features.MEL_FRAME_STEP
        stitched = timed("stitching", windows.stitch_spectrograms, first_frames, spectrograms)
        timed("networks", scorer.sequence_scores, stitched, net)

    def count(path: str):
        decoder = audio.fast_decoder(path, config.band_hz)
        samples = timed("decoding", functools.partial(audio.load_audio, decoder=decoder), path)
        chunk = windows.split_chunk(windows.whole_chunk(path, samples, config, decoder), config)[0]
        if time_stages:
            stage_times(chunk)
        calls = rules.calls_in([recording_scorer.score(chunk)], config)[0]
        finished.append((time.time(), len(samples) / features.SAMPLE_RATE))
        return os.path.basename(path), len(calls)

    with ThreadPoolExecutor(threads) as pool:
        counts = dict(pool.map(count, counting.list_recordings(recordings)))
    first = len(finished) // 10
    result = {"audio_seconds": sum(seconds for _, seconds in finished), "counts": counts}
    if time_stages:
        result["stages_ms"] = {stage: round(1000 * total / len(finished), 1) for stage, total in stages.items()}
    else:  # as _counting's
        result["steady_rate"] = (sum(seconds for _, seconds in finished[first + 1 :])
                                 / (finished[-1][0] - finished[first][0]))
    return result


def _counting(recordings: str, model: str, extra: list) -> dict:
    from components.counting import transform
    from runners import count_calls

    # When each recording is done (the workers are threads of this process): the steady state is the
    # audio after the first tenth of the recordings over the time it took, start-up left out.
    finished = []
    log = transform.Progress.log
    transform.Progress.log = lambda progress, result: (finished.append((time.time(), result["seconds"])),
                                                       log(progress, result))
    out = tempfile.mkdtemp()
    summary = count_calls.run(["--model", model, "--recordings", recordings, "--output-dir", out, *extra])
    with open(os.path.join(out, "counts.csv")) as f:
        counts = {row["recording"]: int(row["capuchin_calls"]) for row in csv.DictReader(f)}
    first = len(finished) // 10
    # With a few recordings finishing together on the workers, the gaps between them measure nothing.
    steady = (sum(seconds for _, seconds in finished[first + 1 :]) / (finished[-1][0] - finished[first][0])
              if len(finished) >= 10 else None)
    return {"audio_seconds": summary["audio_hours"] * 3600, "counts": counts, "decoders": summary["decoders"],
            "steady_rate": steady, "networks": summary["networks"]}


def child(method: str, args: argparse.Namespace) -> None:
    """Runs one method in this process and prints its result as JSON on the last line."""
    name, _, option = method.partition(":")
    if name in ("counting", "no-beam", "stages") and "glibc" not in option.split("+"):
        from components import malloc

        malloc.keep_freed_memory()  # as count_calls.py's command line does, before any thread starts
    from runners import quiet  # noqa: F401
    import apache_beam  # noqa: F401  (imports are start-up, not throughput: done before the clock starts)
    import tensorflow  # noqa: F401
    import tensorflow_io  # noqa: F401

    started = time.time()
    if name == "decode-only":
        fast = option.startswith("mpg123")
        threads = option.removeprefix("mpg123").strip(":")
        result = _decode_only(args.recordings, int(threads or 1), fast)
    elif name == "soundfile":
        result = _soundfile_only(args.recordings, int(option or 1))
    elif name == "tutorial":
        result = _tutorial(args.recordings, args.tutorial_model)
    elif name in ("no-beam", "stages"):
        result = _without_beam(args.recordings, args.model, int(option or 1), time_stages=name == "stages")
    elif option.startswith(("processes", "threads")):
        mode = "multi_processing" if option.startswith("processes") else "multi_threading"
        extra = [f"--direct_running_mode={mode}", f"--direct_num_workers={option.split(':')[1]}"]
        result = _counting(args.recordings, args.model, extra)
    else:
        options = option.split("+")  # e.g. counting:other+float32
        by_option = {"": [], "hop3": ["--hop-seconds", "3"], "windows": ["--window-by-window"],
                     "spectrograms": ["--spectrograms-by-window"], "in_memory": ["--direct_running_mode=in_memory"],
                     "float32": ["--float32"], "glibc": [], "soundfile": [], "fullband": [], "reader": [], "other": []}
        extra = [flag for name in options for flag in by_option[name]]
        if "soundfile" in options:  # the workers are threads of this process: they see the change
            from components import mpg123

            mpg123.LIBRARY = "libmpg123-made-unloadable.so"
        if "reader" in options:  # the reading of before: every Mp3File opened with feed=False
            import functools

            from components import mpg123

            mpg123.Mp3File.__init__ = functools.partialmethod(mpg123.Mp3File.__init__, feed=False)
        if "fullband" in options:  # the decoding of before: libmpg123 at half rate, whatever the model reads
            from components import scoring
            from model import features

            scoring.band_read = lambda model_dir: features.FULL_BAND_HZ
        result = _counting(args.recordings, args.other_model if "other" in options else args.model, extra)
    result["wall_seconds"] = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["page_faults"] = usage.ru_minflt  # fresh pages the kernel faulted in (and zeroed), start-up included
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", default=REAL_FOREST)
    parser.add_argument("--model", required=True, help="pushed default model (or serving_model folder)")
    parser.add_argument("--tutorial-model", help="a model of the tutorial architecture, for the tutorial's method")
    parser.add_argument("--other-model", help="a second model, for the method counting:other")
    parser.add_argument("--copies", type=int, default=1, help="list every recording this many times")
    parser.add_argument("--methods", nargs="+",
                        default=["decode-only", "decode-only:2", "counting", "counting:windows", "counting:hop3", "tutorial"])
    parser.add_argument("--rounds", type=int, default=1, help="run the methods this many times in turn")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    methods = [m for m in args.methods if m != "tutorial" or args.tutorial_model]
    recordings = args.recordings if args.copies == 1 else _copies(args.recordings, args.copies)
    rounds = {method: [] for method in methods}
    for round_number in range(args.rounds):
        for method in methods:
            command = [sys.executable, os.path.abspath(__file__), "--child", method, "--recordings", recordings,
                       "--model", args.model]
            for flag, value in (("--tutorial-model", args.tutorial_model), ("--other-model", args.other_model)):
                command += [flag, value] if value else []
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rounds[method].append(json.loads(output.strip().splitlines()[-1]))
            print(f"round {round_number + 1}: {method} {rounds[method][-1]['wall_seconds']:.1f} s", file=sys.stderr)
    results = {}
    for method, runs in rounds.items():
        results[method] = dict(runs[0], wall_seconds=float(np.median([r["wall_seconds"] for r in runs])),
                               peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                               page_faults=float(np.median([r["page_faults"] for r in runs])))
        if runs[0].get("steady_rate"):
            results[method]["steady_rate"] = float(np.median([r["steady_rate"] for r in runs]))
    floor_method = methods[0]
    floor = results[floor_method]
    floor_rate = floor["audio_seconds"] / floor["wall_seconds"]
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores. Recordings: {os.path.abspath(args.recordings)}, "
          f"each listed {args.copies} times ({floor['audio_seconds'] / 3600:.2f} h). Wall time excludes Python imports "
          f"(done before the clock starts in every method) and includes model loading; the median of {args.rounds} "
          f"round(s), methods in turn. Steady state: counting's audio after its first tenth of the recordings, "
          f"over the time it took.\n")
    print(f"| method | wall s | × realtime | steady × realtime | steady vs {floor_method} | peak RSS MB | page faults |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method, r in results.items():
        rate = r["audio_seconds"] / r["wall_seconds"]
        steady = r.get("steady_rate") or rate
        print(f"| {method} | {r['wall_seconds']:.1f} | {rate:,.0f} | {steady:,.0f} | {steady / floor_rate:.2f} | "
              f"{r['peak_rss_mb']:,.0f} | {r['page_faults']:,.0f} |")
    for method, r in results.items():
        if "stages_ms" in r:
            print(f"- {method}: ms per recording {r['stages_ms']}")
        if "decoders" in r:
            print(f"- {method}: files by decoder {r['decoders']}; networks in {r['networks']}")
    counted = {m: r["counts"] for m, r in results.items() if "counts" in r}
    if counted:
        consensus = reference_consensus(os.path.join(REAL_DATA, "reference_counts"))
        names = sorted(name for name in next(iter(counted.values())) if _COPY not in name)
        print("\n| recording | by eye | reference consensus (models agreeing) | " + " | ".join(counted) + " |")
        print("|---|---:|---:|" + "---:|" * len(counted))
        for name in names:
            agreed = f"{consensus[name][0]} ({consensus[name][1]})" if name in consensus else "–"
            print(f"| {name} | {BY_EYE.get(name, '')} | {agreed} | " + " | ".join(str(c.get(name, "")) for c in counted.values()) + " |")
        for method, counts in counted.items():
            errors = [abs(counts.get(n, 0) - BY_EYE[n]) for n in names if n in BY_EYE]
            with_consensus = [n for n in names if n in consensus]
            agree = sum(counts.get(n) == consensus[n][0] for n in with_consensus)
            print(f"- {method}: MAE against the by-eye counts {np.mean(errors):.2f}, "
                  f"{sum(e == 0 for e in errors)}/{len(errors)} exact; agrees with the consensus on "
                  f"{agree}/{len(with_consensus)}")


if __name__ == "__main__":
    main()
