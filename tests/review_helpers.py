"""A tiny counting output (two tone recordings, as runners/count_calls.py lays it out) and a stand-in
scorer, for the review, estimate and review-page tests: no trained model needed."""

import csv
import json
import os

import numpy as np

from components import review, review_page
from model import features
from tests.helpers import write_audio

RATE = features.SAMPLE_RATE
SECONDS = 45.0
# Per recording: (call start s, amplitude, found by the counting run). A quiet call goes unfound.
CALLS = {
    "site_a.wav": [(5.0, 0.5, True), (15.0, 0.5, True), (30.0, 0.5, True), (38.0, 0.12, False)],
    "site_b.wav": [(10.0, 0.5, True), (25.0, 0.12, False)],
}
CALL_SECONDS = 2.0
# A detection of the counting run that is no call.
FALSE_DETECTION = ("site_b.wav", 33.0, 34.2)


class BandScorer:
    """Window probability rising with the share of the window's power in 600-800 Hz (the tones' band)."""

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
        hz = np.fft.rfftfreq(windows.shape[1], 1 / RATE)
        share = power[:, (hz >= 600) & (hz <= 800)].sum(1) / (power.sum(1) + 1e-12)
        return (1 / (1 + np.exp(-(np.log10(share + 1e-9) + 1.0) * 8))).astype(np.float32)


def make_counting_output(root: str) -> str:
    """Recordings under root/recordings and their counting output under root/counts; returns the latter."""
    rng = np.random.default_rng(3)
    recordings, counts = os.path.join(root, "recordings"), os.path.join(root, "counts")
    os.makedirs(recordings)
    os.makedirs(os.path.join(counts, "parts"))
    t = np.arange(int(CALL_SECONDS * RATE)) / RATE
    detections = []
    for index, (name, calls) in enumerate(sorted(CALLS.items())):
        samples = rng.normal(0, 0.05, int(SECONDS * RATE)).astype(np.float32)
        found = []
        for start, amplitude, detected in calls:
            begin = int(start * RATE)
            samples[begin : begin + len(t)] += (amplitude * np.sin(2 * np.pi * 700 * t)).astype(np.float32)
            if detected:
                found.append([start + 0.1, start + CALL_SECONDS - 0.1, 0.99])
        if name == FALSE_DETECTION[0]:
            found.append([FALSE_DETECTION[1], FALSE_DETECTION[2], 0.7])
        path = write_audio(os.path.join(recordings, name), samples[:, None], RATE)
        found.sort()
        detections += [[name, *d] for d in found]
        with open(os.path.join(counts, "parts", f"{index:04d}.json"), "w") as f:
            json.dump({"recording": path, "calls": len(found), "detections": found, "seconds": SECONDS,
                       "reason": None}, f)
    with open(os.path.join(counts, "detections.csv"), "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["recording", "start_s", "end_s", "score"])
        writer.writerows(detections)
    with open(os.path.join(counts, "counts.csv"), "w") as f:
        f.write("recording,capuchin_calls\n" + "".join(f"{n},{sum(d[0] == n for d in detections)}\n" for n in CALLS))
    with open(os.path.join(counts, "summary.json"), "w") as f:
        json.dump({"model": "tone", "threshold": 0.5, "hop_seconds": features.HOP_SECONDS,
                   "operating_point": {"threshold": 0.5, "gap_seconds": 1.0, "min_call_seconds": 1.0,
                                       "source": "test"}, "files": 2, "calls": len(detections)}, f)
    return counts


def make_review(counts: str, output_dir: str, per_bin: int = 6, bins: int = 4, seed: int = 0):
    """The review of `counts`, scored with BandScorer; returns bins.json's content."""
    run = review.read_counting_run(counts)
    recordings, described = review.draw_review(run, "tone", per_bin, bins, seed, scorer=BandScorer())
    review_page.write_review(output_dir, recordings, described)
    return described


def truth_label(item) -> str:
    """What a careful reviewer answers: a detection is a call when it overlaps one; a window is when
    the middle of a call no detection found lies in its cell."""
    calls = CALLS[item["recording"]]
    if item["kind"] == "detection":
        overlaps = any(s < item["end_s"] and s + CALL_SECONDS > item["start_s"] for s, _, _ in calls)
        return "call" if overlaps else "not_call"
    begin, end = item["mark"]
    missed = [s + CALL_SECONDS / 2 for s, _, found in calls if not found]
    return "call" if any(begin <= m < end for m in missed) else "not_call"
