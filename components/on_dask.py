"""Beam job shapes that Beam's DaskRunner runs correctly, as every other runner does.

Beam 2.74's DaskRunner (apache_beam/runners/dask/) translates four primitives, Create, ParDo, GroupByKey and
Flatten, and passes everything else through unchanged. Three of its gaps shape our jobs:

- A ParDo's tagged outputs are not kept apart: its main and tagged outputs land in one Dask bag, and every
  consumer of any of them gets all of them. `SplitOutputs` emits each output as a (tag, value) pair on one
  output and picks each tag out with a ParDo of its own; the counting job uses it on every runner.
- Only the pipeline's last leaf is computed, so the other branches of a job with several sinks never run;
  and Beam's file sinks read their side inputs by recomputing them inside tasks. `IngestClipsInShards`
  writes each bundle's examples to TFRecord shards from the ParDo itself: one leaf, no sink.
- `PipelineResult.metrics()` raises NotImplementedError. Each shard's bundle leaves a receipt (its clips
  per split and label, its failures) that `read_receipts` adds up in place of Beam's counters.
"""

import csv
import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from components import dataset, files, ingest

# Beam knows the runner by this path only: `--runner=DaskRunner` is not one of its short names.
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Ingestion on Dask: shards and receipts are written here first, then moved into place.
WORK_DIR = "_shards_in_progress"


def runs_on_dask(beam_args: Optional[Sequence[str]]) -> bool:
    """Whether these Beam args pick the DaskRunner (by its short or its full name)."""
    runner = PipelineOptions(list(beam_args or [])).view_as(StandardOptions).runner or ""
    return runner.rsplit(".", 1)[-1].lower() in ("dask", "daskrunner")


def _select(pair, tag):
    if pair[0] == tag:
        yield pair[1]


class _OutputsAsPairsFn(beam.DoFn):
    """Runs another DoFn and emits each of its outputs as (tag, value), tag None for the main output.
    (The wrapped DoFn's finish_bundle must emit nothing.)"""

    def __init__(self, fn: beam.DoFn):
        self._fn = fn

    def setup(self):
        self._fn.setup()

    def start_bundle(self):
        self._fn.start_bundle()

    def process(self, element):
        for output in self._fn.process(element) or ():
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield output.tag, output.value
            else:
                yield None, output

    def finish_bundle(self):
        self._fn.finish_bundle()

    def teardown(self):
        self._fn.teardown()


class SplitOutputs(beam.PTransform):
    """PCollection → {name: PCollection}: what `ParDo(fn).with_outputs(*tags, main=main)` gives, in a shape
    every runner keeps apart (the DaskRunner does not separate a ParDo's tagged outputs).

    Args:
      fn: a DoFn that yields main outputs and `TaggedOutput`s.
      tags: its output tags.
      main: the name of its main output in the result.
    """

    def __init__(self, fn: beam.DoFn, *tags: str, main: str):
        super().__init__()
        self._fn = fn
        self._tags = tags
        self._main = main

    def expand(self, pcoll):
        pairs = pcoll | "Run" >> beam.ParDo(_OutputsAsPairsFn(self._fn))
        return {
            name: pairs | f"Select{name.title()}" >> beam.FlatMap(_select, tag)
            for name, tag in [(self._main, None), *((tag, tag) for tag in self._tags)]
        }


