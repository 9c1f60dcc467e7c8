"""components/ingest.py: the Beam ingestion job writes grouped train/eval TFRecords and lists failures."""

import csv
import glob
import json
import os
import shutil

import numpy as np
import pytest

from components import dataset, ingest
from model import features
from tests.helpers import REAL_DATA_ROOT, requires_real_data


def _read_examples(output_dir: str, split: str):
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(output_dir, split, "*" + ingest.RECORD_SUFFIX)))
    spec = {
        features.AUDIO_KEY: tf.io.FixedLenFeature([features.CLIP_SAMPLES], tf.float32),
        features.AUDIO_MP3_KEY: tf.io.FixedLenFeature([features.CLIP_SAMPLES], tf.float32),
        features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        features.SOURCE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.GROUP_KEY: tf.io.FixedLenFeature([], tf.string),
    }
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [
        {key: value.numpy() for key, value in tf.io.parse_single_example(record, spec).items()}
        for record in records
    ]


@pytest.fixture(scope="module")
def ingested(tiny_dataset, tmp_path_factory):
    """The tiny dataset plus three bad files, ingested once for all the tests below."""
    root = str(tmp_path_factory.mktemp("with_bad_files"))
    shutil.copytree(tiny_dataset, root, dirs_exist_ok=True)
    negatives = os.path.join(root, dataset.NEGATIVE_DIR)
    good_flac = next(n for n in sorted(os.listdir(negatives)) if n.endswith(".flac"))
    with open(os.path.join(negatives, good_flac), "rb") as f:
        header = f.read(300)
    with open(os.path.join(negatives, "corrupt-0.flac"), "wb") as f:
        f.write(header + os.urandom(30_000))
    open(os.path.join(root, dataset.POSITIVE_DIR, "empty-0.wav"), "wb").close()
    with open(os.path.join(negatives, "text-0.mp3"), "w") as f:
        f.write("not audio at all\n" * 200)
    output_dir = str(tmp_path_factory.mktemp("ingested"))
    summary = ingest.run_ingestion(root, output_dir)
    return root, output_dir, summary


def test_every_good_clip_is_written_once_with_its_label_and_group(ingested):
    root, output_dir, summary = ingested
    examples = {split: _read_examples(output_dir, split) for split in dataset.SPLITS}
    good = [c for c in dataset.list_labelled_clips(root) if c.group not in ("corrupt", "empty", "text")]

    written = sorted(e[features.SOURCE_KEY].decode() for split in examples.values() for e in split)
    assert written == sorted(os.path.basename(c.path) for c in good)
    for split, split_examples in examples.items():
        for example in split_examples:
            group = example[features.GROUP_KEY].decode()
            assert dataset.split_of(group) == split
            assert example[features.AUDIO_KEY].shape == (features.CLIP_SAMPLES,)
            assert np.abs(example[features.AUDIO_KEY]).max() > 0
            # Beside each clip, its mp3 round trip: the same sound, aligned, not the same samples.
            clip, mp3 = example[features.AUDIO_KEY], example[features.AUDIO_MP3_KEY]
            assert np.corrcoef(clip, mp3)[0, 1] > 0.9 and not np.array_equal(clip, mp3)
            name = example[features.SOURCE_KEY].decode()
            assert example[features.LABEL_KEY] == (1 if name.startswith("synth-call") else 0)
            assert dataset.group_of(name) == group


def test_no_group_is_on_both_sides(ingested):
    _, output_dir, _ = ingested
    groups = {
        split: {e[features.GROUP_KEY] for e in _read_examples(output_dir, split)} for split in dataset.SPLITS
    }
    assert groups["train"] and groups["eval"]
    assert not groups["train"] & groups["eval"]


def test_summary_counts_clips_per_split_and_label(ingested):
    root, output_dir, summary = ingested
    expected = {split: {"call": 0, "not_call": 0} for split in dataset.SPLITS}
    for clip in dataset.list_labelled_clips(root):
        if clip.group not in ("corrupt", "empty", "text"):
            expected[dataset.split_of(clip.group)][ingest.LABEL_NAMES[clip.label]] += 1
    assert summary["clips"] == expected
    assert summary["failures"] == 3
    assert summary["files"] == sum(sum(v.values()) for v in expected.values()) + 3
    with open(os.path.join(output_dir, ingest.SUMMARY_JSON)) as f:
        assert json.load(f)["clips"] == expected
    line = ingest.summary_line(summary, output_dir)
    assert f"train: {expected['train']['call']} call / {expected['train']['not_call']} not_call" in line
    assert "3 failures" in line


