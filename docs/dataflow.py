"""Draws docs/dataflow.png, the data flow of docs/design.md:  python docs/dataflow.py"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

# (label, x, y, colour): data in grey, Beam jobs in blue, TFX components in green.
DATA, BEAM, TFX = "#e8e8e8", "#cfe2ff", "#d4edda"
BOXES = {
    "clips": ("labelled clips\nwav/flac/mp3", 0.0, 3.0, DATA),
    "ingest": ("Beam: ingest_clips\n3 s 16 kHz waveforms,\nsplit by source group", 2.2, 3.0, BEAM),
    "records": ("TFRecords\ntrain / eval", 4.4, 3.0, DATA),
    "examplegen": ("ImportExampleGen\nStatisticsGen, SchemaGen,\nExampleValidator", 6.6, 3.0, TFX),
    "transform": ("Transform\nlog-mel graph", 8.8, 3.0, TFX),
    "trainer": ("Trainer\n3 networks, 40 ms frames", 8.8, 1.6, TFX),
    "evaluator": ("Evaluator\nrecall, precision gates", 6.6, 1.6, TFX),
    "pusher": ("Pusher\nserving_model/", 4.4, 1.6, TFX),
    "threshold": ("ThresholdSelector\neval-clip threshold", 2.2, 1.6, TFX),
    "backgrounds": ("site backgrounds\nForest Backgrounds/", 0.0, 0.2, DATA),
    "calibrator": ("CountCalibrator\noperating point", 2.2, 0.2, TFX),
    "recordings": ("recordings\nto count", 6.6, -1.2, DATA),
    "counter": ("CallCounter /\ncount_calls (Beam)", 6.6, 0.2, TFX),
    "outputs": ("counts.csv, detections.csv,\nselections.txt, failures.csv", 8.8, 0.2, DATA),
}
ARROWS = [
    ("clips", "ingest"), ("ingest", "records"), ("records", "examplegen"), ("examplegen", "transform"),
    ("transform", "trainer"), ("trainer", "evaluator"), ("evaluator", "pusher"), ("pusher", "threshold"),
    ("threshold", "calibrator"), ("backgrounds", "calibrator"), ("calibrator", "counter"),
    ("recordings", "counter"), ("counter", "outputs"),
]
WIDTH, HEIGHT = 1.9, 0.95


def main() -> None:
    figure, axis = plt.subplots(figsize=(13, 6))
    for label, x, y, colour in BOXES.values():
        axis.add_patch(FancyBboxPatch((x - WIDTH / 2, y - HEIGHT / 2), WIDTH, HEIGHT,
                                      boxstyle="round,pad=0.05", facecolor=colour, edgecolor="#555"))
        axis.text(x, y, label, ha="center", va="center", fontsize=8.5)
    for start, end in ARROWS:
        _, x0, y0, _ = BOXES[start]
        _, x1, y1, _ = BOXES[end]
        # From the edge of one box to the edge of the next, horizontally or vertically.
        dx = (WIDTH / 2 + 0.05) * ((x1 > x0) - (x1 < x0))
        dy = (HEIGHT / 2 + 0.05) * ((y1 > y0) - (y1 < y0)) if x0 == x1 else 0.0
        axis.annotate("", xy=(x1 - dx, y1 - dy), xytext=(x0 + dx, y0 + dy),
                      arrowprops={"arrowstyle": "->", "color": "#333"})
    axis.text(0.0, 4.1, "grey: data    blue: Beam job    green: TFX component (all recorded in ML Metadata)",
              fontsize=9, ha="left")
    axis.set(xlim=(-1.1, 9.9), ylim=(-1.8, 4.4))
    axis.axis("off")
    figure.tight_layout()
    figure.savefig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataflow.png"), dpi=80)


if __name__ == "__main__":
    main()
