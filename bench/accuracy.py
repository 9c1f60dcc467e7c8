"""Benchmark: honest grouped K-fold counts on real forest background, before and after site calibration.

    python bench/accuracy.py [--data-root ../shared/capuchin] [--folds 5]
                             [--trainings "42 7 1234" "5 11 2026"]  (each: the ensemble's seeds; one training each)
                             [--forest-recordings 40] [--hard-recordings 20] [--output-dir runs/bench_site]
                             [--reuse-models]  (count again with the models already trained)
                             [--reuse-counts]  (with --reuse-models: only print the tables again)
                             [--only-folds K ...]
                             [--reviewed LABELS.csv]  (train on a review's labelled snippets as well)
                             [--student]  (one network distilled from the ensemble)
                             [--teacher]  (with --student --reuse-models: count the ensemble it learnt from)
                             [--augmentations [NAME ...]]  (recording-chain variations; default: configs.AUGMENTATIONS, none)

Every training t and test fold k (of the source groups, XC<id> / sound name) gets a model that has seen
nothing of fold k: `runners/local_runner.py --fold k+1 N --held-out-fold k` trains on the other three
folds, with fold k+1 as its eval split (the Evaluator, the eval-clip threshold), and fold k left out.
The 15 real call-free recordings of `Forest Backgrounds/` are dealt to the folds in turn (sorted by name,
background i to fold i mod N), so each fold has its own; the model trains on the windows of the three
training folds' backgrounds, as a production run trains on its train split's (--no-site-training: on
the clips only, the baseline).

Fold k's test sets (bench/planted.py, 48 kHz stereo 128 kbit/s mp3, calls at -6..+6 dB around the
background, half of them 2-6 s after the previous one):
- forest: --forest-recordings recordings of fold k's calls planted into fold k's real backgrounds;
- hard: --hard-recordings recordings of fold k's calls planted into fold k's non-call clips joined (sound
  effects: the "hard background" column);
- plain: fold k's backgrounds as they are (false calls per hour).

Three operating points are counted, all chosen without anything of fold k:
- before: the eval-clip threshold (ThresholdSelector on fold k+1's clips), the default merging rule;
- threshold: site calibration (components/calibration.py, as CountCalibrator runs it) on fold k+1's eval
  calls planted into the other folds' backgrounds (12 of the 15), choosing the threshold only;
- rule: the same calibration choosing the threshold and the merging rule (gap, shortest call).
model/features.py CALIBRATE_MERGING_RULE picks which of the last two the pipeline uses.
Clip metrics on fold k's clips (scored on their first 3 s, as ingested): average precision, and F1 at each
operating point's threshold.
"""

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import time

import numpy as np

import planted
from components import audio, calibration, count_calibrator, counting, dataset, planting, scoring, synthetic_data
from model import constants
from model.model import TEACHER_EXPORT
from pipeline import configs
from pipeline_runs import REAL_DATA_ROOT, run_local_pipeline

# The count metrics the tables show (planting.count_scores names them), and the false-call rates.
COUNT_METRICS = (("mae", "count MAE (calls per recording)"), ("exact", "recordings counted exactly"),
                 ("event_precision", "event precision"), ("event_recall", "event recall"))
POINTS = ("before", "threshold", "rule")
CLIP_SCORES_JSON = "clip_scores.json"
POINT_NAMES = {"before": "eval-clip threshold", "threshold": "calibrated threshold, default rule",
               "rule": "calibrated threshold and merging rule"}


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean precision at the rank of each positive (non-interpolated)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order] == 1
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean()) if hits.any() else 0.0


def f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    called = scores >= threshold
    tp = int(np.sum(called & (labels == 1)))
    return 2 * tp / max(1, 2 * tp + int(np.sum(called & (labels == 0))) + int(np.sum(~called & (labels == 1))))


def fold_clips(data_root: str, fold: int, folds: int):
    return [c for c in dataset.list_labelled_clips(data_root) if dataset.fold_of(c.group, folds) == fold]