def test_bad_files_land_in_failures_with_their_reason(ingested):
    _, output_dir, _ = ingested
    with open(os.path.join(output_dir, ingest.FAILURES_CSV), newline="") as f:
        failures = {os.path.basename(row["path"]): row["reason"] for row in csv.DictReader(f)}
    assert set(failures) == {"corrupt-0.flac", "empty-0.wav", "text-0.mp3"}
    assert "empty" in failures["empty-0.wav"]
    assert "not audio" in failures["text-0.mp3"]
    assert "corrupt" in failures["corrupt-0.flac"]


@pytest.mark.e2e  # two ingestion jobs (see pytest.ini)
def test_a_rerun_replaces_the_records_instead_of_adding_to_them(tiny_dataset, tmp_path):
    output_dir = str(tmp_path / "out")
    first = ingest.run_ingestion(tiny_dataset, output_dir)
    record = glob.glob(os.path.join(output_dir, "train", "*"))[0]
    written = os.path.getmtime(record)
    unchanged = ingest.run_ingestion(tiny_dataset, output_dir)
    assert unchanged["up_to_date"] and unchanged["clips"] == first["clips"]
    assert os.path.getmtime(record) == written  # nothing rewritten: the pipeline cache stays valid
    second = ingest.run_ingestion(tiny_dataset, output_dir, eval_percent=50)
    assert not second.get("up_to_date")
    total = sum(len(_read_examples(output_dir, split)) for split in dataset.SPLITS)
    assert total == sum(sum(v.values()) for v in second["clips"].values()) == first["files"]
    with open(os.path.join(output_dir, ingest.FAILURES_CSV)) as f:
        assert f.read().strip() == "path,reason"


@requires_real_data
@pytest.mark.real_data
def test_real_original_wavs_ingest_without_failures(tmp_path):
    summary = ingest.run_ingestion(os.path.join(REAL_DATA_ROOT, "originals"), str(tmp_path))
    assert summary["failures"] == 0
    assert sum(sum(v.values()) for v in summary["clips"].values()) == summary["files"] > 0


@pytest.mark.e2e  # two ingestion jobs (see pytest.ini)
def test_clips_on_a_remote_file_system_ingest_like_local_ones(tiny_dataset, tmp_path):
    """TensorFlow's in-memory ram:// file system stands in for gs:// (no network in tests)."""
    import tensorflow as tf

    remote = "ram://ingest_test"
    for folder in (dataset.POSITIVE_DIR, dataset.NEGATIVE_DIR):
        tf.io.gfile.makedirs(f"{remote}/{folder}")
        for name in os.listdir(os.path.join(tiny_dataset, folder)):
            tf.io.gfile.copy(os.path.join(tiny_dataset, folder, name), f"{remote}/{folder}/{name}", overwrite=True)

    local = ingest.run_ingestion(tiny_dataset, str(tmp_path / "local"))
    from_remote = ingest.run_ingestion(remote, str(tmp_path / "remote"))

    assert from_remote["clips"] == local["clips"] and from_remote["failures"] == 0


def test_a_held_out_fold_is_in_neither_split(tiny_dataset, tmp_path):
    groups = {dataset.group_of(c.path) for c in dataset.list_labelled_clips(tiny_dataset)}
    held_out = {g for g in groups if dataset.fold_of(g, 3) == 2}
    assert held_out and held_out != groups

    summary = ingest.run_ingestion(tiny_dataset, str(tmp_path), fold=(0, 3), held_out_fold=2)

    written = {split: {e[features.GROUP_KEY].decode() for e in _read_examples(str(tmp_path), split)}
               for split in dataset.SPLITS}
    assert written[dataset.EVAL_SPLIT] == {g for g in groups if dataset.fold_of(g, 3) == 0}
    assert written[dataset.TRAIN_SPLIT] == {g for g in groups if dataset.fold_of(g, 3) == 1}
    assert summary["held_out_fold"] == 2
    with pytest.raises(ValueError, match="held_out_fold"):
        ingest.run_ingestion(tiny_dataset, str(tmp_path / "again"), fold=(2, 3), held_out_fold=2)


