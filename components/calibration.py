"""Site calibration: the counting operating point chosen on the site's own audio.

Eval calls (sources the model never trained on) are planted into call-free background recordings of the
site (faint to loud, some back to back, some a few seconds apart: model/features.py CALIBRATION_*), and
the model scores these recordings, and the plain backgrounds, through the counting job's own code
(`counting.RecordingScorer`, `counting.calls_in`). Every candidate operating point (a threshold and a merging
rule) is then applied to the scores, and `choose_operating_point` takes:

- the fewest wrong calls in all, counted call by call: planted calls no detection matches (missed),
  detections that match no planted call (a false call, or a call counted twice), and calls found on the
  plain backgrounds (false calls). A miss and a false call in one recording leave its count right but are
  two errors: counted by recording they cancel, and low thresholds whose false calls land beside missed
  calls looked as good as they count;
- of the points that tie (CALIBRATION_TIE_CALLS: none beyond the fewest), the default merging rule
  where it is among them, and the middle of its tied thresholds (the lower of two middles; the thresholds
  are evenly spaced in logit). Missed calls grow as the threshold rises and false calls as it falls; the
  middle of a plateau keeps the most distance from both. Where the calibration holds few calls, every
  threshold can tie, and the highest of them, 0.99, missed faint calls; on the k-fold benchmark the middle
  and the highest counted alike (BENCHMARKS.md, "Site calibration").

`calibrate` does all of it for given calls and backgrounds; `background_stretches` finds background in
the recordings to be counted when the site has no call-free recordings (count_calls.py --calibrate).
"""

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from components import audio, counting, files, planting
from model import features

CALIBRATION_JSON = "calibration.json"
CALIBRATION_PNG = "calibration.png"
TRUTH_CSV = "calibration_truth.csv"
# The calls a model was calibrated with travel inside it, so count_calls.py --calibrate can plant them.
CALLS_NPZ = "calibration_calls.npz"
SITE_CALIBRATION = "site calibration"

PLANTING = planting.PlantingSpec(max_calls=features.CALIBRATION_MAX_CALLS, snr_db=features.CALIBRATION_SNR_DB,
                                 gaps_s=features.CALIBRATION_GAPS_S)


@dataclasses.dataclass(frozen=True)
class Background:
    name: str
    samples: np.ndarray  # float32, 16 kHz mono


def load_backgrounds(paths: Sequence[str]) -> Tuple[List[Background], List[Tuple[str, str]]]:
    """The recordings that can be used (named by file name), and (path, reason) for each that cannot:
    unreadable, or shorter than one window."""
    usable, failures = [], []
    for path in paths:
        try:
            samples = audio.load_audio(path)
        except audio.AudioLoadError as error:
            failures.append((path, error.reason))
            continue
        if len(samples) < features.CLIP_SAMPLES:
            failures.append((path, f"too short: {len(samples) / features.SAMPLE_RATE:.2f} s, "
                                   f"shorter than one {features.CLIP_SECONDS:g} s window"))
            continue
        usable.append(Background(os.path.basename(path), samples))
    return usable, failures


def planted_recordings(backgrounds: Sequence[Background], calls: Sequence[np.ndarray],
                       count: int = features.CALIBRATION_RECORDINGS, seed: int = features.CALIBRATION_SEED):
    """`count` recordings, each a stretch of a background (in turn, from a random point, wrapping round)
    with calls planted by PLANTING. Returns [(name, samples, [(start_s, end_s, snr_db), ...])]."""
    rng = np.random.default_rng(seed)
    longest = int(features.CALIBRATION_RECORDING_SECONDS * features.SAMPLE_RATE)
    recordings = []
    for index in range(count):
        background = backgrounds[index % len(backgrounds)]
        stretch = np.roll(background.samples, -int(rng.integers(len(background.samples))))[:longest]
        mix, truth = planting.plant(rng, stretch, calls, PLANTING, features.SAMPLE_RATE)
        recordings.append((f"calibration_{index:03d}_{background.name}", mix, truth))
    return recordings


def candidate_points(frame_model: bool) -> List[Dict]:
    """Every operating point calibration tries: thresholds x merging rules (one rule for a model with one
    score per window, whose rule has no parameters)."""
    rules = [(gap, shortest) for gap in features.CALIBRATION_GAPS_SECONDS
             for shortest in features.CALIBRATION_MIN_CALL_SECONDS] if frame_model else []
    rules = rules or [(features.CALL_GAP_SECONDS, features.MIN_CALL_SECONDS)]
    return [{"threshold": t, "gap_seconds": g, "min_call_seconds": m}
            for g, m in rules for t in features.CALIBRATION_THRESHOLDS]


