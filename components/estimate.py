"""Calls per recording and in total, with 90 % intervals, from a labelled review (components/review.py).

Direct call-density estimation (after Navine et al. 2024, All thresholds barred): the review's strata are
the detections and the score bins of the other windows. In each stratum s, P(call | s) has the Beta
posterior Beta(a_s + calls labelled, b_s + non-calls labelled). The calls of a recording are its labelled
calls plus, in each stratum, a Binomial(its unlabelled units, P(call | s)) draw:

- a detection is one call when labelled a call (the precision of the detections);
- a window is one call when the middle of a call that no detection covers lies in its cell: cells tile
  the recording, so each missed call is in exactly one (the missed calls). No windows-to-calls factor.

The total, each recording, the precision, the missed calls and the calls per hour are Monte-Carlo draws
(P(call | s) drawn, then the binomials), so the 90 % interval is the draws' 5th to 95th percentile, and
the estimate is the posterior mean.

The prior (DEFAULT_PRIOR): Beta(m_s, 1 - m_s), m_s the stratum's mean model score: worth one label, as
Jeffreys' Beta(0.5, 0.5) is, but centred on the model's score instead of 0.5. With ten labels a bin, a
flat prior adds about N_s / 22 calls to every bin where no call was found, and the lowest bin holds half
of all windows: on the planted benchmark, Jeffreys' prior more than doubled the total and its intervals
never held the truth (BENCHMARKS.md, "Review"). 'jeffreys' and 'uniform' remain selectable.
"""

import csv
import json
import os
from typing import Dict, Optional, Tuple

import numpy as np

from components import review
from components.review import ReviewError

PRIORS = ("score", "jeffreys", "uniform")
DEFAULT_PRIOR = "score"
INTERVAL = 0.90
DRAWS = 10_000
# Spellings accepted in a label column typed by hand, once lower-cased with '_' read as a space.
_SPELLINGS = {"call": "call", "c": "call", "yes": "call", "y": "call", "1": "call",
              "not call": "not_call", "not a call": "not_call", "n": "not_call", "no": "not_call", "0": "not_call",
              "unsure": "unsure", "u": "unsure", "?": "unsure", "": ""}


def load_review(review_dir: str) -> Dict:
    """The review's bins.json."""
    path = os.path.join(review_dir, review.BINS_JSON)
    if not os.path.exists(path):
        raise ReviewError(f"{review_dir} holds no {review.BINS_JSON}: pass --review-dir, the folder runners/review.py "
                          "wrote")
    with open(path) as f:
        return json.load(f)


def read_labels(path: str, described: Dict) -> Dict[str, str]:
    """{item id: 'call' | 'not_call' | 'unsure' | ''} from a review CSV, checked against the review's items.

    Raises:
      ReviewError: a missing or empty file, other columns, unknown or repeated ids, rows that do not
        match their item (a CSV of another review), or a label that is not call / not_call / unsure.
    """
    if not os.path.isfile(path):
        raise ReviewError(f"no review CSV at {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet may add a byte-order mark
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if sorted(columns) != sorted(review.REVIEW_COLUMNS):
            raise ReviewError(f"{path} has columns {','.join(columns) or '(none)'}; a review CSV has "
                              f"{','.join(review.REVIEW_COLUMNS)}")
        rows = [{key.strip(): (value or "").strip() for key, value in row.items()} for row in reader]
    if not rows:
        raise ReviewError(f"{path} is an empty review: it has no rows")
    items = {item["id"]: item for item in described["items"]}
    unknown = [row["id"] for row in rows if row["id"] not in items]
    if unknown:
        raise ReviewError(f"{path} has {len(unknown)} ids this review does not have (another review's CSV?): "
                          + ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""))
    labels: Dict[str, str] = {}
    for row in rows:
        item = items[row["id"]]
        if row["id"] in labels:
            raise ReviewError(f"{path}: id {row['id']} appears twice")
        if (row["recording"], row["bin"]) != (item["recording"], str(item["bin"])) or not _same(row["start_s"],
                                                                                                 item["start_s"]):
            raise ReviewError(f"{path}: row {row['id']} ({row['recording']} at {row['start_s']} s, bin {row['bin']}) "
                              f"is not this review's item ({item['recording']} at {item['start_s']} s, bin {item['bin']})")
        label = _SPELLINGS.get(" ".join(row["label"].lower().replace("_", " ").split()))
        if label is None:
            raise ReviewError(f"{path}: row {row['id']} has label {row['label']!r}; use call, not_call, unsure "
                              "or leave it empty")
        labels[row["id"]] = label
    return labels


def _same(typed: str, value: float) -> bool:
    try:
        return abs(float(typed) - float(value)) < 1e-3
    except ValueError:
        return False


def check_counting_run(described: Dict, counts_dir: str) -> None:
    """Raises ReviewError unless the review was drawn from this counting output as it is now."""
    identity = review.read_counting_run(counts_dir).identity
    if identity != described["counting_run"]:
        raise ReviewError(f"the review was drawn from another counting run (or {counts_dir} changed since): "
                          f"review {described['counting_run']}, counting output {identity} (from "
                          f"{described.get('counts_dir')}); draw a new review with runners/review.py")


