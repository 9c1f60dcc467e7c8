"""Benchmark: a 100-hour batch (2,000 three-minute recordings) and one 12-hour recording, on the DirectRunner.

    python bench/batch_100h.py --model runs/real/serving_model [--files 2000] [--hours 12]
        [--recordings "../shared/capuchin/Forest Recordings"] [--work-dir DIR] [--skip-batch | --skip-long]

Every count runs runners/count_calls.py as users do, in a subprocess, while the resident memory of its process
tree is sampled every second (bench/process_tree.py). Results, logs and plots go to --work-dir (default: a new
temporary folder); a Markdown summary is printed.

Batch: --files links to the real recordings under distinct names (0000_recording_00.mp3, ...).
  1. The originals are counted once: every link must give its original's count and detections.
  2. An uninterrupted run over all links.
  3. A run into another folder, killed with SIGKILL once half the links have their part file, then run again
     into the same folder. Its tables must equal the uninterrupted run's (no row duplicated or missing) and the
     originals'. Work: recordings counted across both runs / files (none counted twice), and the two runs' wall
     and CPU time against the uninterrupted run's (these include a second start-up, ~10 s).
  Throughput is the steady state: audio seconds of the parts finished between 10 % and 90 % of the run over
  the time between. RSS is plotted over time (batch_rss.png) with the recordings done; the progress lines'
  ETA at a quarter of the run is set against the actual end.

Long: --hours of audio in one FLAC (16 kHz mono, 24 bit): the real recordings decoded, each cut to 180 s
(a whole number of hops, so every part starts on the long file's window grid), one after another, cycling.
The parts are also written and counted alone. The long recording's calls are matched to its parts' calls
(shifted by the parts' offsets): the count against the sum of the parts' counts, with every call that differs
and its distance to the nearest join. RSS over time: long_rss.png.
"""

import argparse
import csv
import glob
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench.process_tree import RssSampler, tree_rss_bytes  # noqa: E402

REAL_FOREST = os.path.join(ROOT, "..", "shared", "capuchin", "Forest Recordings")
PART_SECONDS = 180  # a whole number of 1.5 s hops and 40 ms frames
SAMPLE_RATE = 16_000
# How the long recording is counted: as users do (DirectRunner threads), and in one thread (see --long-modes).
LONG_MODES = {"default": [], "in_memory": ["--direct_running_mode=in_memory"]}
PROGRESS = re.compile(r"^(\d\d):(\d\d):(\d\d) INFO \[(\d+)/(\d+)\] .* ETA (\d+):(\d\d):(\d\d)$")


def count(recordings: str, output_dir: str, model: str, log_path: str, beam_args=(), rss_limit_mb: float = 0,
          kill_at_parts: int = 0, fresh: bool = True) -> dict:
    """runners/count_calls.py in a subprocess, into an empty `output_dir` unless not `fresh`, RSS sampled every
    second; SIGKILLed once `kill_at_parts` parts exist, or its tree's RSS passes `rss_limit_mb` (0: never). Returns wall and CPU seconds, the RSS and
    parts-done samples, and when it was killed and why."""
    command = [sys.executable, "-m", "runners.count_calls", "--model", model, "--recordings", recordings,
               "--output-dir", output_dir, *beam_args]
    if fresh and os.path.exists(output_dir):
        shutil.rmtree(output_dir)  # from an earlier run of this benchmark
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cpu_before = _children_cpu_seconds()
    started = time.time()
    progress, killed, over_limit = [], None, None
    with open(log_path, "a") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        with RssSampler(process.pid) as memory:
            while process.poll() is None:
                done = _parts_done(output_dir)
                if not progress or time.time() - started - progress[-1][0] >= 1:
                    progress.append((time.time() - started, done))
                if kill_at_parts and done >= kill_at_parts and killed is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    killed = {"parts_at_kill": done, "seconds": time.time() - started}
                if rss_limit_mb and over_limit is None and tree_rss_bytes(process.pid) > rss_limit_mb * 2**20:
                    os.killpg(process.pid, signal.SIGKILL)  # before it takes the machine's memory
                    over_limit = round(time.time() - started, 1)
                time.sleep(0.1)
    if process.returncode != 0 and killed is None and over_limit is None:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}); see {log_path}")
    return {"wall_seconds": time.time() - started, "cpu_seconds": _children_cpu_seconds() - cpu_before,
            "rss": memory.samples, "peak_rss_mb": memory.peak_mb, "progress": progress, "killed": killed,
            "over_limit": over_limit,
            "finished_parts": _parts_done(output_dir)}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # of every child reaped so far, killed ones too
    return usage.ru_utime + usage.ru_stime