class WriteShardsFn(beam.DoFn):
    """LabelledClip → nothing: each bundle's examples go to one TFRecord shard per split, then a receipt.

    A shard is named by the clips of its bundle, so a bundle that Dask runs again (its worker was lost)
    replaces its own shard instead of adding one. Files are written under WORK_DIR and moved into place
    when the bundle ends, the receipt last: a receipt means its shards are whole.
    """

    def __init__(self, output_dir: str, eval_percent: int, pad: str, fold: Optional[Tuple[int, int]] = None):
        self._output_dir = output_dir
        self._decode = ingest.DecodeClipFn(eval_percent, pad, fold)

    def start_bundle(self):
        self._sources: List[str] = []
        self._writers: Dict[str, Tuple[str, object]] = {}  # split → (temporary path, writer)
        self._counters: Dict[str, int] = {}
        self._failures: List[Tuple[str, str]] = []

    def process(self, clip: dataset.LabelledClip):
        self._sources.append(clip.path)
        for output in self._decode.process(clip):
            if isinstance(output, beam.pvalue.TaggedOutput):
                self._failures.append(output.value)
                continue
            split, record = output
            self._writer(split).write(record)
            for name in ingest.example_counters(split, clip):
                self._counters[name] = self._counters.get(name, 0) + 1

    def _writer(self, split: str):
        if split not in self._writers:
            import tensorflow as tf

            files.makedirs(os.path.join(self._output_dir, WORK_DIR))
            temporary = os.path.join(self._output_dir, WORK_DIR, f"{split}-{os.getpid()}-{id(self)}.tmp")
            options = tf.io.TFRecordOptions(compression_type="GZIP")
            self._writers[split] = temporary, tf.io.TFRecordWriter(temporary, options=options)
        return self._writers[split][1]

    def finish_bundle(self):
        if not self._sources:
            return
        name = hashlib.sha256("\n".join(sorted(self._sources)).encode()).hexdigest()[:16]
        for split, (temporary, writer) in self._writers.items():
            writer.close()
            files.makedirs(os.path.join(self._output_dir, split))
            files.replace(temporary, os.path.join(self._output_dir, split,
                                                  f"{ingest.RECORD_PREFIX}-{name}{ingest.RECORD_SUFFIX}"))
        receipt = {"files": len(self._sources), "counters": self._counters, "failures": self._failures}
        temporary = os.path.join(self._output_dir, WORK_DIR, f"{name}.json.tmp{os.getpid()}")
        files.makedirs(os.path.dirname(temporary))
        with files.open_file(temporary, "w") as f:
            f.write(json.dumps(receipt))
        files.replace(temporary, os.path.join(self._output_dir, WORK_DIR, f"{name}.json"))


class IngestClipsInShards(beam.PTransform):
    """PCollection[LabelledClip] → TFRecord shards per split under `output_dir`, written by the ParDo itself
    (the DaskRunner's shape of `ingest.IngestClips`); `read_receipts` then gives the counts and failures."""

    def __init__(self, output_dir: str, eval_percent: int, pad: str, fold: Optional[Tuple[int, int]] = None):
        super().__init__()
        self._fn = WriteShardsFn(output_dir, eval_percent, pad, fold)

    def expand(self, clips):
        return clips | "DecodeAndWriteShards" >> beam.ParDo(self._fn)


def read_receipts(output_dir: str, expected_files: int) -> Dict[str, int]:
    """Adds up the receipts of `IngestClipsInShards`: Beam's counters as `ingest.run_ingestion` reads them
    ({'train_call': n, ..., 'failed': n}). Writes failures.csv as the sink would, then removes WORK_DIR.

    Raises:
      RuntimeError: the receipts do not cover every clip (a bundle was lost).
    """
    work = os.path.join(output_dir, WORK_DIR)
    counters: Dict[str, int] = {}
    failures: List[Tuple[str, str]] = []
    covered = 0
    for name in sorted(files.listdir(work)):
        if name.endswith(".json"):
            with files.open_file(os.path.join(work, name)) as f:
                receipt = json.loads(f.read())
            covered += receipt["files"]
            failures.extend(tuple(failure) for failure in receipt["failures"])
            for key, value in receipt["counters"].items():
                counters[key] = counters.get(key, 0) + value
    if covered != expected_files:
        raise RuntimeError(f"the shards' receipts in {work} cover {covered} of {expected_files} clips")
    counters["failed"] = len(failures)
    with files.open_file(os.path.join(output_dir, ingest.FAILURES_CSV), "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "reason"])
        writer.writerows(sorted(failures))
    files.rmtree(work)
    return counters