def score_fold_clips(scorer, data_root: str, fold: int, folds: int):
    """(clips, labels, scores) of fold `fold`'s clips, each scored on its first 3 s as ingested."""
    clips = fold_clips(data_root, fold, folds)
    windows = np.stack([audio.load_clip(c.path) for c in clips])
    scores = np.concatenate([scorer(windows[i : i + counting.SCORE_BATCH])
                             for i in range(0, len(windows), counting.SCORE_BATCH)])
    return clips, np.array([c.label for c in clips]), scores


def backgrounds_dir(data_root: str) -> str:
    return os.path.join(data_root, dataset.BACKGROUNDS_DIR)


def unlabelled_recordings(args) -> str:
    """The student's unlabelled recordings: --unlabelled, else the data root's 'Forest Recordings/'."""
    if args.unlabelled is not None:
        return args.unlabelled
    forest = os.path.join(args.data_root, dataset.FOREST_DIR)
    return forest if os.path.isdir(forest) else ""


def fold_backgrounds(data_root: str, fold: int, folds: int):
    """Fold `fold`'s share of the call-free background recordings, dealt as ingestion deals them for
    training (dataset.site_background_clips: the i-th by name to fold i mod N)."""
    clips = dataset.site_background_clips(counting.list_recordings(backgrounds_dir(data_root)))
    return [clip.path for clip in clips if dataset.clip_fold(clip, folds) == fold]


def test_sets(args, fold: int) -> dict:
    """Fold `fold`'s planted recordings (built once, then reused) and its plain backgrounds."""
    clips = fold_clips(args.data_root, fold, args.folds)
    calls = [c.path for c in clips if c.label == 1]
    backgrounds = fold_backgrounds(args.data_root, fold, args.folds)
    sets = {}
    for kind, count, forest, negatives in (
        ("forest", args.forest_recordings, backgrounds, []),
        ("hard", args.hard_recordings, [], [c.path for c in clips if c.label == 0]),
    ):
        folder = os.path.join(args.output_dir, "planted", f"fold{fold}", kind)
        if not os.path.exists(os.path.join(folder, synthetic_data.CALLS_CSV)):
            planted.build_recordings(folder, calls, negatives, forest, count, seed=100 + fold)
        sets[kind] = folder
    sets["plain"] = backgrounds
    return sets


def train(args, seeds, fold: int):
    """Fold `fold`'s model of one training (trained now, or found when --reuse-models)."""
    fold_dir = os.path.join(args.output_dir, "seeds-" + "-".join(map(str, seeds)), f"fold{fold}")
    if not (args.reuse_models and os.path.exists(os.path.join(fold_dir, "report.json"))):
        _, wall = run_local_pipeline(args.data_root, fold_dir, constants.ARCHITECTURE_DEFAULT,
                                     ((fold + 1) % args.folds, args.folds), quiet=True, ensemble_seeds=seeds,
                                     held_out_fold=fold,
                                     train_backgrounds=backgrounds_dir(args.data_root) if args.site_training else "",
                                     reviewed=args.reviewed, student=args.student,
                                     unlabelled=unlabelled_recordings(args) if args.student else "",
                                     augmentations=args.augmentations)
        with open(os.path.join(fold_dir, "wall.json"), "w") as f:
            json.dump({"wall": wall}, f)
    with open(os.path.join(fold_dir, "report.json")) as f:
        report = json.load(f)
    with open(os.path.join(fold_dir, "wall.json")) as f:
        report["wall"] = json.load(f)["wall"]
    return fold_dir, report


def eval_calls(fold_dir: str):
    """The run's eval calls (fold k+1's, from its own examples), as CountCalibrator plants them."""
    examples = glob.glob(os.path.join(fold_dir, "pipeline", "ImportExampleGen", "examples", "*"))[0]
    return count_calibrator.eval_calls(examples)


