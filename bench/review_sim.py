"""Benchmark: a simulated review of planted recordings with known truth, answered by an oracle.

    python bench/review_sim.py [--data-root ../shared/capuchin] [--model runs/real/serving_model]
                               [--recordings 40] [--per-study 30] [--seeds 50] [--per-bin 10] [--bins 8]
                               [--snr-db -6 6] [--output-dir runs/review_sim]

Recordings: --recordings 3-minute mixes (bench/planted.py) of real Capuchinbird calls planted into the
real call-free recordings of `Forest Backgrounds/`, at --snr-db around the background. Only calls of
the eval split of the default 70/30 split are planted, so the model (trained on the train split) has not
seen them. They are counted once with the real model (components/counting.py, its own operating point),
and scored once window by window (components/review.py: window_scores); both are kept in --output-dir
and reused.

Each seed is one study: --per-study of the recordings, drawn at random, binned and sampled as
runners/review.py does it (every detection, --per-bin windows of each of --bins log bins), labelled by an
oracle that answers from the planted truth as a careful reviewer would:
- a detection is a call when it overlaps a planted call not already taken by a detection that overlaps it more;
- a window is a call when the middle of a planted call that no detection overlaps lies in its cell.
The estimate (components/estimate.py) is compared with the planted calls of those recordings: the share
of studies whose 90 % interval holds the true total, and the median absolute error of the total, for
each prior. Prints a Markdown table and writes OUTPUT/review_sim.json.
"""

import argparse
import glob
import json
import logging
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from runners import quiet  # noqa: E402  (must precede TensorFlow)
from bench import planted  # noqa: E402
from components import counting, dataset, estimate, planting, review, scoring, synthetic_data  # noqa: E402


def plant(data_root: str, folder: str, count: int, snr_db) -> dict:
    """The planted recordings and their truth {name: [(start_s, end_s), ...]}, made once."""
    if os.path.exists(os.path.join(folder, synthetic_data.TRUTH_CSV)):
        return synthetic_data.read_forest_calls(folder)
    calls = sorted(glob.glob(os.path.join(data_root, dataset.LABEL_DIRS[0][0], "*")))
    unseen = [path for path in calls if dataset.split_of(dataset.group_of(path)) == dataset.EVAL_SPLIT]
    forest = sorted(glob.glob(os.path.join(data_root, "Forest Backgrounds", "*.mp3")))
    print(f"Planting {count} recordings: {len(unseen)} eval-split calls into {len(forest)} forest backgrounds ...",
          flush=True)
    spec = planting.PlantingSpec(snr_db=tuple(snr_db))
    planted.build_recordings(folder, unseen, [], forest, count, seed=19, spec=spec)
    return synthetic_data.read_forest_calls(folder)


def scored_recordings(counts: str, model_dir: str, cache: str):
    """Every counted recording scored window by window (components/review.py), kept in `cache`."""
    run = review.read_counting_run(counts)
    saved = dict(np.load(cache, allow_pickle=True)) if os.path.exists(cache) else {}
    scores = {}

    def scores_of(path):
        if path not in saved:
            saved[path] = np.stack(review.window_scores(model_dir, path, run.summary["hop_seconds"]))
        scores[path] = saved[path]
        return saved[path][0], saved[path][1]

    recordings, _ = review.score_recordings(run, model_dir, scores_of=scores_of)
    np.savez(cache, **scores)
    return run, recordings


def oracle(items, truth) -> dict:
    """{item id: label} from the planted truth (see the module's docstring)."""
    labels = {}
    for name in {item["recording"] for item in items}:
        calls = truth[name]
        mine = [item for item in items if item["recording"] == name]
        detections = [item for item in mine if item["kind"] == "detection"]
        taken, matched = set(), set()
        pairs = sorted(((min(d["end_s"], c[1]) - max(d["start_s"], c[0]), d["id"], k)
                        for d in detections for k, c in enumerate(calls)), reverse=True)
        for overlap, detection, call in pairs:
            if overlap > 0 and detection not in matched and call not in taken:
                matched.add(detection)
                taken.add(call)
        for item in detections:
            labels[item["id"]] = "call" if item["id"] in matched else "not_call"
        missed = [(c[0] + c[1]) / 2 for c in calls
                  if not any(d["start_s"] < c[1] and d["end_s"] > c[0] for d in detections)]
        for item in mine:
            if item["kind"] == "window":
                begin, end = item["mark"]
                labels[item["id"]] = "call" if any(begin <= m < end for m in missed) else "not_call"
    return labels


def all_detections(recording) -> list:
    """The recording's detections as review items (what the oracle needs to know about them)."""
    return [{"id": f"{recording.name}#{k}", "kind": "detection", "recording": recording.name, "start_s": s, "end_s": e}
            for k, (s, e, _) in enumerate(recording.detections)]


