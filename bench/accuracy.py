"""Benchmark: grouped K-fold on the real clips through the real pipeline, clips and counts.

    python bench/accuracy.py [--data-root ../shared/capuchin] [--folds 5] [--models default seed]
                             [--recordings-per-fold 20] [--output-dir runs/bench_kfold]
                             [--model-seeds SEED ...]  (the default model's members: an ensemble)
                             [--reuse-models]  (score and count again with the folds' trained models)
                             [--window-by-window]  (count the way models exported before whole-recording scoring do)
                             [--only-folds K ...]  (a quick screen: train and count only these folds)

For each fold k, `runners/local_runner.py --fold k N` ingests with the source groups (XC<id> / sound
name) of fold k as eval and the rest as train and runs the whole TFX pipeline in a fresh output dir.
Then, with the model the Trainer exported and the threshold ThresholdSelector chose:

- clips: every eval clip is scored (its first 3 s, as ingested); recall, precision and F1 at the chosen
  threshold (chosen on these same clips, so optimistic), F1 at the threshold that is best on the
  *other* folds' clips (honest), and average precision;
- counts: `--recordings-per-fold` 3-minute 48 kHz stereo 128 kbit/s mp3 recordings are built from the
  fold's own eval clips (bench/planted.py: positives planted with fades at -6..+6 dB around the
  background level, half of them 2-6 s apart, into call-free real forest recordings or the fold's
  negatives joined) and counted by the counting job; count MAE, exact-match rate, event precision
  and recall (a detection matches a call it overlaps, one to one). The default model counts them at the
  fold's chosen threshold, and twice more with thresholds the fold's own sounds play no part in (honest, as
  with F1): the one chosen on the other folds' clips pooled, and each other fold's chosen threshold in
  turn (averaged), as a production run chooses on one eval split of other sources.

The 'seed' architecture counts the tutorial's way: 3 s windows without overlap, threshold 0.99.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import time

import numpy as np

import planted
from components import audio, counting, dataset, scoring, synthetic_data
from components.threshold import choose_threshold
from model import constants, features
from pipeline_runs import EPOCHS, REAL_DATA_ROOT, run_local_pipeline


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean precision at the rank of each positive (non-interpolated)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order] == 1
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean()) if hits.any() else 0.0


def f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float):
    """(F1, precision, recall) with calls at scores >= threshold."""
    called = scores >= threshold
    tp = int(np.sum(called & (labels == 1)))
    fp, fn = int(np.sum(called & (labels == 0))), int(np.sum(~called & (labels == 1)))
    return 2 * tp / max(1, 2 * tp + fp + fn), tp / max(1, tp + fp), tp / max(1, tp + fn)


def best_threshold(labels: np.ndarray, scores: np.ndarray, tie_clips: int = features.THRESHOLD_TIE_CLIPS,
                   preferred: float = features.PREFERRED_THRESHOLD) -> float:
    """The threshold ThresholdSelector's rule picks on these clips (components.threshold.choose_threshold)."""
    candidates = np.unique(np.concatenate([scores, [preferred]]))
    points = [{"threshold": float(t), "errors": int(np.sum((scores >= t) != (labels == 1)))} for t in candidates]
    return choose_threshold(points, preferred=preferred, tie_clips=tie_clips)["threshold"]


def eval_clips(data_root: str, fold: int, folds: int):
    return [c for c in dataset.list_labelled_clips(data_root)
            if dataset.split_of(c.group, fold=(fold, folds)) == dataset.EVAL_SPLIT]


def score_clips(model_dir: str, clips) -> np.ndarray:
    scorer = scoring.WindowScorer(model_dir)
    windows = np.stack([audio.load_clip(c.path) for c in clips])
    batch = counting.SCORE_BATCH
    return np.concatenate([scorer(windows[i : i + batch]) for i in range(0, len(windows), batch)])


