"""The review folder: a snippet (wav) and a marked spectrogram (png) per item, one static index.html,
review.csv and bins.json, written into a temporary folder renamed into place at the end (`write_review`).

The page (components/review_page.html) works from file:// with no server: the items are written into
it as JSON, the snippets are relative links, and the labels leave it as a CSV download made in the
browser. It keeps the labels in the browser's local storage between visits.
"""

import csv
import json
import logging
import os
import shutil
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile as sf

from components import audio, review
from model import features

_log = logging.getLogger("capuchin.review")

# Audio around each item, so a call cut by a window's edge can still be heard whole.
CONTEXT_SECONDS = 1.0
# The spectrogram: 32 ms frames every 10 ms (as the model's), up to the model's 5 kHz cap.
_FRAME, _STEP = features.MEL_FRAME_LENGTH, features.MEL_FRAME_STEP
_TOP_HZ = features.MEL_UPPER_HZ
_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "review_page.html")


def write_snippets(review_dir: str, recordings: Sequence, items: List[Dict]) -> None:
    """snippets/<id>.wav (16 kHz mono, the item with CONTEXT_SECONDS either side) and snippets/<id>.png
    for every item; sets each item's `audio`, `image` and `snippet` (its span in the recording, s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = os.path.join(review_dir, review.SNIPPETS_DIR)
    os.makedirs(folder, exist_ok=True)
    by_recording: Dict[str, List[Dict]] = {}
    for item in items:
        by_recording.setdefault(item["recording"], []).append(item)
    figure = plt.figure(figsize=(7.2, 2.4), dpi=100)
    started, wanted = time.time(), [r for r in recordings if r.name in by_recording]
    for done, recording in enumerate(wanted, 1):
        samples = audio.load_audio(recording.path)
        for item in by_recording[recording.name]:
            first = max(0, int((item["start_s"] - CONTEXT_SECONDS) * features.SAMPLE_RATE))
            last = min(len(samples), int(np.ceil((item["end_s"] + CONTEXT_SECONDS) * features.SAMPLE_RATE)))
            stem = f"{review.SNIPPETS_DIR}/{item['id']}"  # a URL in the page
            item.update(audio=stem + ".wav", image=stem + ".png",
                        snippet=[round(first / features.SAMPLE_RATE, 3), round(last / features.SAMPLE_RATE, 3)])
            sf.write(os.path.join(review_dir, item["audio"]), samples[first:last], features.SAMPLE_RATE,
                     subtype="PCM_16")
            _draw(figure, samples[first:last], item, recording.detections)
            figure.savefig(os.path.join(review_dir, item["image"]), format="png")
        _log.info("[%d/%d] snippets of %s: %d — %.1f s", done, len(wanted), recording.name,
                  len(by_recording[recording.name]), time.time() - started)
    plt.close(figure)


def _draw(figure, samples: np.ndarray, item: Dict, detections) -> None:
    """The snippet's spectrogram (dB, 0-5 kHz) with the item's stretch shaded, the window's edges dashed
    and the detections outlined."""
    from scipy import signal

    figure.clear()
    axis = figure.add_axes([0.07, 0.2, 0.92, 0.72])
    begin, end = item["snippet"]
    frequencies, _, power = signal.spectrogram(samples, features.SAMPLE_RATE, nperseg=_FRAME,
                                               noverlap=_FRAME - _STEP, mode="psd")
    keep = frequencies <= _TOP_HZ
    decibels = 10 * np.log10(power[keep] + 1e-12)
    axis.imshow(decibels, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                extent=[begin, end, 0, _TOP_HZ / 1000], vmin=np.percentile(decibels, 5), vmax=decibels.max())
    mark_start, mark_end = item["mark"]
    axis.axvspan(mark_start, mark_end, color="#ffe14d", alpha=0.28, lw=0)
    if item["kind"] == "window":
        for edge in (item["start_s"], item["end_s"]):
            axis.axvline(edge, color="white", ls="--", lw=1)
    for start, end_s, _ in detections:
        if start < end and end_s > begin:
            axis.axvspan(max(start, begin), min(end_s, end), ymin=0.02, ymax=0.98, fill=False, ec="#ff4040", lw=1.5)
    axis.set_xlim(begin, end)
    axis.set_xlabel("time in the recording (s)", fontsize=8)
    axis.set_ylabel("kHz", fontsize=8)
    axis.tick_params(labelsize=7)


def write_page(review_dir: str, described: Dict) -> None:
    """index.html: the template with the items, the review's token and a title filled in."""
    with open(_TEMPLATE) as f:
        template = f.read()
    items = [{key: item[key] for key in ("id", "kind", "recording", "start_s", "end_s", "score", "bin", "mark",
                                          "audio", "image", "snippet")} for item in described["items"]]
    title = (f"Review of {len(items)} items: {sum(i['kind'] == 'detection' for i in items)} detections, "
             f"{described['per_bin']} windows from each of {described['bins']} score bins")
    filled = (template.replace("__TITLE__", title)
              .replace("__TOKEN__", described["token"])
              .replace("__ITEMS__", json.dumps(items).replace("</", "<\\/")))
    with open(os.path.join(review_dir, review.INDEX_HTML), "w") as f:
        f.write(filled)


def write_review(output_dir: str, recordings: Sequence[review.Recording], described: Dict) -> None:
    """REVIEW/index.html, review.csv, bins.json and snippets/, written into a temporary folder that
    replaces nothing: `output_dir` must not exist yet (or be empty), so no labels are overwritten."""
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise review.ReviewError(f"{output_dir} already exists and is not empty: choose another --output-dir "
                          "(a review there may hold labels)")
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    temporary = os.path.join(parent, f".{os.path.basename(os.path.abspath(output_dir))}.tmp{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        write_snippets(temporary, recordings, described["items"])
        write_page(temporary, described)
        write_review_csv(os.path.join(temporary, review.REVIEW_CSV), described["items"])
        with open(os.path.join(temporary, review.BINS_JSON), "w") as f:
            json.dump(described, f, indent=1)
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # empty, checked above
        os.replace(temporary, output_dir)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_review_csv(path: str, items: Sequence[Dict], labels: Optional[Dict[str, str]] = None) -> None:
    """`id,recording,start_s,end_s,score,bin,label`, one row per item; labels empty unless given."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(review.REVIEW_COLUMNS)
        for item in items:
            writer.writerow([item["id"], item["recording"], item["start_s"], item["end_s"], item["score"],
                             item["bin"], (labels or {}).get(item["id"], "")])
