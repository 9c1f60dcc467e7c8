"""Benchmark: site calibration's choice against every threshold the fold's own test sets could have used.

    python bench/threshold_sweep.py --runs runs/bench_siteB_recount [--data-root ../shared/capuchin]
                                    [--tag NAME]  (calibrate again with today's code as calibration_NAME.json)

For each `seeds-*/fold*` of a `bench/accuracy.py` output folder (models already trained), the fold's model
scores its test sets once (the planted forest and hard recordings, and the plain backgrounds), and each set
is measured at every threshold of model/features.py CALIBRATION_THRESHOLDS with the default merging rule,
as calibration measures its own recordings (`calibration.measure`): `<fold>/test_sweep.json`. With --tag,
the fold is also calibrated again exactly as bench/accuracy.py calibrates it (`accuracy.calibrate_fold`),
with the code as it is now.

The table then shows what each calibration (the one accuracy.py wrote, and the tagged one) would count on
the fold's test sets, the same numbers `bench/accuracy.py` reports for its calibrated column (the test sets
are read with soundfile here, with the counting job's decoder there), and what a threshold fixed for every
fold would count (chosen with the folds' test sets: an upper bound, not an operating point), and what the
written calibration's sweep would have chosen with each rule for breaking ties (TIE_RULES).
"""

import argparse
import glob
import json
import os
import statistics
import sys

import accuracy
from components import audio, calibration, counting, scoring, synthetic_data
from pipeline_runs import REAL_DATA_ROOT

SWEEP_JSON = "test_sweep.json"
# Ways to break a tie between calibration thresholds with equally few wrong calls, each from the default
# rule's sweep to its chosen point: the shipped one (calibration.choose_operating_point: the middle) and
# the two ends.
TIE_RULES = {
    "lowest": lambda sweep: min(calibration.tied_points(sweep), key=lambda p: p["threshold"]),
    "middle (shipped)": calibration.choose_operating_point,
    "highest": lambda sweep: max(calibration.tied_points(sweep), key=lambda p: p["threshold"]),
}


def _scored_set(recording_scorer, config, paths):
    return [calibration._scored(os.path.basename(path), audio.load_audio(path), recording_scorer, config)
            for path in paths]


def _default_rule_points():
    return [p for p in calibration.candidate_points(True) if calibration._is_default_rule(p)]


def _model(fold_dir: str):
    with open(os.path.join(fold_dir, "report.json")) as f:
        report = json.load(f)
    return report, os.path.join(report["model_uri"], "Format-Serving")


def sweep_fold(fold_dir: str, data_root: str, folds: int) -> dict:
    """{'forest'|'hard': [calibration.measure at each default-rule point]} of the fold's test sets."""
    fold = int(os.path.basename(fold_dir).replace("fold", ""))
    report, model_dir = _model(fold_dir)
    config = counting.CountingConfig.of(report["threshold"])
    recording_scorer = counting.RecordingScorer(scoring.WindowScorer(model_dir), config)
    planted_root = os.path.join(os.path.dirname(os.path.dirname(fold_dir)), "planted", f"fold{fold}")
    plain = _scored_set(recording_scorer, config, accuracy.fold_backgrounds(data_root, fold, folds))
    result = {}
    for kind in ("forest", "hard"):
        folder = os.path.join(planted_root, kind)
        truth = synthetic_data.read_forest_calls(folder)
        paths = sorted(glob.glob(os.path.join(folder, "*.mp3")))
        planted = [(chunk, truth[os.path.basename(path)])
                   for chunk, path in zip(_scored_set(recording_scorer, config, paths), paths)]
        result[kind] = [calibration.measure(point, planted, plain if kind == "forest" else [], config)
                        for point in _default_rule_points()]
    return result


def calibrate_again(fold_dir: str, args) -> dict:
    report, model_dir = _model(fold_dir)
    fold = int(os.path.basename(fold_dir).replace("fold", ""))
    result = accuracy.calibrate_fold(fold_dir, report, model_dir, fold, args.data_root, args.folds)
    result.pop("truth")
    return result