def calibrate_fold(fold_dir: str, report: dict, model_dir: str, fold: int, data_root: str, folds: int,
                   calibrate_on: str = "others") -> dict:
    """calibration.calibrate for this fold's model: the eval split's calls (fold k+1's, from the run's own
    examples) planted into every background but fold k's, as a production run calibrates on all the site's
    (calibrate_on 'untrained': only the eval fold's, the others being training data when site-trained)."""
    others = [path for k in range(folds) if k != fold for path in fold_backgrounds(data_root, k, folds)]
    if calibrate_on == "untrained":
        others = fold_backgrounds(data_root, (fold + 1) % folds, folds)
    usable, failures = calibration.load_backgrounds(others)
    assert not failures, failures
    return calibration.calibrate(scoring.WindowScorer(model_dir), eval_calls(fold_dir), usable, report["threshold"])


def site_calibration(args, fold_dir: str, report: dict, model_dir: str, fold: int) -> dict:
    """What CountCalibrator chooses for this model (`calibrate_fold`), with its plot and calibration.json."""
    result = calibrate_fold(fold_dir, report, model_dir, fold, args.data_root, args.folds, args.calibrate_on)
    calibration.write_plot(result, report["threshold"], os.path.join(fold_dir, _tagged(args, calibration.CALIBRATION_PNG)))
    with open(os.path.join(fold_dir, _tagged(args, calibration.CALIBRATION_JSON)), "w") as f:
        json.dump(result, f)
    return result


def count(model_dir: str, recordings, out_dir: str, point: dict) -> dict:
    """Counts a folder of planted recordings (or a list of plain ones) at `point`; the scores against truth."""
    shutil.rmtree(out_dir, ignore_errors=True)
    if isinstance(recordings, list):  # plain backgrounds: every call is a false one
        os.makedirs(out_dir)
        source = os.path.join(out_dir, "recordings")
        os.makedirs(source)
        for path in recordings:
            os.symlink(os.path.abspath(path), os.path.join(source, os.path.basename(path)))
        summary = counting.run_counting(model_dir, source, os.path.join(out_dir, "counts"), operating_point=point)
        return {"false_calls": summary["calls"], "hours": summary["audio_hours"]}
    summary = counting.run_counting(model_dir, os.path.join(recordings, "*.mp3"), out_dir, operating_point=point)
    results = counting.load_parts(out_dir)
    counts = {os.path.basename(r): v["calls"] or 0 for r, v in results.items()}
    detections = {os.path.basename(r): [(s, e) for s, e, _ in v["detections"]] for r, v in results.items()}
    scores = planting.count_scores(counts, detections, synthetic_data.read_forest_calls(recordings))
    found = sum(len(d) for d in detections.values())
    unmatched = found - round(scores["event_precision"] * found)
    return {**scores, "unmatched": unmatched, "hours": summary["audio_hours"]}


def _tagged(args, name: str) -> str:
    """A result file's name for this calibration variant or the teacher (the default keeps its plain name)."""
    stem, extension = os.path.splitext(name)
    tags = ([] if args.calibrate_on == "others" else [args.calibrate_on]) + (["teacher"] if args.teacher else [])
    return "_".join([stem, *tags]) + extension


def self_calibrated(args, fold_dir: str, report: dict, model_dir: str, sets: dict) -> dict:
    """count_calls.py --calibrate on each test set (a user with no call-free recordings): the operating
    point chosen on the lowest-scoring stretches of the set's own recordings, with the run's eval calls
    planted into them; then the set counted at it. {'forest'|'plain': {'point', and count's scores}}."""
    calls = eval_calls(fold_dir)
    results = {}
    for kind in ("forest", "plain"):
        recordings = sets[kind] if isinstance(sets[kind], list) else sorted(glob.glob(os.path.join(sets[kind], "*.mp3")))
        chosen = calibration.calibrate_on_recordings(model_dir, recordings, None, report["threshold"], calls=calls)
        point = {k: chosen["default_rule"][k] for k in ("threshold", "gap_seconds", "min_call_seconds")}
        results[kind] = {"point": point, **count(model_dir, sets[kind], os.path.join(fold_dir, f"counts_self_{kind}"),
                                                 point)}
    print(json.dumps({"fold": os.path.basename(fold_dir), "self": results}), flush=True)
    return results


