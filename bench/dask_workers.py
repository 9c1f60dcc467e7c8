"""Benchmark: counting on 1 and 2 Dask worker processes against the DirectRunner, in one run.

    python bench/dask_workers.py --model runs/real/serving_model \
        [--recordings "../shared/capuchin/Forest Recordings"] [--methods direct dask:1 dask:2] [--repeats 1]

Each method runs runners/count_calls.py in its own process, over the same recordings, into a fresh folder:
  direct      the DirectRunner as users run it (one thread per core)
  dask:N      --runner=DaskRunner on a LocalCluster of N single-threaded worker processes, started by the runner
  dask:NxT    N worker processes of T threads each
Wall time starts after the Python imports and includes, for Dask, starting and closing the cluster; "job s"
is the counting job alone (summary.json's wall time: listing, Beam, tables; on Dask each worker imports
TensorFlow and loads the model in it); "steady" is the audio seconds of the recordings finished between the
10th and the 90th percentile of their part files' times over the time between (bench/batch_100h.py). Peak RSS
is the method's process and all its worker processes, sampled every 0.5 s.
Every method's counts.csv and detections.csv must equal the first method's. Prints a Markdown table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

REAL_FOREST = os.path.join(HERE, "..", "..", "shared", "capuchin", "Forest Recordings")
TABLES = ("counts.csv", "detections.csv")


def _beam_args(method: str) -> list:
    if method == "direct":
        return []
    workers, _, threads = method.partition(":")[2].partition("x")
    return ["--runner=DaskRunner", f"--dask_workers={workers}", f"--dask_threads_per_worker={threads or 1}"]


def child(method: str, recordings: str, model: str, output_dir: str) -> None:
    """Runs one method in this process and prints its result as JSON on the last line."""
    from runners import quiet  # noqa: F401
    import apache_beam  # noqa: F401  (imports are start-up, not throughput: done before the clock starts)
    import distributed  # noqa: F401
    import tensorflow  # noqa: F401

    from bench.batch_100h import steady_throughput
    from bench.process_tree import RssSampler
    from runners import count_calls

    quiet.setup_logging()
    started = time.time()
    with RssSampler(os.getpid(), interval=0.5) as memory:
        summary = count_calls.run(["--model", model, "--recordings", recordings, "--output-dir", output_dir,
                                   *_beam_args(method)])
    print(json.dumps({"wall_seconds": time.time() - started, "job_seconds": summary["wall_seconds"],
                      "audio_seconds": summary["audio_hours"] * 3600, "calls": summary["calls"],
                      "steady": steady_throughput(output_dir), "peak_rss_mb": memory.peak_mb}))


def _tables(output_dir: str) -> dict:
    return {name: open(os.path.join(output_dir, name)).read() for name in TABLES}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", default=REAL_FOREST)
    parser.add_argument("--model", required=True, help="pushed model (or serving_model folder)")
    parser.add_argument("--methods", nargs="+", default=["direct", "dask:1", "dask:2"])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each method, interleaved; the median counts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    recordings, model = os.path.abspath(args.recordings), os.path.abspath(args.model)  # as Dask workers need
    if args.child:
        child(args.child, recordings, model, args.output_dir)
        return
    runs = {method: [] for method in args.methods}
    reference = None
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for method in args.methods:
            output_dir = tempfile.mkdtemp(prefix="dask_workers_")
            command = [sys.executable, os.path.abspath(__file__), "--child", method, "--recordings", recordings,
                       "--model", model, "--output-dir", output_dir]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[method].append(json.loads(output.strip().splitlines()[-1]))
            tables = _tables(output_dir)
            reference = reference or tables
            runs[method][-1]["same_tables"] = tables == reference
            print(f"{method}: {runs[method][-1]}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    def median(method, key):
        values = sorted(run[key] for run in runs[method])
        return values[len(values) // 2]

    audio = runs[args.methods[0]][0]["audio_seconds"]
    first = args.methods[0]
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, {_cpu_model()}; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Recordings: {recordings} ({audio / 3600:.2f} h). "
          f"{args.repeats} run(s) of each method, median shown.\n")
    print(f"| method | wall s | × realtime (audio s / wall s) | job s | × realtime (job) | × realtime (steady) "
          f"| wall vs {first} | peak RSS MB (all processes) | same tables |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for method in args.methods:
        wall, job = median(method, "wall_seconds"), median(method, "job_seconds")
        print(f"| {method} | {wall:.1f} | {audio / wall:,.0f} | {job:.1f} | {audio / job:,.0f} | "
              f"{median(method, 'steady'):,.0f} | {median(first, 'wall_seconds') / wall:.2f} | "
              f"{median(method, 'peak_rss_mb'):,.0f} | {'yes' if all(r['same_tables'] for r in runs[method]) else 'NO'} |")
    if {"dask:1", "dask:2"} <= set(runs):
        print(f"\n2 Dask workers against 1: {median('dask:1', 'wall_seconds') / median('dask:2', 'wall_seconds'):.2f}× "
              f"the speed end to end, {median('dask:1', 'job_seconds') / median('dask:2', 'job_seconds'):.2f}× "
              f"for the job alone, {median('dask:2', 'steady') / median('dask:1', 'steady'):.2f}× in the steady state.")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
