"""components/estimate.py and runners/estimate_calls.py: intervals that hold the truth, and bad inputs refused."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from components import estimate, review
from runners import estimate_calls
from tests import review_helpers

HOP = 1.5


def _simulated_population(rng):
    """Recordings of 3 minutes as windows (no audio): calls, 85 % of them detected; a missed call's
    window scores middling, background windows low and a few of them high; one detection in ten is no call.
    Returns (recordings, truth: {(recording, kind, start_s): is a call}, true number of calls)."""
    starts = np.arange(0, 180 - 3 + 1e-9, HOP)
    recordings, truth, total = [], {}, 0
    for r in range(30):
        name = f"rec_{r:02d}.wav"
        cells = review.cells_of(starts)
        scores = rng.beta(0.5, 30, len(starts))
        scores[rng.random(len(starts)) < 0.03] = rng.uniform(0.2, 0.9)
        detections, missed_cells = [], []
        middles = np.sort(rng.choice(np.arange(5, 175, 6.0), rng.integers(0, 8), replace=False) + rng.uniform(0, 3))
        for middle in middles:
            cell = int(np.flatnonzero((cells[:, 0] <= middle) & (middle < cells[:, 1]))[0])
            if rng.random() < 0.85:
                detections.append((round(middle - 1, 3), round(middle + 1, 3), 0.95))
                truth[(name, "detection", round(middle - 1, 3))] = True
            else:
                scores[cell] = rng.uniform(0.1, 0.7)
                missed_cells.append(cell)
        total += len(middles)
        if rng.random() < 0.3:  # a false detection
            spare = [c for c in range(5, len(starts) - 5) if not any(abs(cells[c, 0] - d[0]) < 4 for d in detections)
                     and c not in missed_cells]
            if spare:
                begin = round(float(cells[spare[0], 0]), 3)
                detections.append((begin, round(begin + 1.2, 3), 0.6))
                truth[(name, "detection", begin)] = False
        detections.sort()
        for cell in missed_cells:
            truth[(name, "window", round(float(starts[cell]), 3))] = True
        recordings.append(review.Recording(name, name, detections, starts, scores, cells))
    return recordings, truth, total


def _oracle(items, truth):
    return {i["id"]: "call" if truth.get((i["recording"], i["kind"], i["start_s"]), False) else "not_call"
            for i in items}


def test_the_90_percent_interval_holds_the_true_total_on_simulated_reviews():
    covered, errors = [], []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        recordings, truth, total = _simulated_population(rng)
        review.assign_bins(recordings, 6)
        run = review.CountingRun("sim", {"hop_seconds": HOP, "model": "sim"}, "sim", {}, {})
        described = review.population(run, recordings, [], 6)
        described["items"] = review.draw_items(recordings, 10, 6, seed, "sim")
        result = estimate.estimate(described, _oracle(described["items"], truth), draws=2000, seed=seed)
        covered.append(result["total"]["low"] <= total <= result["total"]["high"])
        errors.append(abs(result["total"]["calls"] - total) / total)
        assert result["labels"]["used"] == len(described["items"])
    assert np.mean(covered) >= 0.8, np.mean(covered)
    assert np.median(errors) <= 0.15, np.median(errors)


def test_a_flat_prior_counts_calls_in_every_bin_where_none_was_found():
    """Why the default prior is centred on the score: Jeffreys' prior puts ~1/22 of a call in every window
    of a bin whose ten labels were all no call, and the lowest bin holds half of the windows."""
    rng = np.random.default_rng(0)
    recordings, truth, total = _simulated_population(rng)
    review.assign_bins(recordings, 6)
    run = review.CountingRun("sim", {"hop_seconds": HOP, "model": "sim"}, "sim", {}, {})
    described = review.population(run, recordings, [], 6)
    described["items"] = review.draw_items(recordings, 10, 6, 0, "sim")
    labels = _oracle(described["items"], truth)
    flat = estimate.estimate(described, labels, prior="jeffreys", draws=2000)["total"]
    assert flat["low"] > total * 1.3
    centred = estimate.estimate(described, labels, draws=2000)["total"]
    assert abs(centred["calls"] - total) < abs(flat["calls"] - total)


def test_every_label_known_gives_the_exact_count():
    rng = np.random.default_rng(1)
    recordings, truth, total = _simulated_population(rng)
    review.assign_bins(recordings, 3)
    run = review.CountingRun("sim", {"hop_seconds": HOP, "model": "sim"}, "sim", {}, {})
    described = review.population(run, recordings, [], 3)
    described["items"] = review.draw_items(recordings, 10**6, 3, 0, "sim")  # every window and detection
    result = estimate.estimate(described, _oracle(described["items"], truth), draws=500)
    assert result["total"] == {"calls": total, "low": total, "high": total}
    detections = sum(len(r.detections) for r in recordings)
    true_detections = sum(1 for key, call in truth.items() if key[1] == "detection" and call)
    assert result["precision"]["value"] == pytest.approx(true_detections / detections, abs=1e-3)
    assert result["missed_calls"]["calls"] == total - true_detections


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate")
    counts = review_helpers.make_counting_output(str(root))
    described = review_helpers.make_review(counts, str(root / "review"))
    return counts, str(root / "review"), described


def _write_labels(path, described, labels, columns=review.REVIEW_COLUMNS):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for item in described["items"]:
            row = dict(item, label=labels.get(item["id"], ""))
            writer.writerow([row.get(c, "") for c in columns])


def test_a_labelled_csv_gives_the_estimate_and_counts_unsure_and_empty_labels(reviewed, tmp_path):
    counts, review_dir, described = reviewed
    labels = {i["id"]: review_helpers.truth_label(i) for i in described["items"]}
    items = described["items"]
    labels[items[0]["id"]] = "unsure"
    labels[items[1]["id"]] = ""
    # Typed by hand:
    labels[items[2]["id"]] = {"call": "Call", "not_call": "Not a call"}[labels[items[2]["id"]]]
    labels[items[3]["id"]] = {"call": "C", "not_call": "n"}[labels[items[3]["id"]]]
    path = str(tmp_path / "labels.csv")
    _write_labels(path, described, labels)
    output = str(tmp_path / "out" / "estimate.json")
    result = estimate_calls.run(["--counts", counts, "--review", path, "--review-dir", review_dir, "--output", output])
    assert result["labels"] == {"used": len(items) - 2, "unsure": 1, "empty": 1}
    with open(output) as f:
        written = json.load(f)
    assert set(written) >= {"total", "recordings", "precision", "missed_calls", "calls_per_hour", "labels"}
    assert set(written["recordings"]) == set(review_helpers.CALLS)
    for entry in [written["total"], written["missed_calls"], *written["recordings"].values()]:
        assert entry["low"] <= entry["calls"] <= entry["high"]
    assert written["total"]["low"] <= sum(len(c) for c in review_helpers.CALLS.values()) <= written["total"]["high"]


def _refused(reviewed, tmp_path, csv_path, match, counts=None):
    existing, review_dir, _ = reviewed
    output = tmp_path / "estimate.json"
    with pytest.raises(SystemExit, match=match):
        estimate_calls.run(["--counts", counts or existing, "--review", csv_path, "--review-dir", review_dir,
                            "--output", str(output)])
    assert not output.exists() and not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_wrong_columns_are_refused(reviewed, tmp_path):
    path = str(tmp_path / "labels.csv")
    _write_labels(path, reviewed[2], {}, columns=("id", "recording", "start_s", "label"))
    _refused(reviewed, tmp_path, path, "has columns id,recording,start_s,label; a review CSV has id,recording")


def test_unknown_ids_are_refused(reviewed, tmp_path):
    path = str(tmp_path / "labels.csv")
    _write_labels(path, reviewed[2], {})
    text = open(path).read().replace(reviewed[2]["items"][0]["id"], "abcdef-9999")
    open(path, "w").write(text)
    _refused(reviewed, tmp_path, path, "1 ids this review does not have .*abcdef-9999")


def test_an_empty_review_is_refused(reviewed, tmp_path):
    path = str(tmp_path / "labels.csv")
    _write_labels(path, {"items": []}, {})
    _refused(reviewed, tmp_path, path, "is an empty review: it has no rows")
    _write_labels(path, reviewed[2], {reviewed[2]["items"][0]["id"]: "unsure"})
    _refused(reviewed, tmp_path, path, r"no item is labelled call or not_call \(1 unsure")


def test_a_label_that_is_not_a_label_is_refused(reviewed, tmp_path):
    path = str(tmp_path / "labels.csv")
    _write_labels(path, reviewed[2], {reviewed[2]["items"][0]["id"]: "maybe"})
    _refused(reviewed, tmp_path, path, "has label 'maybe'; use call, not_call, unsure")


def test_a_review_of_another_counting_run_is_refused(reviewed, tmp_path):
    counts = str(tmp_path / "counts")
    shutil.copytree(reviewed[0], counts)
    with open(os.path.join(counts, "detections.csv"), "a") as f:
        f.write("site_a.wav,20.0,21.5,0.8\n")  # counted again, with another call
    path = str(tmp_path / "labels.csv")
    _write_labels(path, reviewed[2], {i["id"]: "call" for i in reviewed[2]["items"]})
    _refused(reviewed, tmp_path, path, "drawn from another counting run", counts=counts)


def test_rows_of_another_review_are_refused(reviewed, tmp_path):
    path = str(tmp_path / "labels.csv")
    items = [dict(i, start_s=i["start_s"] + 1.5) if k == 0 else i for k, i in enumerate(reviewed[2]["items"])]
    _write_labels(path, {"items": items}, {})
    _refused(reviewed, tmp_path, path, "is not this review's item")


def test_a_csv_away_from_its_review_folder_needs_review_dir(reviewed, tmp_path):
    path = str(tmp_path / "labels.csv")
    _write_labels(path, reviewed[2], {i["id"]: "call" for i in reviewed[2]["items"]})
    output = tmp_path / "estimate.json"
    with pytest.raises(SystemExit, match="holds no bins.json: pass --review-dir"):
        estimate_calls.run(["--counts", reviewed[0], "--review", path, "--output", str(output)])
    assert not output.exists()