def run_fold(args, seeds, fold: int) -> dict:
    fold_dir, report = train(args, seeds, fold)
    saved = os.path.join(fold_dir, _tagged(args, "row.json"))
    model_dir = os.path.join(report["model_uri"], TEACHER_EXPORT if args.teacher else "Format-Serving")
    if args.reuse_counts and os.path.exists(saved):
        with open(saved) as f:
            row = json.load(f)
        if args.self_calibration and "self" not in row:
            row["self"] = self_calibrated(args, fold_dir, report, model_dir, test_sets(args, fold))
            with open(saved, "w") as f:
                json.dump(row, f)
        return row
    sets = test_sets(args, fold)
    calibrated = site_calibration(args, fold_dir, report, model_dir, fold)
    rule = ("threshold", "gap_seconds", "min_call_seconds")
    points = {"before": scoring.default_rule_point(report["threshold"], "eval clips"),
              "threshold": {k: calibrated["default_rule"][k] for k in rule},
              "rule": {k: calibrated["with_rule"][k] for k in rule}}
    scorer = scoring.WindowScorer(model_dir)
    clips, labels, scores = score_fold_clips(scorer, args.data_root, fold, args.folds)
    # Every clip's score, of fold k (the test) and of fold k+1 (the eval split the clip threshold is chosen
    # on), so that other clip-threshold rules can be measured on the same models (bench/clip_thresholds.py).
    eval_clips, eval_labels, eval_scores = score_fold_clips(scorer, args.data_root, (fold + 1) % args.folds, args.folds)
    with open(os.path.join(fold_dir, _tagged(args, CLIP_SCORES_JSON)), "w") as f:
        json.dump({split: [[c.path, int(label), float(score)] for c, label, score in zip(*values)]
                   for split, values in (("test", (clips, labels, scores)),
                                         ("eval", (eval_clips, eval_labels, eval_scores)))}, f)
    row = {"fold": fold, "calls": int(labels.sum()), "others": int((1 - labels).sum()), "wall": report["wall"],
           "blessed": report["blessed"], "ap": average_precision(labels, scores), "points": points,
           "calibration": {k: calibrated["chosen"][k] for k in ("mae", "exact", "false_calls_per_hour")}}
    for name, point in points.items():
        same = next((other for other in POINTS[: POINTS.index(name)] if points[other] == point), None)
        if same:  # the same operating point counts the same
            row[name] = row[same]
            continue
        row[name] = {"f1": f1_at(labels, scores, point["threshold"])}
        for kind in ("forest", "hard", "plain"):
            row[name][kind] = count(model_dir, sets[kind], os.path.join(fold_dir, _tagged(args, f"counts_{name}_{kind}")),
                                    point)
    if args.self_calibration:
        row["self"] = self_calibrated(args, fold_dir, report, model_dir, sets)
    print(json.dumps({k: row[k] for k in ("fold", "points", *POINTS)}), flush=True)
    with open(saved, "w") as f:
        json.dump(row, f)
    return row


def _mean_std(values) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def _false_per_hour(rows, name: str, kind: str, key: str) -> float:
    return sum(r[name][kind][key] for r in rows) / sum(r[name][kind]["hours"] for r in rows)


def training_summary(rows) -> dict:
    """One training's numbers over its folds (means; false calls pooled over the folds' hours)."""
    summary = {}
    for name in POINTS:
        for kind in ("forest", "hard"):
            for key, _ in COUNT_METRICS:
                summary[f"{name}.{kind}.{key}"] = statistics.mean(r[name][kind][key] for r in rows)
            summary[f"{name}.{kind}.unmatched_per_hour"] = _false_per_hour(rows, name, kind, "unmatched")
        summary[f"{name}.plain.false_per_hour"] = _false_per_hour(rows, name, "plain", "false_calls")
        summary[f"{name}.f1"] = statistics.mean(r[name]["f1"] for r in rows)
    summary["ap"] = statistics.mean(r["ap"] for r in rows)
    return summary