def _row(label: str, fold_dirs, sweeps, indices) -> str:
    """One table row: every fold's test sets at its own index into the sweep (its threshold)."""
    forest = [sweeps[d]["forest"][indices[d]] for d in fold_dirs]
    hard = [sweeps[d]["hard"][indices[d]] for d in fold_dirs]
    by_training = {}
    for d, point in zip(fold_dirs, forest):
        by_training.setdefault(os.path.basename(os.path.dirname(d)), []).append(point["mae"])
    mean = lambda points, key: statistics.mean(p[key] for p in points)  # noqa: E731
    trainings = " / ".join(f"{statistics.mean(v):.3f}" for v in by_training.values())
    thresholds = " ".join(f"{p['threshold']:.2f}" for p in forest)
    return (f"| {label} | {mean(forest, 'mae'):.3f} ({trainings}) | {mean(forest, 'exact'):.3f} | "
            f"{mean(forest, 'event_recall'):.3f} | {sum(p['false_calls'] for p in forest)} | "
            f"{mean(hard, 'mae'):.3f} | {thresholds} |")


def print_table(fold_dirs, tags) -> None:
    sweeps = {}
    for d in fold_dirs:
        with open(os.path.join(d, SWEEP_JSON)) as f:
            sweeps[d] = json.load(f)
    print("| calibration | forest MAE (each training) | exact | event recall | false calls (plain) | hard MAE | "
          "thresholds |\n|---|---|---|---|---|---|---|")
    for tag in tags:
        name = calibration.CALIBRATION_JSON if tag is None else f"calibration_{tag}.json"
        chosen = {}
        for d in fold_dirs:
            with open(os.path.join(d, name)) as f:
                threshold = json.load(f)["default_rule"]["threshold"]
            chosen[d] = [p["threshold"] for p in sweeps[d]["forest"]].index(threshold)
        print(_row(tag or "as benchmarked", fold_dirs, sweeps, chosen))
    # The tie rule: each fold's own calibration sweep (default merging rule) chosen from again.
    for rule, pick in TIE_RULES.items():
        chosen = {}
        for d in fold_dirs:
            with open(os.path.join(d, calibration.CALIBRATION_JSON)) as f:
                sweep = [p for p in json.load(f)["sweep"] if calibration._is_default_rule(p)]
            chosen[d] = [p["threshold"] for p in sweeps[d]["forest"]].index(pick(sweep)["threshold"])
        print(_row(f"ties to the {rule} threshold", fold_dirs, sweeps, chosen))
    thresholds = range(len(sweeps[fold_dirs[0]]["forest"]))
    best = min(thresholds, key=lambda i: statistics.mean(sweeps[d]["forest"][i]["mae"] for d in fold_dirs))
    print(_row("one threshold for all folds, best on their own tests", fold_dirs, sweeps, {d: best for d in fold_dirs}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="a bench/accuracy.py --output-dir")
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--tag", default=None, help="calibrate again with the current code, as calibration_TAG.json")
    args = parser.parse_args()
    fold_dirs = sorted(glob.glob(os.path.join(args.runs, "seeds-*", "fold*")))
    for fold_dir in fold_dirs:
        out = os.path.join(fold_dir, SWEEP_JSON)
        if not os.path.exists(out):
            sweep = sweep_fold(fold_dir, args.data_root, args.folds)
            with open(out, "w") as f:
                json.dump(sweep, f)
        tagged = os.path.join(fold_dir, f"calibration_{args.tag}.json")
        if args.tag and not os.path.exists(tagged):
            result = calibrate_again(fold_dir, args)
            with open(tagged, "w") as f:
                json.dump(result, f)
        print(fold_dir, "done", flush=True)
    print_table(fold_dirs, [None] + ([args.tag] if args.tag else []))


if __name__ == "__main__":
    sys.exit(main())