@pytest.mark.e2e  # a Beam ingestion job of its own
def test_reviewed_snippets_are_ingested_as_train_only_clips_grouped_by_recording(tiny_dataset, tmp_path):
    import soundfile as sf

    from components import review, reviewed
    from tests import review_helpers

    counts = review_helpers.make_counting_output(str(tmp_path / "site"))
    review_dir = str(tmp_path / "review")
    described = review_helpers.make_review(counts, review_dir)
    items = described["items"]
    labels = {item["id"]: review_helpers.truth_label(item) for item in items}
    labels[items[0]["id"]] = "unsure"  # left out, as are empty labels
    labels_csv = os.path.join(review_dir, review.REVIEW_CSV)
    with open(labels_csv, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(review.REVIEW_COLUMNS)
        writer.writerows([i["id"], i["recording"], i["start_s"], i["end_s"], i["score"], i["bin"], labels[i["id"]]]
                         for i in items)

    summary = ingest.run_ingestion(tiny_dataset, str(tmp_path / "out"), reviewed=labels_csv)

    written = {split: _read_examples(str(tmp_path / "out"), split) for split in dataset.SPLITS}
    from_review = [e for split in dataset.SPLITS for e in written[split]
                   if reviewed.GROUP_PREFIX in e[features.GROUP_KEY].decode()]
    wanted = [i for i in items if labels[i["id"]] in reviewed.LABEL_OF]
    assert len(from_review) == len(wanted) == len(items) - 1
    assert sum(e[features.LABEL_KEY] for e in from_review) == sum(labels[i["id"]] == "call" for i in wanted) > 0
    # Calls are grouped by recording; not-calls are site windows of their recording (carriers in training).
    assert {(e[features.GROUP_KEY].decode(), e[features.LABEL_KEY]) for e in from_review} == {
        ("review-site_a", 1), ("review-site_b", 1), ("site-review-site_a", 0), ("site-review-site_b", 0)}
    # All of them train, none in eval: eval stays the curated clips.
    assert not [e for e in written[dataset.EVAL_SPLIT] if reviewed.GROUP_PREFIX in e[features.GROUP_KEY].decode()]
    # Each clip is the 3 s of its snippet centred on the item, not the snippet's leading context.
    item = next(i for i in wanted if i["kind"] == "window")
    snippet, _ = sf.read(os.path.join(review_dir, item["audio"]), dtype="float32")
    offset = int(round((item["start_s"] + item["end_s"]) / 2 - 1.5 - item["snippet"][0]) * features.SAMPLE_RATE)
    clip = next(e for e in from_review if e[features.SOURCE_KEY].decode() == os.path.basename(item["audio"]))
    np.testing.assert_allclose(clip[features.AUDIO_KEY], snippet[offset : offset + features.CLIP_SAMPLES], atol=1e-4)
    assert summary["reviewed"]["calls"] + summary["reviewed"]["not_calls"] == len(wanted)
    assert summary["reviewed"]["left_out"] == 1 and summary["reviewed"]["sha256"]
    # The summary counts the reviewed not-calls as site windows, as training takes them.
    assert summary[ingest.SITE_WINDOWS] == {dataset.TRAIN_SPLIT: summary["reviewed"]["not_calls"], dataset.EVAL_SPLIT: 0}


def test_site_backgrounds_become_non_call_windows_dealt_by_recording(tiny_dataset, tmp_path):
    """Each call-free site recording is one non-call group cut into windows every SITE_WINDOW_STEP_SECONDS;
    in k-fold the i-th recording by name is in fold i mod n, so the held-out fold's never reach training.
    A corrupt background is listed as a failure and loses nothing else. Unlabelled recordings (the student's)
    are cut the same way, all into train whatever their fold, and counted apart."""
    backgrounds = str(tmp_path / "backgrounds")
    shutil.copytree(os.path.join(tiny_dataset, dataset.BACKGROUNDS_DIR), backgrounds)
    with open(os.path.join(backgrounds, "background_99.mp3"), "w") as f:
        f.write("not audio at all\n" * 200)
    names = sorted(os.listdir(backgrounds))  # background_00..02, background_99
    assert len(names) == 4
    output_dir = str(tmp_path / "out")

    forest = os.path.join(tiny_dataset, dataset.FOREST_DIR)
    recordings = sorted(n for n in os.listdir(forest) if n.endswith(features.AUDIO_EXTENSIONS))
    summary = ingest.run_ingestion(tiny_dataset, output_dir, fold=(0, 3), held_out_fold=1, backgrounds=backgrounds,
                                   unlabelled=forest)

    examples = {split: _read_examples(output_dir, split) for split in dataset.SPLITS}
    site = {split: [e for e in split_examples if e[features.GROUP_KEY].decode().startswith(dataset.SITE_GROUP_PREFIX)]
            for split, split_examples in examples.items()}
    # 40 s recordings: windows start at 0, 6, ..., 36 s: 7 each.
    windows = len(range(0, int(40.0 - features.CLIP_SECONDS) + 1, int(features.SITE_WINDOW_STEP_SECONDS)))
    # background_00 → fold 0 (eval), _01 → fold 1 (held out), _02 → fold 2 (train), _99 → fold 0 (corrupt).
    assert {e[features.GROUP_KEY].decode() for e in site[dataset.EVAL_SPLIT]} == {"site-background_00"}
    assert {e[features.GROUP_KEY].decode() for e in site[dataset.TRAIN_SPLIT]} == {"site-background_02"}
    assert len(site[dataset.EVAL_SPLIT]) == len(site[dataset.TRAIN_SPLIT]) == windows == 7
    assert summary[ingest.SITE_WINDOWS] == {dataset.TRAIN_SPLIT: windows, dataset.EVAL_SPLIT: windows}
    assert all(e[features.LABEL_KEY] == 0 for split in site.values() for e in split)
    sources = sorted(e[features.SOURCE_KEY].decode() for e in site[dataset.TRAIN_SPLIT])
    assert sources == sorted(f"background_02.mp3@{6 * i}s" for i in range(windows))
    # Windows are the recording's own audio, not silence.
    assert all(np.sqrt(np.mean(e[features.AUDIO_KEY] ** 2)) > 1e-3 for e in site[dataset.TRAIN_SPLIT])
    assert summary["failures"] == 1 and summary["site_backgrounds"] == 3  # background_99 and 01 are not ingested
    with open(os.path.join(output_dir, ingest.FAILURES_CSV)) as f:
        assert [row["path"] for row in csv.DictReader(f)] == [os.path.join(backgrounds, "background_99.mp3")]
    unlabelled = {split: [e for e in split_examples
                          if e[features.GROUP_KEY].decode().startswith(dataset.UNLABELLED_GROUP_PREFIX)]
                  for split, split_examples in examples.items()}
    assert not unlabelled[dataset.EVAL_SPLIT] and len(recordings) >= 2
    assert {e[features.GROUP_KEY].decode() for e in unlabelled[dataset.TRAIN_SPLIT]} == {
        dataset.UNLABELLED_GROUP_PREFIX + os.path.splitext(n)[0] for n in recordings}
    assert summary[ingest.UNLABELLED_WINDOWS] == {dataset.TRAIN_SPLIT: len(unlabelled[dataset.TRAIN_SPLIT]),
                                                 dataset.EVAL_SPLIT: 0}
    assert len(unlabelled[dataset.TRAIN_SPLIT]) >= len(recordings)
    # Every clip is still there.
    clips = [e for split in examples.values() for e in split
             if not e[features.GROUP_KEY].decode().startswith((dataset.SITE_GROUP_PREFIX,
                                                               dataset.UNLABELLED_GROUP_PREFIX))]
    kept = [c for c in dataset.list_labelled_clips(tiny_dataset) if dataset.fold_of(c.group, 3) != 1]
    assert len(clips) == len(kept)


def test_without_k_fold_site_backgrounds_split_like_groups(tiny_dataset, tmp_path):
    backgrounds = os.path.join(tiny_dataset, dataset.BACKGROUNDS_DIR)
    clips = dataset.site_background_clips([os.path.join(backgrounds, n) for n in os.listdir(backgrounds)])
    assert [c.group for c in clips] == ["site-background_00", "site-background_01", "site-background_02"]
    for percent in (0, 100):
        assert {dataset.clip_split(c, percent) for c in clips} == {
            dataset.TRAIN_SPLIT if percent == 0 else dataset.EVAL_SPLIT}
    assert [dataset.clip_split(c, fold=(2, 3)) for c in clips] == ["train", "train", "eval"]