def _is_default_rule(point: Dict) -> bool:
    return (point["gap_seconds"], point["min_call_seconds"]) == (features.CALL_GAP_SECONDS, features.MIN_CALL_SECONDS)


def tied_points(sweep: Sequence[Dict], tie_calls: int = features.CALIBRATION_TIE_CALLS) -> List[Dict]:
    """The swept points with the fewest `wrong_calls`, or within `tie_calls` of them."""
    fewest = min(p["wrong_calls"] for p in sweep)
    return [p for p in sweep if p["wrong_calls"] <= fewest + tie_calls]


def choose_operating_point(sweep: Sequence[Dict], tie_calls: int = features.CALIBRATION_TIE_CALLS) -> Dict:
    """The swept point with the fewest `wrong_calls`; ties (within `tie_calls`) go to the default merging
    rule where it is among them, then to the middle of that rule's tied thresholds (the lower of two)."""
    tied = tied_points(sweep, tie_calls)
    if any(_is_default_rule(p) for p in tied):
        tied = [p for p in tied if _is_default_rule(p)]
    else:
        best = min(tied, key=lambda p: p["wrong_calls"])
        tied = [p for p in tied if (p["gap_seconds"], p["min_call_seconds"]) ==
                (best["gap_seconds"], best["min_call_seconds"])]
    tied.sort(key=lambda p: p["threshold"])
    return tied[(len(tied) - 1) // 2]


def _scored(name: str, samples: np.ndarray, scorer: counting.RecordingScorer, config: counting.CountingConfig):
    return scorer.score(counting.whole_chunk(name, samples, config))


def count_errors(planted: Sequence[Tuple[Sequence, Sequence]], plain: Sequence[Sequence], plain_hours: float) -> Dict:
    """Wrong calls of any counting rule: planted [(found calls, true calls)] and the calls found on plain
    backgrounds of `plain_hours` in all; calls as (start_s, end_s, ...)."""
    errors = [len(found) - len(truth) for found, truth in planted]
    matched = sum(planting.match_events([d[:2] for d in found], [t[:2] for t in truth]) for found, truth in planted)
    calls = sum(len(truth) for _, truth in planted)
    missed, unmatched = calls - matched, sum(len(found) for found, _ in planted) - matched
    false_calls = sum(len(found) for found in plain)
    return {
        "mae": float(np.mean(np.abs(errors))) if errors else 0.0,
        "exact": float(np.mean(np.equal(errors, 0))) if errors else 1.0,
        "missed": missed, "unmatched": unmatched,  # false calls in planted recordings, or calls counted twice
        "event_recall": matched / calls if calls else 1.0,
        "false_calls": false_calls,
        "false_calls_per_hour": false_calls / plain_hours if plain_hours else 0.0,
        # Counted call by call, not recording by recording: a miss and a false call in one recording are
        # two errors, though its count comes out right.
        "wrong_calls": missed + unmatched + false_calls,
    }


def measure(point: Dict, planted: Sequence, plain: Sequence, config: counting.CountingConfig) -> Dict:
    """Count errors on the planted recordings and false calls on the plain backgrounds at one point.

    planted: [(scored chunk, truth)]; plain: [scored chunk].
    """
    rule = dataclasses.replace(config, **{k: point[k] for k in ("threshold", "gap_seconds", "min_call_seconds")})

    def found(scored):
        return counting.calls_in([scored], rule)[0]

    return {**point, **count_errors([(found(scored), truth) for scored, truth in planted],
                                    [found(scored) for scored in plain],
                                    sum(scored.seconds for scored in plain) / 3600)}


def calibrate(scorer, calls: Sequence[np.ndarray], backgrounds: Sequence[Background], eval_threshold: float,
              hop_seconds: Optional[float] = None, recordings: int = features.CALIBRATION_RECORDINGS,
              progress=None) -> Dict:
    """Chooses the counting operating point for `scorer`'s model on these backgrounds.

    Args:
      scorer: a scoring.WindowScorer.
      calls: call clips (float32, 16 kHz mono, no padding) of sources the model did not train on.
      backgrounds: call-free recordings of the site.
      eval_threshold: the threshold chosen on eval clips, measured alongside for comparison.
      hop_seconds: the counting job's hop; default: CountingConfig's.
      recordings: how many planted recordings to build.
      progress: called with a line of text now and then, if given.

    Returns:
      {operating_point, chosen, at_eval_threshold, sweep, truth, backgrounds, ...} (see calibration.json).
    """
    config = counting.CountingConfig.of(eval_threshold, hop_seconds=hop_seconds)
    recording_scorer = counting.RecordingScorer(scorer, config)
    built = planted_recordings(backgrounds, calls, recordings)
    say = progress or (lambda line: None)
    say(f"calibration: scoring {len(built)} planted recordings and {len(backgrounds)} plain backgrounds")
    planted = [(_scored(name, samples, recording_scorer, config), truth) for name, samples, truth in built]
    plain = [_scored(b.name, b.samples, recording_scorer, config) for b in backgrounds]
    sweep = [measure(point, planted, plain, config) for point in candidate_points(recording_scorer.how.per_frame)]
    chosen = choose_operating_point(sweep if features.CALIBRATE_MERGING_RULE else
                                    [p for p in sweep if _is_default_rule(p)])
    default_rule = {"gap_seconds": features.CALL_GAP_SECONDS, "min_call_seconds": features.MIN_CALL_SECONDS}
    at_eval = measure({"threshold": eval_threshold, **default_rule}, planted, plain, config)
    return {
        "operating_point": {key: chosen[key] for key in ("threshold", "gap_seconds", "min_call_seconds")}
        | {"source": SITE_CALIBRATION},
        "chosen": chosen,
        # Both ways of choosing, whichever CALIBRATE_MERGING_RULE picks (bench/accuracy.py counts both).
        "with_rule": choose_operating_point(sweep),
        "default_rule": choose_operating_point([p for p in sweep if _is_default_rule(p)]),
        "at_eval_threshold": at_eval,
        "rule": "fewest wrong calls (planted calls missed + detections matching no planted call + false calls on "
                "plain backgrounds); "
                "of equal points the default merging rule, then the middle of its tied thresholds",
        "planted_recordings": len(built),
        "planted_calls": sum(len(truth) for _, _, truth in built),
        "background_hours": round(sum(len(b.samples) for b in backgrounds) / features.SAMPLE_RATE / 3600, 4),
        "backgrounds": [b.name for b in backgrounds],
        "truth": {name: truth for name, _, truth in built},
        "sweep": sweep,
    }


def background_stretches(scored_recordings: Sequence[Tuple[str, np.ndarray, "counting.ScoredChunk"]],
                         threshold: float,
                         stretch_seconds: float = features.SELF_CALIBRATION_STRETCH_SECONDS,
                         quantile: float = features.SELF_CALIBRATION_QUANTILE) -> List[Background]:
    """Background taken from the recordings to be counted, when the site has no call-free recordings.

    Each recording is cut into stretches of `stretch_seconds` (a shorter tail is dropped); a stretch's
    score is the highest score the model gives inside it. The stretches scoring in the lowest `quantile`
    of all of them, and below `threshold`, are the background: where the model is surest there is no call.

    Args:
      scored_recordings: [(name, samples, scored chunk)], as counting.RecordingScorer.score gives them.
      threshold: the model's own operating threshold.
    """
    stretch = int(stretch_seconds * features.SAMPLE_RATE)
    candidates = []
    for name, samples, scored in scored_recordings:
        times = np.asarray(scored.times, dtype=np.float64)  # frame (or window) starts; none for silence
        scores = np.asarray(scored.scores).reshape(len(times), -1).max(axis=1) if len(times) else times
        for index in range(len(samples) // stretch):
            begin_s, end_s = index * stretch_seconds, (index + 1) * stretch_seconds
            inside = (times >= begin_s) & (times < end_s)
            peak = float(scores[inside].max()) if inside.any() else 0.0
            candidates.append((peak, f"{name}@{begin_s:.0f}s", samples[index * stretch : (index + 1) * stretch]))
    if not candidates:
        return []
    cutoff = min(float(np.quantile([c[0] for c in candidates], quantile)), threshold)
    return [Background(label, samples) for peak, label, samples in candidates if peak <= cutoff and peak < threshold]


def calibrate_on_recordings(model_dir: str, recording_paths: Sequence[str], hop_seconds: Optional[float],
                            threshold: float, progress=None, calls: Optional[Sequence[np.ndarray]] = None) -> Dict:
    """count_calls.py --calibrate: the operating point from the calls the model carries (or `calls`),
    planted into the lowest-scoring stretches of (up to SELF_CALIBRATION_RECORDINGS of) the recordings to
    be counted."""
    from components import scoring

    calls = read_calls(model_dir) if calls is None else calls
    if not calls:
        raise ValueError(f"{model_dir} carries no calibration calls ({os.path.join('assets.extra', CALLS_NPZ)}): "
                         "it was pushed before site calibration; train again, or count without --calibrate")
    step = max(1, len(recording_paths) // features.SELF_CALIBRATION_RECORDINGS)
    sample = list(recording_paths)[::step][: features.SELF_CALIBRATION_RECORDINGS]
    scorer = scoring.WindowScorer(model_dir)
    config = counting.CountingConfig.of(threshold, hop_seconds=hop_seconds)
    readable, failures = load_backgrounds(sample)
    recording_scorer = counting.RecordingScorer(scorer, config)
    scored = [(r.name, r.samples, _scored(r.name, r.samples, recording_scorer, config)) for r in readable]
    backgrounds = background_stretches(scored, threshold)
    seconds = sum(len(b.samples) for b in backgrounds) / features.SAMPLE_RATE
    if seconds < features.SELF_CALIBRATION_MIN_SECONDS:
        raise ValueError(f"only {seconds:.0f} s of background found in {len(scored)} recordings (need "
                         f"{features.SELF_CALIBRATION_MIN_SECONDS:.0f} s): count without --calibrate")
    result = calibrate(scorer, calls, backgrounds, threshold, hop_seconds, progress=progress)
    result["background_rule"] = (
        f"{features.SELF_CALIBRATION_STRETCH_SECONDS:g} s stretches of up to {features.SELF_CALIBRATION_RECORDINGS} "
        f"of the recordings whose peak score is in the lowest {features.SELF_CALIBRATION_QUANTILE:.0%} "
        f"and below the model's threshold {threshold:.3f}")
    result["background_from"] = [os.path.basename(p) for p in sample]
    result["failures"] = failures
    return result


def write_calls(path: str, calls: Sequence[np.ndarray]) -> None:
    """The calibration calls as 16-bit samples (one array each) in an .npz file."""
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, *[np.round(np.clip(c, -1, 1) * 32767).astype(np.int16) for c in calls])
    with files.open_file(path, "wb") as f:
        f.write(buffer.getvalue())


def read_calls(model_dir: str) -> List[np.ndarray]:
    """The calibration calls a pushed model carries ([] if none)."""
    import io

    path = os.path.join(model_dir, "assets.extra", CALLS_NPZ)
    if not files.exists(path):
        return []
    with files.open_file(path, "rb") as f:
        stored = np.load(io.BytesIO(f.read()))
        return [stored[key].astype(np.float32) / 32767 for key in sorted(stored.files, key=lambda k: int(k.split("_")[1]))]


def write_plot(result: Dict, eval_threshold: float, path: str) -> None:
    """Count error and false calls per hour against threshold, for the chosen merging rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = result["chosen"]
    points = [p for p in result["sweep"]
              if (p["gap_seconds"], p["min_call_seconds"]) == (chosen["gap_seconds"], chosen["min_call_seconds"])]
    thresholds = [p["threshold"] for p in points]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(thresholds, [p["mae"] for p in points], color="tab:blue", lw=2, label="count MAE, planted recordings")
    axis.set(xscale="logit", xticks=[0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98],
             xticklabels=["0.02", "0.05", "0.1", "0.2", "0.5", "0.8", "0.9", "0.95", "0.98"],
             xlabel="threshold (log-odds scale)", ylabel="count MAE (calls per recording)",
             title=f"Site calibration: {result['planted_recordings']} planted recordings, "
                   f"{result['background_hours']:.2f} h of background")
    alarms = axis.twinx()
    alarms.plot(thresholds, [p["false_calls_per_hour"] for p in points], color="tab:orange", lw=2,
                label="false calls per hour, plain backgrounds")
    alarms.set_ylabel("false calls per hour")
    # Very low thresholds count hundreds of calls: the axes stop at twice what the chosen side shows.
    above = [p for p in points if p["threshold"] >= chosen["threshold"] / 2]
    axis.set_ylim(0, max(1.0, 2 * max(p["mae"] for p in above)))
    alarms.set_ylim(0, max(10.0, 2 * max(p["false_calls_per_hour"] for p in above)))
    axis.axvline(chosen["threshold"], color="red", label=f"chosen {chosen['threshold']:.3f} (gap "
                 f"{chosen['gap_seconds']:g} s, min {chosen['min_call_seconds']:g} s)")
    axis.axvline(eval_threshold, color="gray", ls="--", label=f"eval clips' {eval_threshold:.3f}")
    lines = axis.get_legend_handles_labels()[0] + alarms.get_legend_handles_labels()[0]
    axis.legend(lines, [line.get_label() for line in lines], loc="upper center", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with files.open_file(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
    plt.close(figure)


def summary_line(result: Dict) -> str:
    point, chosen = result["operating_point"], result["chosen"]
    return (f"operating point {point['threshold']:.3f} (gap {point['gap_seconds']:g} s, min call "
            f"{point['min_call_seconds']:g} s): calibration count MAE {chosen['mae']:.2f} on "
            f"{result['planted_recordings']} planted recordings ({chosen['exact']:.0%} exact), "
            f"{chosen['false_calls_per_hour']:.2f} false calls per hour on {result['background_hours']:.2f} h of background")

