"""The review page in a real headless browser (Debian's chromium driven by playwright), from file://:
images load, every audio source plays, labels are clicked and typed, and the downloaded CSV is what
runners/estimate_calls.py reads."""

import csv
import os
import shutil

import pytest

from runners import estimate_calls
from tests import review_helpers

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="chromium is not installed (.ci/run installs Debian's chromium)")


@pytest.fixture(scope="module")
def page_of_review(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[dev])")
    root = tmp_path_factory.mktemp("page")
    counts = review_helpers.make_counting_output(str(root))
    review_dir = str(root / "review")
    described = review_helpers.make_review(counts, review_dir)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True, viewport={"width": 900, "height": 1000})
        page.goto("file://" + os.path.join(review_dir, "index.html"))
        yield page, counts, review_dir, described
        browser.close()


def test_every_image_loads_and_every_audio_source_resolves(page_of_review):
    page, _, _, described = page_of_review
    page.wait_for_function("Array.from(document.images).every(image => image.complete)", timeout=30_000)
    widths = page.evaluate("Array.from(document.images).map(image => image.naturalWidth)")
    assert len(widths) == len(described["items"]) and min(widths) > 0
    page.wait_for_function("Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)",
                           timeout=30_000)
    players = page.evaluate("Array.from(document.querySelectorAll('audio'))"
                            ".map(a => ({src: a.currentSrc, duration: a.duration, error: a.error && a.error.code}))")
    assert len(players) == len(described["items"])
    for player, item in zip(players, described["items"]):
        assert player["error"] is None and player["src"].endswith(item["audio"])
        assert player["duration"] == pytest.approx(item["snippet"][1] - item["snippet"][0], abs=0.05)


def test_labels_clicked_and_typed_download_as_a_csv_that_estimate_calls_reads(page_of_review, tmp_path):
    page, counts, review_dir, described = page_of_review
    items = described["items"]
    wanted = {item["id"]: review_helpers.truth_label(item) for item in items}
    names = {"call": "Call", "not_call": "Not a call"}
    # The first half by clicking the buttons, the rest by keyboard (each key labels and moves on);
    # the last item is left unsure.
    half = len(items) // 2
    for item in items[:half]:
        page.locator(f"#item-{item['id']} .labels button", has_text=names[wanted[item["id"]]]).first.click()
    page.locator(f"#item-{items[half]['id']}").click()
    for item in items[half:-1]:
        page.keyboard.press({"call": "c", "not_call": "n"}[wanted[item["id"]]])
    page.keyboard.press("u")
    assert page.locator("#progress").inner_text() == f"{len(items)} of {len(items)} labelled"
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "review_labels.csv"
    path = str(tmp_path / download.suggested_filename)
    download.save_as(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [i["id"] for i in items]
    assert {r["id"]: r["label"] for r in rows} == dict(wanted, **{items[-1]["id"]: "unsure"})

    output = str(tmp_path / "estimate.json")
    result = estimate_calls.run(["--counts", counts, "--review", path, "--review-dir", review_dir, "--output", output])
    assert result["labels"] == {"used": len(items) - 1, "unsure": 1, "empty": 0}
    true_calls = sum(len(calls) for calls in review_helpers.CALLS.values())
    assert result["total"]["low"] <= true_calls <= result["total"]["high"]
    assert result["precision"]["detections"] == sum(i["kind"] == "detection" for i in items)