def prior_of(stratum: Dict, prior: str) -> Tuple[float, float]:
    """(a, b) of a stratum's Beta prior."""
    if prior == "jeffreys":
        return 0.5, 0.5
    if prior == "uniform":
        return 1.0, 1.0
    if prior == "score":
        mean = float(np.clip(stratum["mean_score"], 1e-4, 1 - 1e-4))
        return mean, 1.0 - mean
    raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")


def estimate(described: Dict, labels: Dict[str, str], prior: str = DEFAULT_PRIOR, draws: int = DRAWS,
             seed: int = 0) -> Dict:
    """The estimate (estimate.json's content) from the review's population and its labels.

    Args:
      described: bins.json of the review.
      labels: {item id: 'call' | 'not_call' | 'unsure' | ''}; items not in it are unlabelled.
      prior: 'score' (default), 'jeffreys' or 'uniform' (see the module's docstring).
      draws: Monte-Carlo draws.
      seed: of the draws, so an estimate is repeatable.
    """
    strata = list(described["strata"])
    index = {name: k for k, name in enumerate(strata)}
    names = list(described["recordings"])
    recording_index = {name: k for k, name in enumerate(names)}
    # Per recording and stratum: units, labelled units, labelled calls.
    units = np.array([[described["recordings"][n]["units"][s] for s in strata] for n in names], dtype=np.int64)
    labelled, calls = np.zeros_like(units), np.zeros_like(units)
    for item in described["items"]:
        label = labels.get(item["id"], "")
        if label in ("call", "not_call"):
            cell = recording_index[item["recording"]], index[str(item["bin"])]
            labelled[cell] += 1
            calls[cell] += label == "call"
    a, b = np.array([prior_of(described["strata"][s], prior) for s in strata]).T
    a_post, b_post = a + calls.sum(0), b + (labelled - calls).sum(0)
    rng = np.random.default_rng(seed)
    p = rng.beta(a_post[:, None], b_post[:, None], size=(len(strata), draws))  # [strata, draws]
    p_mean = a_post / (a_post + b_post)
    detection, windows = index[review.DETECTION_BIN], [index[s] for s in strata if s != review.DETECTION_BIN]
    total, found, missed = np.zeros(draws), np.zeros(draws), np.zeros(draws)
    per_recording = {}
    for r, name in enumerate(names):
        unlabelled = units[r] - labelled[r]
        drawn = calls[r][:, None] + rng.binomial(unlabelled[:, None], p)  # [strata, draws]
        total += drawn.sum(0)
        found += drawn[detection]
        missed += drawn[windows].sum(0)
        per_recording[name] = _interval(drawn.sum(0), float(np.sum(calls[r] + unlabelled * p_mean)))
    detections = int(units[:, detection].sum())
    hours = sum(r["seconds"] for r in described["recordings"].values()) / 3600
    mean_found = float(np.sum(calls[:, detection] + (units[:, detection] - labelled[:, detection]) * p_mean[detection]))
    mean_missed = float(np.sum((calls + (units - labelled) * p_mean)[:, windows]))
    mean_total = mean_found + mean_missed
    label_counts = {"used": 0, "unsure": 0, "empty": 0}
    for item in described["items"]:
        label = labels.get(item["id"], "")
        label_counts["used" if label in ("call", "not_call") else label or "empty"] += 1
    return {
        "total": _interval(total, mean_total),
        "recordings": per_recording,
        "precision": dict(_interval(found / max(detections, 1), mean_found / max(detections, 1), digits=3),
                          detections=detections) if detections else None,
        "missed_calls": _interval(missed, mean_missed),
        "calls_per_hour": dict(_interval(total / hours, mean_total / hours), hours=round(hours, 3)),
        "labels": label_counts,
        "details": {
            "interval": INTERVAL,
            "prior": prior,
            "strata": {s: {"units": int(units[:, k].sum()), "labelled": int(labelled[:, k].sum()),
                           "calls": int(calls[:, k].sum()), "p_call": round(float(p_mean[k]), 4),
                           "prior": [round(float(a[k]), 4), round(float(b[k]), 4)]} for k, s in enumerate(strata)},
            "counting_run": described["counting_run"],
            "skipped_recordings": described.get("missing", []),
        },
    }


def _interval(draws: np.ndarray, mean: float, digits: int = 1) -> Dict[str, float]:
    low, high = np.quantile(draws, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])
    key = "calls" if digits == 1 else "value"
    return {key: round(mean, digits), "low": round(float(low), digits), "high": round(float(high), digits)}


def run_estimate(counts_dir: str, labels_csv: str, output: str, review_dir: Optional[str] = None,
                 prior: str = DEFAULT_PRIOR) -> Dict:
    """Checks everything, estimates, then writes `output` whole (nothing is written on an error).

    Raises:
      ReviewError: see read_labels and check_counting_run; also a review with no call/not_call label.
    """
    described = load_review(review_dir or os.path.dirname(os.path.abspath(labels_csv)))
    labels = read_labels(labels_csv, described)
    check_counting_run(described, counts_dir)
    if not any(label in ("call", "not_call") for label in labels.values()):
        unsure = sum(label == "unsure" for label in labels.values())
        raise ReviewError(f"{labels_csv} is an empty review: no item is labelled call or not_call "
                          f"({unsure} unsure, {len(labels) - unsure} empty)")
    result = estimate(described, labels, prior)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{os.path.basename(output)}.tmp{os.getpid()}")
    with open(temporary, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(temporary, output)
    return result
