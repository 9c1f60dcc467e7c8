"""Benchmark: counting rules compared on the same k-fold models, each calibrated as the pipeline calibrates.

    python bench/rule_variants.py --runs runs/bench_c [--data-root ../shared/capuchin]
                                  [--rules default hysteresis:1 ...]  (default: RULES, all of them)

For every `seeds-*/fold*` of a `bench/accuracy.py` output folder (models trained, test sets built), the
fold's model scores, once (cached as `<fold>/rule_tracks.pkl`):
- its calibration: the eval calls planted into the other folds' backgrounds, and those backgrounds, exactly
  as `accuracy.calibrate_fold` builds them;
- its test sets: the planted forest and hard recordings and the fold's plain backgrounds, decoded by the
  counting job's decoder and chunked as it chunks them.
Each rule then turns the frame tracks into calls. Its threshold is chosen on the calibration tracks as site
calibration chooses (`calibration.choose_operating_point`: the fewest wrong calls, ties to the middle), and
the fold's test sets are counted at it. With the `default` rule this is what bench/accuracy.py reports for
its calibrated column (checked against each fold's `row.json` and printed). Every rule's numbers are from
the same models, thresholds chosen the same way: paired.

Also the planted calls the default rule misses on the forest test sets: loudness, the highest frame score
inside the call, and whether a detection covering it went to a neighbouring call (merged).
"""

import argparse
import csv
import glob
import json
import math
import os
import pickle
import statistics
import sys
from typing import Callable, Dict, List

import numpy as np

import accuracy
from components import audio, calibration, counting, planting, scoring, synthetic_data
from components.counting import rules, windows
from model import features
from pipeline_runs import REAL_DATA_ROOT

TRACKS_PKL = "rule_tracks.pkl"