def print_training(seeds, rows) -> None:
    print(f"\n**Training with seeds {' '.join(map(str, seeds))}**. Operating points are threshold, gap s, shortest "
          "call s; cells with three values are before (eval-clip threshold) / calibrated threshold with the default "
          "rule / calibrated threshold and rule.\n")
    print("| fold | calls / others | operating points | calibration MAE / false per h | forest MAE | forest exact "
          "| forest event recall | hard MAE | plain false calls | clip F1 | AP | train s |")
    print("|---:|---|---|---|---|---|---|---|---|---|---:|---:|")

    def cells(r, value, form: str = "{:.2f}") -> str:
        return " / ".join(form.format(value(r[name])) for name in POINTS)

    for r in rows:
        points = " / ".join(f"{p['threshold']:.3f}, {p['gap_seconds']:g}, {p['min_call_seconds']:g}"
                            for p in (r["points"][name] for name in POINTS))
        print(f"| {r['fold']} | {r['calls']} / {r['others']} | {points} | "
              f"{r['calibration']['mae']:.2f} / {r['calibration']['false_calls_per_hour']:.1f} | "
              f"{cells(r, lambda x: x['forest']['mae'])} | {cells(r, lambda x: x['forest']['exact'])} | "
              f"{cells(r, lambda x: x['forest']['event_recall'], '{:.3f}')} | {cells(r, lambda x: x['hard']['mae'])} | "
              f"{cells(r, lambda x: x['plain']['false_calls'], '{}')} | {cells(r, lambda x: x['f1'], '{:.3f}')} | "
              f"{r['ap']:.4f} | {r['wall']:.0f} |")


def print_summary(trainings) -> None:
    """Each operating point: every training's mean over folds, the mean of those, and their spread."""
    summaries = [training_summary(rows) for _, rows in trainings]
    print("\n**Honest counts** per operating point: each training's mean over its folds (false calls pooled over "
          "the folds' hours), then the mean over trainings and the spread (max - min) between them\n")
    print("| metric | " + " | ".join(POINT_NAMES[p] for p in POINTS) + " |")
    print("|---|" + "---|" * len(POINTS))
    rows = [(f"forest.{k}", f"forest backgrounds: {n}") for k, n in COUNT_METRICS]
    rows += [("forest.unmatched_per_hour", "forest: detections matching no call, per hour"),
             ("plain.false_per_hour", "plain backgrounds: false calls per hour")]
    rows += [(f"hard.{k}", f"hard backgrounds: {n}") for k, n in COUNT_METRICS[:2]]
    rows += [("f1", "clip F1 at the operating threshold")]
    for key, name in rows:
        cells = []
        for point in POINTS:
            values = [s[f"{point}.{key}"] for s in summaries]
            cells.append(" / ".join(f"{v:.3f}" for v in values)
                         + f" → **{statistics.mean(values):.3f}** (± {(max(values) - min(values)) / 2:.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| clip average precision | " + " / ".join(f"{s['ap']:.4f}" for s in summaries) + " | | |")


