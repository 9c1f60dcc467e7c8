"""components/review.py and runners/review.py: the sample, the page's files, moved recordings, bad inputs."""

import csv
import json
import logging
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from components import review, review_page
from runners import review as review_runner
from tests import review_helpers


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    return review_helpers.make_counting_output(str(tmp_path_factory.mktemp("counted")))


@pytest.fixture(scope="module")
def reviewed(counted, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("reviews") / "review")
    return output, review_helpers.make_review(counted, output)


def test_log_bins_hold_a_half_a_quarter_an_eighth_and_the_rest():
    scores = np.random.default_rng(0).random(1024)
    bins = review.log_bins(scores, 4)
    assert np.bincount(bins).tolist() == [512, 256, 128, 128]
    # Ordered by score: every window of a higher bin scores at least as high.
    assert all(scores[bins == b].max() <= scores[bins == b + 1].min() for b in range(3))
    # Ties (silence scores all alike) still fill the bins by rank.
    assert np.bincount(review.log_bins(np.zeros(64), 3)).tolist() == [32, 16, 16]


def test_cells_tile_the_recording_one_per_window():
    starts = np.array([0.0, 1.5, 3.0, 4.5, 5.2])  # the last window flush with a 8.2 s recording's end
    cells = review.cells_of(starts)
    assert cells[0, 0] == 0 and cells[-1, 1] == pytest.approx(8.2)
    assert np.allclose(cells[1:, 0], cells[:-1, 1])  # no gaps, no overlaps
    centres = starts + 1.5
    assert all(begin <= centre <= end for (begin, end), centre in zip(cells, centres))
    assert review.touches_detection(cells, [(2.4, 2.6, 0.9)]).tolist() == [False, True, False, False, False]


def test_the_sample_holds_every_detection_and_per_bin_windows_of_each_bin(reviewed):
    output, described = reviewed
    items = described["items"]
    detections = [i for i in items if i["kind"] == "detection"]
    assert len(detections) == sum(len(c) for c in review_helpers.CALLS.values()) - 2 + 1  # found + 1 false
    windows = [i for i in items if i["kind"] == "window"]
    assert np.bincount([i["bin"] for i in windows]).tolist() == [6, 6, 6, 5]  # the top bin holds 5
    # Windows are drawn only where no detection is: every sampled cell is clear of them.
    for item in windows:
        found = [d for d in items if d["kind"] == "detection" and d["recording"] == item["recording"]]
        assert not any(d["start_s"] < item["mark"][1] and d["end_s"] > item["mark"][0] for d in found)
    # The population: every window counted once, in a bin or next to a detection.
    units = described["strata"]
    assert units[review.DETECTION_BIN]["units"] == len(detections)
    assert [units[str(b)]["units"] for b in range(4)] == [24, 12, 6, 5]
    # The missed calls score highest of the windows left: they are in the top bin.
    missed = [i for i in windows if review_helpers.truth_label(i) == "call"]
    assert missed and all(i["bin"] == 3 for i in missed)
    assert len({i["id"] for i in items}) == len(items)


def test_the_review_folder_has_the_page_the_csv_and_every_snippet(reviewed):
    output, described = reviewed
    with open(os.path.join(output, review.REVIEW_CSV)) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(review.REVIEW_COLUMNS)
    assert [r["id"] for r in rows] == [i["id"] for i in described["items"]]
    assert all(r["label"] == "" for r in rows)
    with open(os.path.join(output, review.BINS_JSON)) as f:
        assert json.load(f)["counting_run"] == described["counting_run"]
    page = open(os.path.join(output, review.INDEX_HTML)).read()
    assert all(item["id"] in page for item in described["items"]) and "__ITEMS__" not in page
    for item in described["items"]:
        assert os.path.getsize(os.path.join(output, item["image"])) > 1000
        info = sf.info(os.path.join(output, item["audio"]))
        # A second of context either side, where the recording has it.
        wanted = min(item["end_s"] + 1, review_helpers.SECONDS) - max(item["start_s"] - 1, 0)
        assert info.samplerate == 16_000 and info.duration == pytest.approx(wanted, abs=0.01)
    assert not [name for name in os.listdir(os.path.dirname(output)) if ".tmp" in name]


def test_the_same_seed_draws_the_same_sample_and_another_seed_another(counted, tmp_path):
    run = review.read_counting_run(counted)
    scorer = review_helpers.BandScorer()
    draws = [review.draw_review(run, "tone", 3, 4, seed, scorer=scorer)[1]["items"] for seed in (1, 1, 2)]
    key = lambda items: sorted((i["recording"], i["start_s"], i["kind"]) for i in items)  # noqa: E731
    assert key(draws[0]) == key(draws[1]) != key(draws[2])


def test_recordings_moved_since_counting_are_named_and_skipped(counted, tmp_path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(os.path.dirname(counted), root)
    counts = str(root / "counts")
    # The parts still point at the first recordings: move one of them away.
    run = review.read_counting_run(counts)
    gone = run.paths["site_b.wav"]
    moved = str(tmp_path / "site_b.wav")
    shutil.move(gone, moved)
    try:
        with caplog.at_level(logging.WARNING, logger="capuchin.review"):
            _, described = review.draw_review(run, "tone", 2, 2, 0, scorer=review_helpers.BandScorer())
    finally:
        shutil.move(moved, gone)
    assert described["missing"] == [gone]
    assert list(described["recordings"]) == ["site_a.wav"]
    assert {i["recording"] for i in described["items"]} == {"site_a.wav"}
    assert any("site_b.wav" in record.getMessage() and "not found" in record.getMessage() for record in caplog.records)


def test_a_missing_counts_folder_is_a_clear_error_and_writes_nothing(tmp_path):
    output = tmp_path / "review"
    with pytest.raises(SystemExit, match="no counting output at .*summary.json"):
        review_runner.run(["--counts", str(tmp_path / "nowhere"), "--output-dir", str(output)])
    assert not output.exists()


def test_a_model_that_cannot_be_found_is_a_clear_error(counted, tmp_path):
    with pytest.raises(SystemExit, match=r"the model the counting run used \(tone\) is not found"):
        review_runner.run(["--counts", counted, "--output-dir", str(tmp_path / "review")])
    assert not (tmp_path / "review").exists()


def test_an_existing_review_is_never_overwritten(reviewed):
    output, described = reviewed
    before = open(os.path.join(output, review.REVIEW_CSV)).read()
    with pytest.raises(review.ReviewError, match="already exists and is not empty"):
        review_page.write_review(output, [], described)
    assert open(os.path.join(output, review.REVIEW_CSV)).read() == before