def _log_odds(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _moved(threshold: float, logits: float) -> float:
    """The threshold moved `logits` in log-odds (up where positive)."""
    return float(1 / (1 + np.exp(-logits - _log_odds(threshold))))


def default_rule(times, scores, threshold):
    return rules.frame_calls(times, scores, threshold)


def hysteresis(logits: float) -> Callable:
    """A call is found by its peak at or above the threshold and measured (its length, its joins) at a
    low threshold `logits` below it in log-odds."""
    def rule(times, scores, threshold):
        return rules.frame_calls(times, scores, threshold, low_threshold=_moved(threshold, -logits))
    return rule


def split_at_dips(depth: float) -> Callable:
    """The default rule, then each call split where its frame score falls `depth` log-odds below both
    of the peaks either side of it for at least a tenth of a second (two calls back to back that
    the gap rule joined)."""
    step = features.MODEL_FRAME_STEP_SECONDS

    def rule(times, scores, threshold):
        out = []
        for start, end, peak in rules.frame_calls(times, scores, threshold):
            inside = (times >= start - 1e-6) & (times + step <= end + 1e-6)
            t, s = times[inside], _log_odds(scores[inside])
            left = np.maximum.accumulate(s)
            right = np.maximum.accumulate(s[::-1])[::-1]
            dip = (s <= np.minimum(left, right) - depth)
            pieces = rules.frame_calls(t, (~dip).astype(np.float32), 0.5, gap_seconds=0.1, min_seconds=0)
            pieces = [p for p in pieces if p[1] - p[0] >= features.MIN_CALL_SECONDS] or [(start, end, 1.0)]
            for p_start, p_end, _ in pieces:
                part = (t >= p_start - 1e-6) & (t + step <= p_end + 1e-6)
                out.append((p_start, p_end, round(float(scores[inside][part].max()), 4)))
        return out
    return rule


def short_if_loud(logits: float, seconds: float = 0.5) -> Callable:
    """The default rule, and also calls as short as `seconds` where they peak `logits` log-odds above the
    threshold: a quiet call clears the threshold only at its loudest, a confident one needs less length."""
    def rule(times, scores, threshold):
        loud = _moved(threshold, logits)
        return [c for c in rules.frame_calls(times, scores, threshold, min_seconds=seconds)
                if c[1] - c[0] >= features.MIN_CALL_SECONDS or c[2] >= loud]
    return rule


def min_seconds(seconds: float) -> Callable:
    """The default rule with a shorter shortest call."""
    def rule(times, scores, threshold):
        return rules.frame_calls(times, scores, threshold, min_seconds=seconds)
    return rule


# A rule, or a family of rules that calibration chooses among (with the threshold; ties to the first).
RULES: Dict[str, object] = {
    "default": default_rule,
    "shortest-0.5s": min_seconds(0.5),
    "shortest-0.5s-if-loud:2": short_if_loud(2.0),
    "shortest-0.5s-if-loud:4": short_if_loud(4.0),
    "hysteresis:1": hysteresis(1.0),
    "hysteresis:2": hysteresis(2.0),
    "hysteresis:3": hysteresis(3.0),
    "hysteresis:4": hysteresis(4.0),
    "hysteresis:calibrated": [default_rule] + [hysteresis(d) for d in (1.0, 2.0, 3.0, 4.0)],
    "split-dips:2": split_at_dips(2.0),
    "split-dips:4": split_at_dips(4.0),
}


def _track(chunks, config):
    _, times, scores = counting.calls_in(chunks, config)
    return np.asarray(times, np.float64), np.asarray(scores, np.float32)


def score_fold(fold_dir: str, data_root: str, folds: int) -> dict:
    """The fold's calibration and test tracks: {set: [(name, times, scores, truth, seconds)]}, and each
    planted set's loudness by (recording, start) as '<set>_snr'."""
    fold = int(os.path.basename(fold_dir).replace("fold", ""))
    with open(os.path.join(fold_dir, "report.json")) as f:
        report = json.load(f)
    model_dir = os.path.join(report["model_uri"], "Format-Serving")
    scorer = scoring.WindowScorer(model_dir)
    # Calibration: as accuracy.calibrate_fold → calibration.calibrate builds and scores it.
    config = counting.CountingConfig.of(report["threshold"])
    recording_scorer = counting.RecordingScorer(scorer, config)
    others = [p for k in range(folds) if k != fold for p in accuracy.fold_backgrounds(data_root, k, folds)]
    backgrounds, failures = calibration.load_backgrounds(others)
    assert not failures, failures
    built = calibration.planted_recordings(backgrounds, accuracy.eval_calls(fold_dir))
    seconds = lambda samples: len(samples) / features.SAMPLE_RATE  # noqa: E731
    tracks = {"calibration": [(name, *_track([calibration._scored(name, samples, recording_scorer, config)], config),
                               [t[:2] for t in truth], seconds(samples)) for name, samples, truth in built],
              "calibration_plain": [(b.name, *_track([calibration._scored(b.name, b.samples, recording_scorer, config)],
                                                     config), [], seconds(b.samples)) for b in backgrounds]}
    # Test sets: as the counting job decodes and chunks them.
    config = counting.CountingConfig.of(report["threshold"], band_hz=scoring.band_read(model_dir))
    recording_scorer = counting.RecordingScorer(scorer, config)

    def counted(path: str, truth):
        decoder = audio.fast_decoder(path, config.band_hz)
        samples = audio.load_audio(path, decoder=decoder)
        chunks = windows.split_chunk(windows.whole_chunk(path, samples, config, decoder), config)
        return (os.path.basename(path), *_track([recording_scorer.score(c) for c in chunks], config), truth,
                seconds(samples))

    planted_root = os.path.join(os.path.dirname(os.path.dirname(fold_dir)), "planted", f"fold{fold}")
    for kind in ("forest", "hard"):
        folder = os.path.join(planted_root, kind)
        truth = synthetic_data.read_forest_truth(folder)
        calls = synthetic_data.read_forest_calls(folder)
        with open(os.path.join(folder, synthetic_data.CALLS_CSV), newline="") as f:
            snr = {(row["recording"], float(row["start_s"])): float(row["snr_db"]) for row in csv.DictReader(f)}
        tracks[kind] = [counted(path, calls[os.path.basename(path)])
                        for path in sorted(glob.glob(os.path.join(folder, "*.mp3")))]
        tracks[kind + "_snr"] = snr
        assert len(tracks[kind]) == len(truth)
    tracks["plain"] = [counted(path, []) for path in accuracy.fold_backgrounds(data_root, fold, folds)]
    return tracks


def measure(rule: Callable, threshold: float, planted, plain) -> dict:
    """As calibration.measure, for any rule."""

    def found(times, scores):
        return rule(times, scores, threshold)

    hours = sum(seconds for *_, seconds in plain) / 3600
    return {"threshold": threshold, "gap_seconds": features.CALL_GAP_SECONDS,
            "min_call_seconds": features.MIN_CALL_SECONDS, "hours": hours,
            **calibration.count_errors([(found(times, scores), truth) for _, times, scores, truth, _ in planted],
                                       [found(times, scores) for _, times, scores, _, _ in plain], hours)}


# Calibration's thresholds (model/features.py), and the same grid (a quarter log-odds apart) run on down to
# 0.0009, for models whose calibration still gains at the grid's lowest threshold (0.011).
GRIDS = {"": features.CALIBRATION_THRESHOLDS,
         " @wide": tuple(round(1 / (1 + math.exp(-x / 4)), 4) for x in range(-28, 19))}


def evaluate(rule, tracks: dict, grid=features.CALIBRATION_THRESHOLDS) -> dict:
    """The rule (or the member of a family of rules) and threshold calibrated on the fold's calibration
    tracks, as calibration.choose_operating_point chooses (the fewest wrong calls; ties to the first rule
    of a family where it is among them, then to the middle of its tied thresholds), then counted on the
    fold's test sets."""
    family = rule if isinstance(rule, list) else [rule]
    sweeps = [[measure(member, t, tracks["calibration"], tracks["calibration_plain"])
               for t in grid] for member in family]
    fewest = min(p["wrong_calls"] for sweep in sweeps for p in sweep)
    index = next(i for i, sweep in enumerate(sweeps) if any(p["wrong_calls"] == fewest for p in sweep))
    threshold = calibration.choose_operating_point(sweeps[index])["threshold"]
    chosen = family[index]
    return {"threshold": threshold, "member": index,
            "forest": measure(chosen, threshold, tracks["forest"], tracks["plain"]),
            "hard": measure(chosen, threshold, tracks["hard"], [])}


def missed_calls(tracks: dict, threshold: float) -> List[dict]:
    """The forest test set's planted calls the default rule misses at `threshold`, each with why: it
    scored below the threshold throughout, it cleared it too briefly for a call, or a detection overlaps
    it but went to a neighbouring call (the two merged into one)."""
    step = features.MODEL_FRAME_STEP_SECONDS
    out = []
    for name, times, scores, truth, _ in tracks["forest"]:
        found = default_rule(times, scores, threshold)
        matched = {j for _, j in planting.matched_pairs([d[:2] for d in found], truth)}
        for j, (start, end) in enumerate(truth):
            if j in matched:
                continue
            inside = (times >= start) & (times + step <= end)
            peak = float(scores[inside].max()) if inside.any() else 0.0
            covered = any(min(d[1], end) > max(d[0], start) for d in found)
            why = "merged with a neighbour" if covered else ("too short" if peak >= threshold else "scored low")
            out.append({"recording": name, "start": start, "snr_db": tracks["forest_snr"].get((name, start)),
                        "peak": peak, "threshold": threshold, "why": why})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="a bench/accuracy.py --output-dir")
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    args = parser.parse_args()
    # The folds bench/accuracy.py has finished (row.json written), so this can run beside it.
    fold_dirs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(args.runs, "seeds-*", "fold*", "row.json")))
    results, misses = {}, []
    for fold_dir in fold_dirs:
        cached = os.path.join(fold_dir, TRACKS_PKL)
        if not os.path.exists(cached):
            with open(cached + ".tmp", "wb") as f:
                pickle.dump(score_fold(fold_dir, args.data_root, args.folds), f)
            os.replace(cached + ".tmp", cached)
        with open(cached, "rb") as f:
            tracks = pickle.load(f)
        results[fold_dir] = {name + grid: evaluate(RULES[name], tracks, GRIDS[grid])
                             for grid in args.grids for name in args.rules}
        default = results[fold_dir].get("default") or evaluate(default_rule, tracks)
        misses += missed_calls(tracks, default["threshold"])
        with open(os.path.join(fold_dir, "row.json")) as f:  # the check: the default rule as accuracy.py counted it
            benchmarked = json.load(f)["threshold"]["forest"]
        print(f"{fold_dir}: default rule MAE {default['forest']['mae']:.3f} recall "
              f"{default['forest']['event_recall']:.3f} at {default['threshold']}; accuracy.py: MAE "
              f"{benchmarked['mae']:.3f} recall {benchmarked['event_recall']:.3f}", flush=True)
    print_table(results, [name + grid for grid in args.grids for name in args.rules])
    print_misses(misses)