def _parts_done(output_dir: str) -> int:
    return len(glob.glob(os.path.join(output_dir, "parts", "*.json")))


def read_tables(output_dir: str):
    """(counts.csv rows, {recording: [(start, end, score), ...]} from detections.csv)."""
    with open(os.path.join(output_dir, "counts.csv"), newline="") as f:
        counts = [(row["recording"], int(row["capuchin_calls"])) for row in csv.DictReader(f)]
    detections = {}
    with open(os.path.join(output_dir, "detections.csv"), newline="") as f:
        for row in csv.DictReader(f):
            detections.setdefault(row["recording"], []).append(
                (float(row["start_s"]), float(row["end_s"]), float(row["score"])))
    return counts, detections


def steady_throughput(output_dir: str) -> float:
    """Audio seconds per wall second of the parts finished between 10 % and 90 % of the run (by part times)."""
    parts = []
    for path in glob.glob(os.path.join(output_dir, "parts", "*.json")):
        with open(path) as f:
            parts.append((os.path.getmtime(path), json.load(f)["seconds"]))
    parts.sort()
    first, last = parts[len(parts) // 10], parts[len(parts) * 9 // 10]
    between = [seconds for finished, seconds in parts if first[0] < finished <= last[0]]
    return sum(between) / max(last[0] - first[0], 1e-9)


def eta_check(log_path: str, total: int):
    """(ETA printed at a quarter of the run, seconds it actually took from there), from the progress lines."""
    lines = []
    with open(log_path) as f:
        for line in f:
            match = PROGRESS.match(line.strip())
            if match and int(match.group(5)) == total:
                h, m, s, done, _, eh, em, es = map(int, match.groups())
                lines.append((h * 3600 + m * 60 + s, done, eh * 3600 + em * 60 + es))
    at_quarter = next((line for line in lines if line[1] >= total / 4), None)
    if at_quarter is None:
        return None
    end = max(when for when, _, _ in lines)
    return at_quarter[2], (end - at_quarter[0]) % 86_400


def rss_growth_mb(run: dict) -> float:
    """How much the RSS grew in the steady state, in MB: its median over the last quarter minus its median over the
    first quarter. The steady state starts when the run's first recording is done (the model loaded and warm);
    a run of one recording has none, and its whole run is taken."""
    first_done = run["progress"][0][1] if run["progress"] else 0
    start = next((t for t, done in run["progress"] if done > first_done), None)
    values = [rss for t, rss in run["rss"] if rss and (start is None or t >= start)]
    quarter = len(values) // 4
    if quarter == 0:
        return 0.0
    first, last = sorted(values[:quarter]), sorted(values[-quarter:])
    return (last[len(last) // 2] - first[len(first) // 2]) / 2**20


def plot_runs(runs: dict, path: str, title: str) -> None:
    """RSS (MB) of each run's process tree over time, and its recordings done (dotted, right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4))
    done_axis = axis.twinx()
    offset = 0.0
    for (name, run), colour in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        shift = offset if name.startswith("re-run") else 0.0  # the re-run follows the killed run
        axis.plot([shift + t for t, _ in run["rss"]], [rss / 2**20 for _, rss in run["rss"]], color=colour,
                  label=f"{name}: RSS (peak {run['peak_rss_mb']:,.0f} MB)")
        done_axis.plot([shift + t for t, _ in run["progress"]], [d for _, d in run["progress"]], color=colour, ls=":")
        if run.get("killed"):
            offset = run["wall_seconds"]
            axis.axvline(run["killed"]["seconds"], color=colour, ls="--", lw=1)
    axis.set(xlabel="seconds since the run started", ylabel="RSS of the process tree (MB)", title=title)
    axis.set_ylim(bottom=0)
    done_axis.set_ylabel("recordings done (dotted)")
    done_axis.set_ylim(bottom=0)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def batch(args, work: str, originals) -> dict:
    links = os.path.join(work, "links")
    os.makedirs(links, exist_ok=True)
    source_of = {}
    for i in range(args.files):
        original = originals[i % len(originals)]
        name = f"{i:04d}_{os.path.basename(original)}"
        source_of[name] = os.path.basename(original)
        if not os.path.lexists(os.path.join(links, name)):
            os.symlink(original, os.path.join(links, name))
    log = os.path.join(work, "batch.log")
    reference = count(os.path.dirname(originals[0]), os.path.join(work, "originals"), args.model, log)
    ref_counts, ref_detections = read_tables(os.path.join(work, "originals"))
    ref_counts = dict(ref_counts)

    whole_dir, resumed_dir = os.path.join(work, "uninterrupted"), os.path.join(work, "resumed")
    whole = count(links, whole_dir, args.model, os.path.join(work, "uninterrupted.log"))
    killed = count(links, resumed_dir, args.model, os.path.join(work, "killed.log"), kill_at_parts=args.files // 2)
    if killed["killed"] is None:
        sys.exit("the run finished before half its parts were written: use more --files")
    finished_before = killed["finished_parts"]
    rerun = count(links, resumed_dir, args.model, os.path.join(work, "rerun.log"), fresh=False)
    with open(os.path.join(resumed_dir, "summary.json")) as f:
        new_in_rerun = json.load(f)["new_this_run"]

    counts, detections = read_tables(resumed_dir)
    names = [name for name, _ in counts]
    same_as_uninterrupted = all(
        open(os.path.join(resumed_dir, table)).read() == open(os.path.join(whole_dir, table)).read()
        for table in ("counts.csv", "detections.csv"))
    result = {
        "files": args.files, "audio_hours": args.files * reference_audio_seconds(work) / len(originals) / 3600,
        "reference_wall_seconds": reference["wall_seconds"],
        "uninterrupted": _summary(whole, whole_dir), "killed": _summary(killed, resumed_dir),
        "rerun": _summary(rerun, resumed_dir),
        "killed_at_parts": killed["killed"]["parts_at_kill"], "finished_before_kill": finished_before,
        "counted_in_rerun": new_in_rerun,
        "work_recordings": (finished_before + new_in_rerun) / args.files,
        "work_wall": (killed["wall_seconds"] + rerun["wall_seconds"]) / whole["wall_seconds"],
        "work_cpu": (killed["cpu_seconds"] + rerun["cpu_seconds"]) / whole["cpu_seconds"],
        "rows": len(counts), "duplicate_rows": len(names) - len(set(names)),
        "missing_rows": len(set(source_of) - set(names)), "unexpected_rows": len(set(names) - set(source_of)),
        "detection_rows": sum(len(v) for v in detections.values()),
        "counts_equal_originals": all(n == ref_counts[source_of[name]] for name, n in counts),
        "detections_equal_originals": all(detections.get(name, []) == ref_detections.get(source_of[name], [])
                                          for name in source_of),
        "tables_equal_uninterrupted": same_as_uninterrupted,
        "steady_audio_s_per_wall_s": steady_throughput(whole_dir),
        "eta_at_quarter": eta_check(os.path.join(work, "uninterrupted.log"), args.files),
    }
    plot_runs({"uninterrupted": whole, "killed": killed, "re-run": rerun}, os.path.join(work, "batch_rss.png"),
              f"{args.files} recordings ({result['audio_hours']:.1f} h), DirectRunner")
    return result


def reference_audio_seconds(work: str) -> float:
    with open(os.path.join(work, "originals", "summary.json")) as f:
        return json.load(f)["audio_hours"] * 3600


def _summary(run: dict, output_dir: str) -> dict:
    return {"wall_seconds": round(run["wall_seconds"], 1), "cpu_seconds": round(run["cpu_seconds"], 1),
            "peak_rss_mb": round(run["peak_rss_mb"]), "rss_growth_mb": round(rss_growth_mb(run))}


def long_recording(args, work: str, originals) -> dict:
    import soundfile as sf

    from components import audio

    parts_dir = os.path.join(work, "long_parts")
    os.makedirs(parts_dir, exist_ok=True)
    part_samples = PART_SECONDS * SAMPLE_RATE
    pieces = math.ceil(args.hours * 3600 / PART_SECONDS)
    names = [f"part_{i:02d}.flac" for i in range(min(pieces, len(originals)))]
    long_path = os.path.join(work, f"long_{args.hours:g}h.flac")
    if not os.path.exists(long_path):
        decoded = []
        for original, name in zip(originals, names):
            samples = audio.load_audio(original)[:part_samples]
            sf.write(os.path.join(parts_dir, name), samples, SAMPLE_RATE, subtype="PCM_24")
            decoded.append(samples)
        with sf.SoundFile(long_path + ".tmp", "w", SAMPLE_RATE, 1, "PCM_24", format="FLAC") as out:
            for i in range(pieces):
                out.write(decoded[i % len(decoded)])
        os.replace(long_path + ".tmp", long_path)
        del decoded
    log = os.path.join(work, "long.log")
    parts_run = count(parts_dir, os.path.join(work, "long_parts_counted"), args.model, log)
    part_counts, part_detections = read_tables(os.path.join(work, "long_parts_counted"))
    part_counts = dict(part_counts)
    expected = [(i * PART_SECONDS + start, i * PART_SECONDS + end)
                for i in range(pieces) for start, end, _ in part_detections.get(names[i % len(names)], [])]
    result = {"hours": pieces * PART_SECONDS / 3600, "parts": pieces, "file_mb": os.path.getsize(long_path) / 2**20,
              "sum_of_parts": sum(part_counts[names[i % len(names)]] for i in range(pieces)),
              "parts_peak_rss_mb": round(parts_run["peak_rss_mb"]), "modes": {}}
    runs = {}
    for mode in args.long_modes:
        output_dir = os.path.join(work, f"long_counted_{mode}")
        runs[mode] = run = count(long_path, output_dir, args.model, log, LONG_MODES[mode], args.rss_limit_gb * 1024)
        measured = {"wall_seconds": round(run["wall_seconds"], 1), "peak_rss_mb": round(run["peak_rss_mb"]),
                    "peak_at_seconds": max(run["rss"], key=lambda sample: sample[1])[0],
                    # Peak RSS above what counting a 3-minute part needs, per hour of the recording.
                    "rss_mb_per_hour": round((run["peak_rss_mb"] - parts_run["peak_rss_mb"]) / result["hours"]),
                    "over_limit": run["over_limit"]}
        if run["over_limit"] is None:
            with open(os.path.join(output_dir, "summary.json")) as f:
                measured["audio_s_per_wall_s"] = json.load(f)["realtime_factor"]
            long_counts, long_detections = read_tables(output_dir)
            found = [(start, end) for start, end, _ in long_detections.get(os.path.basename(long_path), [])]
            measured["count"] = dict(long_counts)[os.path.basename(long_path)]
            measured["only_in_long"] = [(s, e, _to_join(s, e)) for s, e in _unmatched(found, expected)]
            measured["only_in_parts"] = [(s, e, _to_join(s, e)) for s, e in _unmatched(expected, found)]
        result["modes"][mode] = measured
    plot_runs({f"{mode}: one {args.hours:g} h recording": run for mode, run in runs.items()},
              os.path.join(work, "long_rss.png"), f"one {args.hours:g}-hour recording, DirectRunner")
    return result


def _unmatched(calls, others):
    """The calls that overlap none of the others."""
    return [(start, end) for start, end in calls if not any(s < end and e > start for s, e in others)]


def _to_join(start: float, end: float) -> float:
    """Seconds from a call to the nearest join between two parts."""
    return round(min(abs(start - round(start / PART_SECONDS) * PART_SECONDS),
                     abs(end - round(end / PART_SECONDS) * PART_SECONDS)), 2)


def _half_of_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="pushed model (or serving_model folder)")
    parser.add_argument("--recordings", default=REAL_FOREST, help="the real recordings (a folder of mp3s)")
    parser.add_argument("--files", type=int, default=2000, help="links in the batch (3 min each: 2,000 = 100 h)")
    parser.add_argument("--hours", type=float, default=12, help="length of the one long recording")
    parser.add_argument("--long-modes", nargs="+", choices=sorted(LONG_MODES), default=["default", "in_memory"],
                        help="how to count the long recording: the users' default (DirectRunner threads), one thread")
    parser.add_argument("--rss-limit-gb", type=float, default=_half_of_memory_gb(),
                        help="a count whose process tree passes this is killed and reported (default: half the RAM)")
    parser.add_argument("--work-dir", help="links, outputs, logs and plots (default: a new temporary folder)")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-batch", action="store_true")
    skip.add_argument("--skip-long", action="store_true")
    args = parser.parse_args()
    args.model = os.path.abspath(args.model)
    work = os.path.abspath(args.work_dir or tempfile.mkdtemp(prefix="batch_100h_"))
    os.makedirs(work, exist_ok=True)
    originals = sorted(glob.glob(os.path.join(os.path.abspath(args.recordings), "*.mp3")))
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_before": os.getloadavg()[0]}
    if not args.skip_batch:
        results["batch"] = batch(args, work, originals)
    if not args.skip_long:
        results["long"] = long_recording(args, work, originals)
    results["load_after"] = os.getloadavg()[0]
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print_summary(results, work)


def print_summary(results: dict, work: str) -> None:
    print(f"\nMachine: {results['machine']}; load average {results['load_before']:.1f} before, "
          f"{results['load_after']:.1f} after. Everything in {work} (results.json, *.log, *.png).\n")
    if "batch" in results:
        b = results["batch"]
        eta = b["eta_at_quarter"]
        print(f"Batch: {b['files']} recordings, {b['audio_hours']:.1f} h of audio, DirectRunner.\n")
        print("| run | wall s | CPU s | peak RSS MB | RSS growth in the steady state, MB |")
        print("|---|---:|---:|---:|---:|")
        for name in ("uninterrupted", "killed", "rerun"):
            r = b[name]
            print(f"| {name} | {r['wall_seconds']} | {r['cpu_seconds']} | {r['peak_rss_mb']:,} | {r['rss_growth_mb']} |")
        print(f"\n- steady state: {b['steady_audio_s_per_wall_s']:,.0f} audio s per wall s "
              f"({b['files'] * PART_SECONDS / b['steady_audio_s_per_wall_s'] / 60:.1f} min for the batch at that rate)")
        if eta:
            print(f"- ETA printed at a quarter of the run: {eta[0]} s; it took {eta[1]} s from there")
        print(f"- killed at {b['killed_at_parts']} parts ({b['finished_before_kill']} finished), the re-run counted "
              f"{b['counted_in_rerun']}: recordings counted / files = {b['work_recordings']:.3f}; wall (killed + "
              f"re-run) / uninterrupted = {b['work_wall']:.3f}; CPU = {b['work_cpu']:.3f}")
        print(f"- resumed tables: {b['rows']} rows in counts.csv, {b['detection_rows']} in detections.csv; "
              f"{b['duplicate_rows']} duplicated, {b['missing_rows']} missing, {b['unexpected_rows']} unexpected; "
              f"equal to the uninterrupted run's: {b['tables_equal_uninterrupted']}; every link's count and "
              f"detections equal its original's: {b['counts_equal_originals'] and b['detections_equal_originals']}")
    if "long" in results:
        g = results["long"]
        print(f"\nOne {g['hours']:g}-hour recording ({g['parts']} parts of {PART_SECONDS} s, FLAC {g['file_mb']:,.0f} MB); "
              f"its parts counted alone: {g['sum_of_parts']} calls, peak RSS {g['parts_peak_rss_mb']:,} MB.\n")
        print("| counted | calls | × realtime | wall s | peak RSS MB (at s) | MB per hour above the parts' | "
              "calls only in the long recording (s from a join) | only in the parts |")
        print("|---|---:|---:|---:|---:|---:|---|---|")
        for mode, m in g["modes"].items():
            if m["over_limit"] is not None:
                print(f"| {mode} | killed at {m['over_limit']} s: RSS above the limit | | {m['wall_seconds']} | "
                      f"{m['peak_rss_mb']:,} ({m['peak_at_seconds']:.0f}) | {m['rss_mb_per_hour']:,} | | |")
                continue
            joins = {key: ", ".join(f"{s:.1f}–{e:.1f} ({d})" for s, e, d in m[key]) or "none"
                     for key in ("only_in_long", "only_in_parts")}
            print(f"| {mode} | {m['count']} | {m['audio_s_per_wall_s']:,.0f} | {m['wall_seconds']} | "
                  f"{m['peak_rss_mb']:,} ({m['peak_at_seconds']:.0f}) | {m['rss_mb_per_hour']:,} | "
                  f"{joins['only_in_long']} | {joins['only_in_parts']} |")


if __name__ == "__main__":
    main()
