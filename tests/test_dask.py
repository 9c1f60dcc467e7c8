"""The counting and ingestion jobs on a real dask.distributed cluster (a scheduler and two worker processes on
this machine) give what they give on the DirectRunner; pipeline/dask_cluster.py and components/on_dask.py."""

import csv
import os
import shutil

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from components import counting, dataset, ingest, on_dask
from model import features
from pipeline import dask_cluster
from runners import count_calls, ingest_clips
from tests.helpers import tone, write_audio
from tests.test_ingest import _read_examples

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler():
    """A scheduler and 2 single-threaded worker processes, as `dask scheduler` + `dask worker` would start."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    yield cluster.scheduler_address
    cluster.close()


def test_dask_is_recognised_by_either_name_and_given_the_path_beam_needs():
    assert on_dask.runs_on_dask(["--runner=DaskRunner"]) and on_dask.runs_on_dask(["--runner", on_dask.DASK_RUNNER])
    assert not on_dask.runs_on_dask([]) and not on_dask.runs_on_dask(["--runner=DataflowRunner"])
    assert dask_cluster.with_full_runner_name(["--runner", "DaskRunner", "--x=1"]) == ["--runner", on_dask.DASK_RUNNER,
                                                                                       "--x=1"]
    assert dask_cluster.with_full_runner_name(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]
    # Counting's local defaults (DirectRunner threads) stay off Dask.
    assert counting.with_local_parallelism(["--runner=DaskRunner"]) == ["--runner=DaskRunner"]


class _OddsTaggedFn(beam.DoFn):
    def process(self, number):
        yield beam.pvalue.TaggedOutput("odd", number) if number % 2 else number


def _split_numbers(pipeline):
    outputs = pipeline | beam.Create(range(6)) | on_dask.SplitOutputs(_OddsTaggedFn(), "odd", main="even")
    return outputs["even"], outputs["odd"]


def test_split_outputs_keeps_a_dofns_outputs_apart_like_with_outputs():
    with test_pipeline.TestPipeline() as pipeline:
        even, odd = _split_numbers(pipeline)
        assert_that(even, equal_to([0, 2, 4]), label="Even")
        assert_that(odd, equal_to([1, 3, 5]), label="Odd")


def test_split_outputs_keeps_them_apart_on_dask(scheduler, tmp_path):
    # The DaskRunner computes the last leaf only: the two outputs meet in a Flatten, keyed by where they went.
    args = dask_cluster.with_full_runner_name(["--runner=DaskRunner", f"--dask_client_address={scheduler}"])
    pipeline = beam.Pipeline(options=PipelineOptions(args))
    even, odd = _split_numbers(pipeline)
    _ = ((even | "KeyEven" >> beam.Map(lambda n: ("even", n)), odd | "KeyOdd" >> beam.Map(lambda n: ("odd", n)))
         | beam.Flatten() | beam.Map(lambda pair, out=str(tmp_path): open(os.path.join(out, "%s-%d" % pair), "w").close()))
    result = pipeline.run()
    result.wait_until_finish()
    result.client.close()
    assert sorted(os.listdir(tmp_path)) == ["even-0", "even-2", "even-4", "odd-1", "odd-3", "odd-5"]


def _read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def recordings(trained_pipeline, tmp_path_factory):
    """The small default data's recordings, a corrupt one and an empty file.

    The corrupt file is a flac: libmpg123 decodes random bytes after an mp3 header differently from one
    process to the next (garbage, non-finite samples or an error), libFLAC rejects them the same way each time.
    """
    folder = tmp_path_factory.mktemp("dask_recordings")
    forest = os.path.join(trained_pipeline[0], dataset.FOREST_DIR)
    for name in os.listdir(forest):
        shutil.copy(os.path.join(forest, name), folder / name)
    with open(write_audio(str(folder / "corrupt.flac"), tone(700, 10.0, 44_100), 44_100), "rb") as f:
        header = f.read(300)
    (folder / "corrupt.flac").write_bytes(header + np.random.default_rng(2).bytes(50_000))
    (folder / "empty.wav").write_bytes(b"")
    return str(folder)


def _models_loaded() -> int:
    from components.counting import scorer

    return len(scorer.loaded_models())


def test_counting_on_two_dask_workers_gives_the_directrunners_tables(trained_pipeline, recordings, scheduler,
                                                                     tmp_path):
    common = ["--model", os.path.join(trained_pipeline[1], "serving_model"), "--recordings", recordings]
    direct, dask = str(tmp_path / "direct"), str(tmp_path / "dask")

    count_calls.run(common + ["--output-dir", direct])
    summary = count_calls.run(common + ["--output-dir", dask, "--runner=DaskRunner",
                                        f"--dask_client_address={scheduler}"])

    for name in (counting.COUNTS_CSV, counting.DETECTIONS_CSV, counting.FAILURES_CSV, counting.SELECTIONS_TXT):
        assert _read_rows(os.path.join(dask, name)) == _read_rows(os.path.join(direct, name)), name
    failures = dict(_read_rows(os.path.join(dask, counting.FAILURES_CSV))[1:])
    assert set(map(os.path.basename, failures)) == {"corrupt.flac", "empty.wav"}
    assert failures[os.path.join(recordings, "corrupt.flac")].startswith("corrupt audio data")
    assert summary["counted"] == len(os.listdir(recordings)) - 2 and summary["calls"] > 0
    # Both worker processes scored recordings (each loaded the model), and the runner closed its client.
    with distributed.Client(scheduler) as client:
        loaded = client.run(_models_loaded)
    assert len(loaded) == 2 and all(loaded.values()), loaded
    with pytest.raises(ValueError):
        distributed.default_client()


def _examples_by_source(output_dir):
    keys = (features.SOURCE_KEY, features.LABEL_KEY, features.GROUP_KEY, features.AUDIO_KEY, features.AUDIO_MP3_KEY)
    return {split: sorted(tuple(np.asarray(e[key]).tobytes() for key in keys) for e in _read_examples(output_dir, split))
            for split in dataset.SPLITS}


def test_ingestion_on_a_local_dask_cluster_writes_the_directrunners_examples(tiny_dataset, tmp_path):
    root = str(tmp_path / "clips")
    shutil.copytree(tiny_dataset, root)
    negatives = os.path.join(root, dataset.NEGATIVE_DIR)
    with open(os.path.join(negatives, "corrupt-0.flac"), "wb") as f:
        f.write(b"fLaC" + np.random.default_rng(3).bytes(20_000))
    direct, dask = str(tmp_path / "direct"), str(tmp_path / "dask")

    expected = ingest_clips.run(["--data-root", root, "--output-dir", direct])
    # No scheduler given: the runner starts a LocalCluster of two worker processes and closes it.
    summary = ingest_clips.run(["--data-root", root, "--output-dir", dask, "--runner=DaskRunner", "--dask_workers=2"])

    assert summary["clips"] == expected["clips"] and summary["failures"] == expected["failures"] == 1
    assert _examples_by_source(dask) == _examples_by_source(direct)
    assert sorted(_read_rows(os.path.join(dask, ingest.FAILURES_CSV))) == sorted(
        _read_rows(os.path.join(direct, ingest.FAILURES_CSV)))
    assert sorted(os.listdir(dask)) == sorted(os.listdir(direct))  # the shards' work folder is gone
    with pytest.raises(ValueError):
        distributed.default_client()
