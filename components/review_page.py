"""The review page: a snippet (wav) and a marked spectrogram (png) per item, and one static index.html.

The page (components/review_page.html) works from file:// with no server: the items are written into
it as JSON, the snippets are relative links, and the labels leave it as a CSV download made in the
browser. It keeps the labels in the browser's local storage between visits.
"""

import json
import logging
import os
import time
from typing import Dict, List, Sequence

import numpy as np
import soundfile as sf

from components import audio
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

    folder = os.path.join(review_dir, "snippets")
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
            item.update(audio=f"snippets/{item['id']}.wav", image=f"snippets/{item['id']}.png",
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
    with open(os.path.join(review_dir, "index.html"), "w") as f:
        f.write(filled)