def print_table(results: dict, names) -> None:
    by_training: Dict[str, Dict[str, list]] = {}
    for fold_dir, result in results.items():
        training = os.path.basename(os.path.dirname(fold_dir))
        for name in names:
            by_training.setdefault(name, {}).setdefault(training, []).append(result[name])

    def summary(rows):
        forest = [r["forest"] for r in rows]
        return {"mae": statistics.mean(f["mae"] for f in forest), "exact": statistics.mean(f["exact"] for f in forest),
                "recall": statistics.mean(f["event_recall"] for f in forest),
                "false_per_hour": sum(f["false_calls"] for f in forest) / sum(f["hours"] for f in forest),
                "hard": statistics.mean(r["hard"]["mae"] for r in rows)}

    print("\n| rule | forest MAE (each training) | exact | event recall | false calls per hour | hard MAE | "
          "thresholds |\n|---|---|---|---|---|---|---|")
    for name in names:
        trainings = [summary(rows) for rows in by_training[name].values()]
        cell = lambda key, form="{:.3f}": (form.format(statistics.mean(t[key] for t in trainings)) + " (" +  # noqa: E731
                                           " / ".join(form.format(t[key]) for t in trainings) + ")")
        thresholds = " ".join(f"{r['threshold']:.2f}" + (f"[{r['member']}]" if r["member"] else "")
                              for rows in by_training[name].values() for r in rows)
        print(f"| {name} | {cell('mae')} | {cell('exact')} | {cell('recall')} | {cell('false_per_hour', '{:.2f}')} | "
              f"{cell('hard')} | {thresholds} |")


def print_misses(misses: List[dict]) -> None:
    print(f"\nPlanted forest calls the default rule misses: {len(misses)}")
    for why in ("scored low", "too short", "merged with a neighbour"):
        group = [m for m in misses if m["why"] == why]
        if group:
            print(f"- {why}: {len(group)}; loudness (dB) {sorted(round(m['snr_db'] or 0, 1) for m in group)}; "
                  f"peak frame score {sorted(round(m['peak'], 2) for m in group)}")


if __name__ == "__main__":
    sys.exit(main())
