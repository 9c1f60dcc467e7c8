"""Reviewed snippets as training clips: what a person labelled in a review page (runners/review.py) goes
back into the next ingestion, so the next pipeline run learns the site.

Each labelled item becomes one clip: 3 s of its snippet (16 kHz mono wav in the review folder), centred on
the item's stretch. 'call' is label 1, 'not_call' label 0; unsure and empty labels are left out.

- Every reviewed clip is train-only: the eval split, which blesses the model and whose calls calibrate the
  operating point, stays the curated clips. (With reviewed calls in eval, k-fold calibration moved to
  thresholds of 0.02-0.05 on one fold; BENCHMARKS.md, review.)
- A call's group is `review-<recording>`.
- A not-call is a window of the site's own audio, so it joins the site background windows
  (`site-review-<recording>`): training plants calls into it and mixes it under non-calls, and it never
  stands alone as a negative. As a plain negative it taught the model to score faint forest calls down.
"""

import hashlib
import os
from typing import Dict, List, Optional, Tuple

from components import dataset, estimate
from model import features

GROUP_PREFIX = "review-"
LABEL_OF = {"call": 1, "not_call": 0}


def group_of(recording: str) -> str:
    return GROUP_PREFIX + os.path.splitext(os.path.basename(recording))[0]


def reviewed_clips(labels_csv: str, review_dir: Optional[str] = None) -> Tuple[List[dataset.LabelledClip], Dict]:
    """The labelled items of a review as clips, and what was taken (for the ingestion's summary).

    Args:
      labels_csv: the review's labels (review.csv filled in, or the page's download).
      review_dir: the folder runners/review.py wrote; default: the CSV's own folder.

    Raises:
      estimate.ReviewError: no review there, or a CSV that is not this review's (see estimate.read_labels).
    """
    review_dir = review_dir or os.path.dirname(os.path.abspath(labels_csv))
    described = estimate.load_review(review_dir)
    labels = estimate.read_labels(labels_csv, described)
    clips = []
    for item in described["items"]:
        label = LABEL_OF.get(labels.get(item["id"], ""))
        if label is None:
            continue
        begin, end = item["snippet"]
        # 3 s centred on the item (a window is 3 s; a detection may be longer), inside the snippet.
        centre = (item["start_s"] + item["end_s"]) / 2
        offset = min(max(centre - features.CLIP_SECONDS / 2 - begin, 0.0), max(end - begin - features.CLIP_SECONDS, 0.0))
        group = group_of(item["recording"])
        clips.append(dataset.LabelledClip(os.path.join(review_dir, item["audio"]), label,
                                          group if label else dataset.SITE_GROUP_PREFIX + group,
                                          round(offset, 3), train_only=True))
    with open(labels_csv, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    taken = {
        "file": os.path.abspath(labels_csv),
        "sha256": digest,
        "calls": sum(c.label == 1 for c in clips),
        "not_calls": sum(c.label == 0 for c in clips),
        "left_out": len(labels) - len(clips),
        "recordings": len({c.group for c in clips}),
    }
    return clips, taken