def planted_recordings(data_root: str, clips, out_dir: str, count: int, seed: int) -> str:
    """The fold's planted recordings (built once, then reused)."""
    if not os.path.exists(os.path.join(out_dir, synthetic_data.CALLS_CSV)):
        forest = [os.path.join(data_root, dataset.FOREST_DIR, f"{name}.mp3") for name in planted.CALL_FREE_FOREST]
        planted.build_recordings(out_dir, [c.path for c in clips if c.label == 1],
                                 [c.path for c in clips if c.label == 0],
                                 [f for f in forest if os.path.exists(f)], count, seed)
    return out_dir


def count_planted(model_dir: str, recordings: str, out_dir: str, threshold: float, hop: float,
                  whole_recordings: bool = True) -> dict:
    summary = counting.run_counting(model_dir, os.path.join(recordings, "*.mp3"), out_dir, threshold=threshold,
                                    hop_seconds=hop, whole_recordings=whole_recordings)
    results = counting.load_parts(out_dir)
    counts = {os.path.basename(r): v["calls"] or 0 for r, v in results.items()}
    detections = {os.path.basename(r): [(s, e) for s, e, _ in v["detections"]] for r, v in results.items()}
    truth = synthetic_data.read_forest_calls(recordings)
    return {**planted.count_scores(counts, detections, truth), "realtime": summary["realtime_factor"]}


def run_fold(args, architecture: str, fold: int) -> dict:
    fold_dir = os.path.join(args.output_dir, architecture, f"fold{fold}")
    previous = os.path.join(fold_dir, "report.json")
    if args.reuse_models and os.path.exists(previous):  # count again with the models already trained
        with open(previous) as f:
            report = json.load(f)
        with open(os.path.join(args.output_dir, f"{architecture}.json")) as f:
            wall = next(row["wall"] for row in json.load(f) if row["fold"] == fold)
        shutil.rmtree(os.path.join(fold_dir, "planted_counts"), ignore_errors=True)
    else:
        report, wall = run_local_pipeline(args.data_root, fold_dir, architecture, (fold, args.folds), quiet=True,
                                          model_seeds=args.model_seeds if architecture == constants.ARCHITECTURE_DEFAULT else None)
    model_dir = os.path.join(report["model_uri"], "Format-Serving")
    clips = eval_clips(args.data_root, fold, args.folds)
    labels = np.array([c.label for c in clips])
    scores = score_clips(model_dir, clips)
    chosen = report["threshold"]
    f1, precision, recall = f1_at(labels, scores, chosen)
    if architecture == constants.ARCHITECTURE_SEED:  # the tutorial's counting
        count_threshold, hop = features.TUTORIAL_THRESHOLD, features.CLIP_SECONDS
    else:
        count_threshold, hop = chosen, features.HOP_SECONDS
    recordings = planted_recordings(args.data_root, clips, os.path.join(args.output_dir, "planted", f"fold{fold}"),
                                    args.recordings_per_fold, seed=100 + fold)
    counted = count_planted(model_dir, recordings, os.path.join(fold_dir, "planted_counts"), count_threshold, hop,
                            whole_recordings=not args.window_by_window)
    return {
        "fold": fold, "eval_calls": int(labels.sum()), "eval_others": int((1 - labels).sum()),
        "threshold": chosen, "recall": recall, "precision": precision, "f1": f1, "ap": average_precision(labels, scores),
        "tfma_ap": report["metrics"].get("average_precision"), "blessed": report["blessed"], "wall": wall,
        "labels": labels.tolist(), "scores": scores.tolist(), "count": counted,
        "model_dir": model_dir, "recordings": recordings, "fold_dir": fold_dir, "hop": hop,
    }


# The count metrics the tables show, as `planted.count_scores` names them.
COUNT_METRICS = (("mae", "count MAE (calls per recording)"), ("exact", "recordings counted exactly"),
                 ("event_precision", "event precision"), ("event_recall", "event recall"))