def print_self_calibration(trainings) -> None:
    """count_calls.py --calibrate on each test set beside the shipped calibration: per training, the mean
    over folds (false calls pooled over hours), and per fold the thresholds each chose."""
    with_self = [(seeds, rows) for seeds, rows in trainings if all("self" in r for r in rows)]
    if not with_self:
        return
    print("\n**Self-calibration** (`count_calls.py --calibrate` on each set's own recordings) against site "
          "calibration on the other folds' backgrounds (ships); each training's mean, then their mean\n")
    print("| metric | site-calibrated (ships) | self-calibrated |")
    print("|---|---|---|")
    metrics = [(f"forest: {n}", lambda r, k=k: r["threshold"]["forest"][k], lambda r, k=k: r["self"]["forest"][k])
               for k, n in COUNT_METRICS]
    for name, shipped, own in metrics:
        cells = []
        for value in (shipped, own):
            means = [statistics.mean(value(r) for r in rows) for _, rows in with_self]
            cells.append(" / ".join(f"{m:.3f}" for m in means) + f" → **{statistics.mean(means):.3f}**")
        print(f"| {name} | " + " | ".join(cells) + " |")
    false_rates = []
    for section in (lambda r: r["threshold"]["plain"], lambda r: r["self"]["plain"]):
        rates = [sum(section(r)["false_calls"] for r in rows) / sum(section(r)["hours"] for r in rows)
                 for _, rows in with_self]
        false_rates.append(" / ".join(f"{v:.1f}" for v in rates) + f" → **{statistics.mean(rates):.1f}**")
    print("| plain backgrounds: false calls per hour | " + " | ".join(false_rates) + " |")
    for seeds, rows in with_self:
        print(f"\nThresholds, training {' '.join(map(str, seeds))} (fold: shipped / self on forest / self on plain): "
              + "; ".join(f"{r['fold']}: {r['points']['threshold']['threshold']:.3f} / "
                          f"{r['self']['forest']['point']['threshold']:.3f} / {r['self']['plain']['point']['threshold']:.3f}"
                          for r in rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_site"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--trainings", nargs="+", default=["42 7 1234", "5 11 2026"],
                        help="one training per item: the ensemble's seeds, space-separated")
    parser.add_argument("--forest-recordings", type=int, default=40)
    parser.add_argument("--hard-recordings", type=int, default=20)
    parser.add_argument("--no-site-training", dest="site_training", action="store_false",
                        help="train on the clips only, as before the site backgrounds were training data (the "
                             "baseline; default: the other folds' backgrounds are training windows too)")
    parser.add_argument("--reviewed", default="", metavar="LABELS_CSV",
                        help="a review's labels whose snippets every model also trains on (bench/oracle_review.py)")
    parser.add_argument("--student", action=argparse.BooleanOptionalAction, default=configs.STUDENT,
                        help="each model is one network distilled from the ensemble (local_runner.py --student; "
                             "default: configs.STUDENT)")
    parser.add_argument("--teacher", action="store_true",
                        help="with --student and --reuse-models: count each fold's teacher (the ensemble the student "
                             "learnt from, exported beside it) instead, for a comparison paired fold by fold")
    parser.add_argument("--unlabelled", default=None, metavar="DIR_OR_GLOB",
                        help="with --student: unlabelled recordings whose windows the student also learns from "
                             "(default: the data's 'Forest Recordings/', nobody's test; '': none)")
    parser.add_argument("--augmentations", nargs="*", default=list(configs.AUGMENTATIONS),
                        choices=constants.AUGMENTATIONS, metavar="NAME",
                        help="train with these variations as well (local_runner.py --augmentations; default: "
                             "configs.AUGMENTATIONS; no name: none)")
    parser.add_argument("--calibrate-on", choices=("others", "untrained"), default="others",
                        help="site calibration's backgrounds: every fold's but the test fold's (default), or only "
                             "the eval fold's, which a site-trained model has not trained on")
    parser.add_argument("--self-calibration", action="store_true",
                        help="also count each test set at the operating point count_calls.py --calibrate chooses "
                             "on that set's own recordings (the forest set, and the plain backgrounds)")
    parser.add_argument("--reuse-models", action="store_true",
                        help="folds already trained in OUTPUT_DIR keep their models: only calibration and counting run")
    parser.add_argument("--reuse-counts", action="store_true",
                        help="with --reuse-models: folds already counted keep their numbers (row.json): tables only")
    parser.add_argument("--only-folds", type=int, nargs="+", metavar="K")
    args = parser.parse_args()
    if args.teacher and not (args.student and args.reuse_models):
        parser.error("--teacher counts the ensembles of a --student run already trained: add --student --reuse-models")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores. Data: {os.path.abspath(args.data_root)}; "
          f"{args.folds} folds by source group.", flush=True)
    started = time.time()
    trainings = []
    for text in args.trainings:
        seeds = [int(s) for s in text.split()]
        rows = [run_fold(args, seeds, k) for k in (args.only_folds or range(args.folds))]
        with open(os.path.join(args.output_dir, _tagged(args, f"seeds-{'-'.join(map(str, seeds))}.json")), "w") as f:
            json.dump(rows, f)
        print_training(seeds, rows)
        trainings.append((seeds, rows))
    print_summary(trainings)
    print_self_calibration(trainings)
    print(f"\nTotal wall time: {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
