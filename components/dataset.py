"""The dataset layout (the Kaggle Capuchinbird dataset's) and the grouped train/eval split.

    <root>/Parsed_Capuchinbird_Clips/<group>-<n>.<ext>      positives (label 1)
    <root>/Parsed_Not_Capuchinbird_Clips/<group>-<n>.<ext>  negatives (label 0)
    <root>/Forest Recordings/*.mp3                          unlabelled recordings to count (and, for the
                                                            student, windows the ensemble labels)
    <root>/Forest Backgrounds/*.mp3                         call-free recordings of the site (training, calibration)

Clips cut from one source (`XC<id>` or one sound effect) are near-duplicates, so the split is
decided per group, never per clip: otherwise eval scores leak. A site background recording is one
group (`site-<name>`), cut into non-call windows at ingestion.
"""

import dataclasses
import hashlib
import os
import re
from typing import List, Optional, Tuple

from model import features

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

SITE_GROUP_PREFIX = features.SITE_GROUP_PREFIX
UNLABELLED_GROUP_PREFIX = features.UNLABELLED_GROUP_PREFIX

_CLIP_NUMBER = re.compile(r"-\d+$")


@dataclasses.dataclass(frozen=True)
class LabelledClip:
    path: str
    label: int
    group: str
    offset_seconds: float = 0.0  # where the clip starts in its file (reviewed snippets carry context)
    # A call-free recording of the site: ingestion cuts it into non-call windows (site_background_clips).
    recording: bool = False
    # Its k-fold fold where it is dealt rather than hashed (site backgrounds: few, and whole recordings).
    dealt_fold: Optional[int] = None
    # Always in train, never eval (reviewed snippets: the eval split that blesses and calibrates stays the
    # curated clips, so one run's eval is comparable with the last blessed model's).
    train_only: bool = False


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


def clip_fold(clip: LabelledClip, folds: int) -> int:
    """A clip's fold: dealt (site backgrounds), else its group's hash."""
    return clip.dealt_fold % folds if clip.dealt_fold is not None else fold_of(clip.group, folds)


def clip_split(clip: LabelledClip, eval_percent: int = DEFAULT_EVAL_PERCENT,
               fold: Optional[Tuple[int, int]] = None) -> str:
    """'train' or 'eval' for a clip: split_of its group, except that a train-only clip is in train and in
    k-fold a dealt clip follows its fold."""
    if clip.train_only:
        return TRAIN_SPLIT
    if fold is not None and clip.dealt_fold is not None:
        return EVAL_SPLIT if clip_fold(clip, fold[1]) == fold[0] else TRAIN_SPLIT
    return split_of(clip.group, eval_percent, fold)


def site_background_clips(paths: List[str]) -> List[LabelledClip]:
    """Call-free site recordings as non-call sources, one group each. In k-fold they are dealt in turn
    (the i-th by name to fold i mod n), which keeps 15 recordings at 3 per fold where hashing would not."""
    return [LabelledClip(path, 0, SITE_GROUP_PREFIX + os.path.splitext(os.path.basename(path))[0],
                         recording=True, dealt_fold=index)
            for index, path in enumerate(sorted(paths))]


def unlabelled_recording_clips(paths: List[str]) -> List[LabelledClip]:
    """Recordings of the site nobody labelled, one group each, cut into windows at ingestion and always in
    train: only the student learns from them, from the ensemble's frame probabilities (model/model.py).
    Their label (0) is a placeholder that training never reads (augment.is_unlabelled)."""
    return [LabelledClip(path, 0, UNLABELLED_GROUP_PREFIX + os.path.splitext(os.path.basename(path))[0],
                         recording=True, train_only=True)
            for path in sorted(paths)]


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