def study(recordings, truth, args, seed: int) -> dict:
    """One study: a random --per-study of the recordings, reviewed and estimated with every prior."""
    rng = np.random.default_rng(10_000 + seed)
    chosen = [recordings[k] for k in sorted(rng.choice(len(recordings), args.per_study, replace=False))]
    review.assign_bins(chosen, args.bins)
    run = review.CountingRun("sim", {"hop_seconds": chosen[0].starts_s[1] - chosen[0].starts_s[0]}, "sim", {}, {})
    described = review.population(run, chosen, [], args.bins)
    described["items"] = review.draw_items(chosen, args.per_bin, args.bins, seed, "sim")
    labels = oracle(described["items"], truth)
    true_total = sum(len(truth[r.name]) for r in chosen)
    # What an estimate from this design can reach: the true detections plus the calls missed whose middle
    # lies in a cell clear of detections (everything else is lost to merged or shared detections).
    found = oracle([d for r in chosen for d in all_detections(r)], truth)
    result = {"true_total": true_total, "detected_calls": sum(label == "call" for label in found.values()),
              "detections": len(found), "labels": len(labels)}
    for prior in estimate.PRIORS:
        total = estimate.estimate(described, labels, prior=prior, seed=seed)["total"]
        result[prior] = dict(total, covered=total["low"] <= true_total <= total["high"],
                             error=abs(total["calls"] - true_total) / true_total)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.path.join("..", "shared", "capuchin"))
    parser.add_argument("--model", default=os.path.join("runs", "real", "serving_model"))
    parser.add_argument("--recordings", type=int, default=40)
    parser.add_argument("--per-study", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--per-bin", type=int, default=review.DEFAULT_PER_BIN)
    parser.add_argument("--bins", type=int, default=review.DEFAULT_BINS)
    parser.add_argument("--snr-db", type=float, nargs=2, default=planted.BENCH_PLANTING.snr_db)
    parser.add_argument("--output-dir", default=os.path.join("runs", "review_sim"))
    args = parser.parse_args()
    quiet.setup_logging(logging.WARNING)
    started = time.time()
    folder = os.path.join(args.output_dir, "recordings")
    truth = plant(args.data_root, folder, args.recordings, args.snr_db)
    model_dir = scoring.resolve_model_dir(args.model)
    counts = os.path.join(args.output_dir, "counts")
    summary = counting.run_counting(model_dir, folder, counts)
    print(f"Counted {summary['calls']} calls in {summary['counted']} recordings ({sum(map(len, truth.values()))} "
          f"planted) in {summary['wall_seconds']:.0f} s", flush=True)
    _, recordings = scored_recordings(counts, model_dir, os.path.join(args.output_dir, "window_scores.npz"))
    prepared = time.time() - started
    studies = [study(recordings, truth, args, seed) for seed in range(args.seeds)]
    wall = time.time() - started
    report = {"args": vars(args), "model": model_dir, "operating_point": summary["operating_point"],
              "prepare_seconds": round(prepared, 1), "wall_seconds": round(wall, 1), "studies": studies}
    with open(os.path.join(args.output_dir, "review_sim.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(markdown(report))


def markdown(report: dict) -> str:
    studies, args = report["studies"], report["args"]
    truth = [s["true_total"] for s in studies]
    detected = np.sum([s["detected_calls"] for s in studies]) / np.sum(truth)
    precision = np.sum([s["detected_calls"] for s in studies]) / np.sum([s["detections"] for s in studies])
    lines = [f"{len(studies)} studies of {args['per_study']} of {args['recordings']} planted 3-minute recordings "
             f"(calls at {args['snr_db'][0]:g}..{args['snr_db'][1]:g} dB; {np.median(truth):.0f} calls a study, "
             "median); "
             f"the counting run found {detected:.0%} of the calls at a precision of {precision:.0%}; "
             f"{np.median([s['labels'] for s in studies]):.0f} labels a study ({args['per_bin']} a bin x "
             f"{args['bins']} bins + the detections).", "",
             "| prior | 90 % interval holds the truth | median abs error of the total | median interval width |",
             "|---|---|---|---|"]
    for prior in estimate.PRIORS:
        rows = [s[prior] for s in studies]
        width = np.median([(r["high"] - r["low"]) / s["true_total"] for r, s in zip(rows, studies)])
        lines.append(f"| {prior} | {np.mean([r['covered'] for r in rows]):.0%} | "
                     f"{np.median([r['error'] for r in rows]):.1%} | {width:.0%} of the total |")
    lines.append(f"\nPrepared (planting, counting, scoring) in {report['prepare_seconds']:.0f} s; "
                 f"all in {report['wall_seconds']:.0f} s.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