def pooled_threshold(labels, scores, tie_clips: int = features.THRESHOLD_TIE_CLIPS) -> float:
    """The threshold ThresholdSelector's rule picks on several folds' eval clips together (lists of arrays)."""
    return best_threshold(np.concatenate(labels), np.concatenate(scores), tie_clips)


def held_out_thresholds(rows) -> None:
    """Each fold's `held_out_threshold`: the one ThresholdSelector's rule picks on the *other* folds' eval
    clips, so that nothing of the fold itself is used."""
    for row in rows:
        others = [r for r in rows if r is not row]
        row["held_out_threshold"] = pooled_threshold([r["labels"] for r in others], [r["scores"] for r in others])


def count_again(row, folder: str, threshold: float, whole_recordings: bool) -> dict:
    """The fold's planted recordings counted afresh at `threshold`, into `folder` of the fold's directory."""
    out = os.path.join(row["fold_dir"], folder)
    shutil.rmtree(out, ignore_errors=True)
    return count_planted(row["model_dir"], row["recordings"], out, threshold, row["hop"], whole_recordings)


def count_at_held_out_thresholds(rows, whole_recordings: bool) -> None:
    """Counts each fold's planted recordings again at its held-out threshold (`count_held_out`): the
    honest count, as a model meets recordings whose sounds its threshold was not chosen on."""
    for row in rows:
        row["count_held_out"] = count_again(row, "planted_counts_held_out", row["held_out_threshold"],
                                            whole_recordings)


def count_at_other_folds_thresholds(rows, whole_recordings: bool) -> None:
    """Counts each fold's planted recordings at every other fold's chosen threshold and averages the count
    metrics (`count_other_folds`). Each of those thresholds is one the pipeline really chose: on one eval
    split, from sources other than the fold's, as a production run chooses on its own eval split. The
    pooled held-out threshold above is chosen on four folds' clips at once, where the one-clip tie of
    ThresholdSelector's rule is four times as strict as on one split."""
    for row in rows:
        counts, done = [], {}
        for other in rows:
            if other is row:
                continue
            threshold = other["threshold"]
            if threshold not in done:  # several folds often choose the same threshold (0.5)
                done[threshold] = count_again(row, f"planted_counts_at_{threshold:.4f}", threshold, whole_recordings)
            counts.append(done[threshold])
        row["count_other_folds"] = {key: float(np.mean([c[key] for c in counts])) for key, _ in COUNT_METRICS}


