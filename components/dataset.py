"""The dataset layout (the Kaggle Capuchinbird dataset's) and the grouped train/eval split.

    <root>/Parsed_Capuchinbird_Clips/<group>-<n>.<ext>      positives (label 1)
    <root>/Parsed_Not_Capuchinbird_Clips/<group>-<n>.<ext>  negatives (label 0)
    <root>/Forest Recordings/*.mp3                          unlabelled recordings to count
    <root>/Forest Backgrounds/*.mp3                         call-free recordings of the site (calibration)

Clips cut from one source (`XC<id>` or one sound effect) are near-duplicates, so the split is
decided per group, never per clip: otherwise eval scores leak.
"""

import dataclasses
import hashlib
import os
import re
from typing import List, Optional, Tuple

POSITIVE_DIR = "Parsed_Capuchinbird_Clips"
NEGATIVE_DIR = "Parsed_Not_Capuchinbird_Clips"
FOREST_DIR = "Forest Recordings"
BACKGROUNDS_DIR = "Forest Backgrounds"
LABEL_DIRS = ((POSITIVE_DIR, 1), (NEGATIVE_DIR, 0))

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT)
# About three groups in ten go to eval: the real data has only 34 call groups, of very different sizes,
# and a smaller share can leave too few eval calls to measure recall.
DEFAULT_EVAL_PERCENT = 30

_CLIP_NUMBER = re.compile(r"-\d+$")


@dataclasses.dataclass(frozen=True)
class LabelledClip:
    path: str
    label: int
    group: str
    offset_seconds: float = 0.0  # where the clip starts in its file (reviewed snippets carry context)


def group_of(filename: str) -> str:
    """The source group of a clip file: its name without the `-<n>` clip number and extension.

    'XC114131-3.flac' -> 'XC114131'; 'crickets-chirping-noise-12.wav' -> 'crickets-chirping-noise'.
    """
    stem = os.path.splitext(os.path.basename(filename))[0]
    return _CLIP_NUMBER.sub("", stem)


def split_of(group: str, eval_percent: int = DEFAULT_EVAL_PERCENT, fold: Optional[Tuple[int, int]] = None) -> str:
    """'train' or 'eval' for a group, from a hash that is the same on every machine and run.

    fold=(k, n): grouped k-fold cross-validation instead: the group is in eval for exactly one of the
    n folds (its hash modulo n), and eval_percent is ignored.
    """
    if fold is not None:
        k, n = fold
        return EVAL_SPLIT if fold_of(group, n) == k else TRAIN_SPLIT
    return EVAL_SPLIT if _digest(group) % 100 < eval_percent else TRAIN_SPLIT


def fold_of(group: str, folds: int) -> int:
    """The fold (0..folds-1) a group belongs to in grouped k-fold cross-validation."""
    return _digest(group) % folds


def _digest(group: str) -> int:
    return int.from_bytes(hashlib.sha256(group.encode("utf-8")).digest()[:8], "big")


def list_labelled_clips(data_root: str) -> List[LabelledClip]:
    """Every file under the two labelled folders (recursive, hidden files skipped), sorted.

    Files of any type are listed: the loader rejects what is not audio, so it gets recorded
    as a failure instead of vanishing.
    """
    from components import files  # TensorFlow's file layer: local folders and gs:// alike

    clips = []
    for folder, label in LABEL_DIRS:
        top = os.path.join(data_root, folder)
        if not files.isdir(top):
            raise FileNotFoundError(f"{data_root} has no '{folder}/' folder (see README: data layout)")
        for path in sorted(files.walk_files(top)):
            clips.append(LabelledClip(path, label, group_of(path)))
    return clips