def _mean_std(values):
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def print_tables(architecture: str, rows, seeds) -> None:
    every_fold = all("held_out_threshold" in r for r in rows)  # not so after --only-folds
    for row in rows:
        if every_fold:
            row["f1_held_out"] = f1_at(np.array(row["labels"]), np.array(row["scores"]), row["held_out_threshold"])[0]
    pooled_labels = np.concatenate([r["labels"] for r in rows])
    pooled_scores = np.concatenate([r["scores"] for r in rows])
    print(f"**{architecture}** ({EPOCHS[architecture]} epochs"
          + (f", seeds {' '.join(map(str, seeds))})\n" if architecture == constants.ARCHITECTURE_DEFAULT else ")\n"))
    print("| clip metric | mean ± std over folds |\n|---|---:|")
    for key, name in (("recall", "recall at the chosen threshold"), ("precision", "precision at the chosen threshold"),
                      ("f1", "F1 at the chosen threshold (chosen on the same clips)"),
                      ("f1_held_out", "F1 at the threshold chosen on the other folds"),
                      ("ap", "average precision")):
        if key == "f1_held_out" and not every_fold:
            continue
        print(f"| {name} | {_mean_std([r[key] for r in rows])} |")
    print(f"| F1 at {features.PREFERRED_THRESHOLD}, all folds' clips pooled | "
          f"{f1_at(pooled_labels, pooled_scores, features.PREFERRED_THRESHOLD)[0]:.3f} |")
    held_out = all("count_held_out" in r for r in rows)
    other_folds = all("count_other_folds" in r for r in rows)
    print("\n| count metric (planted recordings) | mean ± std over folds, at the fold's chosen threshold |"
          + (" at the threshold chosen on the other folds' clips pooled |" if held_out else "")
          + (" at each other fold's chosen threshold, averaged |" if other_folds else "")
          + "\n|---|---:|" + "---:|" * (held_out + other_folds))
    for key, name in COUNT_METRICS:
        print(f"| {name} | {_mean_std([r['count'][key] for r in rows])} |"
              + (f" {_mean_std([r['count_held_out'][key] for r in rows])} |" if held_out else "")
              + (f" {_mean_std([r['count_other_folds'][key] for r in rows])} |" if other_folds else ""))
    print("\n| fold | eval calls / others | threshold | recall | precision | F1 | other folds' threshold | F1 there "
          "| AP | blessed | recordings / calls | count MAE | exact | event P | event R | MAE / exact there "
          "| MAE / exact at each other fold's threshold | wall s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        c, h, o = r["count"], r.get("count_held_out"), r.get("count_other_folds")
        there = f"{h['mae']:.2f} / {h['exact']:.2f}" if h else "–"
        at_others = f"{o['mae']:.2f} / {o['exact']:.2f}" if o else "–"
        threshold_there = f"{r['held_out_threshold']:.3f} | {r['f1_held_out']:.3f}" if every_fold else "– | –"
        print(f"| {r['fold']} | {r['eval_calls']} / {r['eval_others']} | {r['threshold']:.3f} | {r['recall']:.3f} | "
              f"{r['precision']:.3f} | {r['f1']:.3f} | {threshold_there} | "
              f"{r['ap']:.4f} | {'yes' if r['blessed'] else 'no'} | {c['recordings']} / {c['calls']} | "
              f"{c['mae']:.2f} | {c['exact']:.2f} | {c['event_precision']:.3f} | {c['event_recall']:.3f} | {there} | "
              f"{at_others} | "
              f"{r['wall']:.0f} |")
    print(flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=REAL_DATA_ROOT)
    parser.add_argument("--output-dir", default=os.path.join("runs", "bench_kfold"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(constants.ARCHITECTURES))
    parser.add_argument("--recordings-per-fold", type=int, default=20)
    parser.add_argument("--model-seeds", type=int, nargs="+", help="the default model's members, one per seed")
    parser.add_argument("--reuse-models", action="store_true",
                        help="folds already trained in OUTPUT_DIR keep their models: only scoring and counting run again")
    parser.add_argument("--window-by-window", action="store_true",
                        help="count with the networks run on every window (runners/count_calls.py --window-by-window)")
    parser.add_argument("--only-folds", type=int, nargs="+", metavar="K",
                        help="train and count only these folds, to screen a change quickly (no held-out columns: "
                             "those need every fold)")
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores. Data: {os.path.abspath(args.data_root)}; "
          f"{args.folds} folds by source group.\n", flush=True)
    started = time.time()
    for architecture in args.models:
        rows = [run_fold(args, architecture, k) for k in (args.only_folds or range(args.folds))]
        if len(rows) == args.folds:  # each fold's held-out threshold is chosen on all the others
            held_out_thresholds(rows)
            if architecture == constants.ARCHITECTURE_DEFAULT:  # the seed model counts at the tutorial's fixed 0.99
                count_at_held_out_thresholds(rows, whole_recordings=not args.window_by_window)
                count_at_other_folds_thresholds(rows, whole_recordings=not args.window_by_window)
        with open(os.path.join(args.output_dir, f"{architecture}.json"), "w") as f:
            json.dump(rows, f)
        print_tables(architecture, rows, args.model_seeds or constants.MODEL_SEEDS)
    print(f"Total wall time: {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
