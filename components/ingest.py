"""Clip ingestion: labelled audio files → gzipped TFRecords of 3 s 16 kHz waveforms, split by group.

    OUT/train/clips-*.tfrecord.gz   tf.Example {audio, audio_mp3, label, source, group}
                                    (clips, and windows of the site's call-free backgrounds as non-calls)
    OUT/eval/clips-*.tfrecord.gz
    OUT/failures.csv                path,reason for every file that could not be decoded
    OUT/summary.json                clips per split and label, failures

`IngestClips` is the composite transform; `run_ingestion` lists the files, runs it and returns the
summary. A bad file never stops the job: it is counted and written to failures.csv.
"""

import csv
import io
import json
import logging
import os
import time
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from components import audio, dataset, files
from components.reviewed import reviewed_clips
from model import features

FAILURES_TAG = "failures"
FAILURES_CSV = "failures.csv"
SUMMARY_JSON = "summary.json"
RECORD_PREFIX = "clips"
RECORD_SUFFIX = ".tfrecord.gz"
_METRICS_NAMESPACE = "ingest"
# Bump when the records' content changes, so earlier ingestions are redone (2: the mp3 round trip).
_RECORD_VERSION = 2
LABEL_NAMES = {1: "call", 0: "not_call"}
SITE_WINDOWS = "site_windows"  # of the not_call examples, those cut from site backgrounds
UNLABELLED_WINDOWS = "unlabelled_windows"  # and those cut from unlabelled recordings (the student's)


def _counter_name(split: str, label: int) -> str:
    return f"{split}_{LABEL_NAMES[label]}"


class DecodeClipFn(beam.DoFn):
    """LabelledClip → (split, serialized tf.Example); undecodable files go to the failures output."""

    def __init__(self, eval_percent: int, pad: str, fold: Optional[Tuple[int, int]] = None):
        self._eval_percent = eval_percent
        self._pad = pad
        self._fold = fold
        self._failed = Metrics.counter(_METRICS_NAMESPACE, "failed")

    def process(self, clip: dataset.LabelledClip):
        try:
            if clip.recording:
                windows = list(site_windows(audio.load_audio(clip.path)))
            else:
                windows = [(0.0, audio.load_clip(clip.path, self._pad, clip.offset_seconds))]
        except audio.AudioLoadError as error:
            logging.warning("Skipping %s", error)
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(FAILURES_TAG, (clip.path, error.reason))
            return
        split = dataset.clip_split(clip, self._eval_percent, self._fold)
        name = os.path.basename(clip.path)
        for start, waveform in windows:
            for counter in example_counters(split, clip):
                Metrics.counter(_METRICS_NAMESPACE, counter).inc()
            source = f"{name}@{start:g}s" if clip.recording else name
            yield split, _example(waveform, clip.label, source, clip.group)


def example_counters(split: str, clip: dataset.LabelledClip) -> List[str]:
    """The summary's counters one example of `clip` adds to: its split and label, and whether it is a window
    of a site background (what training takes as site: augment.is_site) or of an unlabelled recording
    (augment.is_unlabelled)."""
    counters = [_counter_name(split, clip.label)]
    if clip.group.startswith(dataset.SITE_GROUP_PREFIX):
        counters.append(f"{split}_{SITE_WINDOWS}")
    if clip.group.startswith(dataset.UNLABELLED_GROUP_PREFIX):
        counters.append(f"{split}_{UNLABELLED_WINDOWS}")
    return counters


def site_windows(samples):
    """(start s, 3 s window) of a call-free site recording, one every SITE_WINDOW_STEP_SECONDS; a
    recording shorter than a window gives one, zero-padded."""
    step = int(features.SITE_WINDOW_STEP_SECONDS * features.SAMPLE_RATE)
    for begin in range(0, max(1, len(samples) - features.CLIP_SAMPLES + 1), step):
        window = audio.fixed_length(samples[begin : begin + features.CLIP_SAMPLES], features.CLIP_SAMPLES,
                                    features.PAD_BACK)
        yield begin / features.SAMPLE_RATE, window


def _example(waveform, label: int, source: str, group: str) -> bytes:
    import tensorflow as tf  # heavy: imported on the worker, not at pipeline construction

    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                features.AUDIO_KEY: _floats_feature(waveform),
                features.AUDIO_MP3_KEY: _floats_feature(audio.mp3_round_trip(waveform)),
                features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                features.SOURCE_KEY: _bytes_feature(source),
                features.GROUP_KEY: _bytes_feature(group),
            }
        )
    )
    return example.SerializeToString()


def _floats_feature(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _bytes_feature(text: str):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))


def format_csv_row(values: Iterable) -> str:
    """One CSV line (quoted where needed, no newline), for Beam's text sink."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


class IngestClips(beam.PTransform):
    """PCollection[LabelledClip] → TFRecords per split under `output_dir`, and failures.csv."""

    def __init__(self, output_dir: str, eval_percent: int, pad: str, fold: Optional[Tuple[int, int]] = None):
        super().__init__()
        self._output_dir = output_dir
        self._eval_percent = eval_percent
        self._pad = pad
        self._fold = fold

    def expand(self, clips):
        decoded = clips | "Decode" >> beam.ParDo(DecodeClipFn(self._eval_percent, self._pad, self._fold)).with_outputs(
            FAILURES_TAG, main="examples"
        )
        for split in dataset.SPLITS:
            _ = (
                decoded.examples
                | f"Select{split.title()}" >> beam.Filter(lambda keyed, s=split: keyed[0] == s)
                | f"Drop{split.title()}Key" >> beam.Values()
                | f"Write{split.title()}"
                >> beam.io.WriteToTFRecord(
                    os.path.join(self._output_dir, split, RECORD_PREFIX), file_name_suffix=RECORD_SUFFIX
                )
            )
        return (
            decoded[FAILURES_TAG]
            | "FormatFailures" >> beam.Map(format_csv_row)
            | "WriteFailures"
            >> beam.io.WriteToText(
                os.path.join(self._output_dir, FAILURES_CSV), header="path,reason", shard_name_template=""
            )
        )


def run_ingestion(
    data_root: str,
    output_dir: str,
    beam_args: Optional[List[str]] = None,
    eval_percent: int = dataset.DEFAULT_EVAL_PERCENT,
    pad: str = features.DEFAULT_PAD,
    fold: Optional[Tuple[int, int]] = None,
    held_out_fold: Optional[int] = None,
    reviewed: Optional[str] = None,
    backgrounds: Optional[str] = None,
    unlabelled: Optional[str] = None,
) -> Dict:
    """Ingests every labelled clip under `data_root` into `output_dir` and returns the summary.

    Earlier TFRecords in `output_dir` are replaced, so a re-run never mixes two ingestions; when
    neither the files nor the settings changed since the last ingestion there, nothing is rewritten.

    Args:
      data_root: a folder in the dataset layout (see components/dataset.py).
      output_dir: where the TFRecords, failures.csv and summary.json go.
      beam_args: Beam pipeline options (runner, workers, ...); default: DirectRunner in memory.
      eval_percent: share of groups (not clips) that go to eval.
      pad: where short clips get their zeros: 'front' (tutorial) or 'back'.
      fold: (k, n) for grouped k-fold cross-validation: eval is fold k of n (see dataset.split_of).
      held_out_fold: with `fold`, the groups of this fold are left out of both splits: a test set that
        nothing of the run (training, the Evaluator, calibration) has seen (bench/accuracy.py).
      reviewed: a review's labels CSV (runners/review.py): its labelled snippets are added as clips,
        grouped by recording (components/reviewed.py); the summary records the file and its hash.
      backgrounds: a folder or glob of call-free recordings of the site: each becomes a non-call group,
        cut into windows (site_windows), which training plants calls into and mixes under non-calls
        (model/augment.py). In k-fold they are dealt to folds in turn (dataset.site_background_clips).
      unlabelled: a folder or glob of unlabelled recordings of the site: cut into windows the same way,
        always in train (in k-fold too: they are nobody's test), and counted as not_call, but only the
        student learns from them, from the ensemble's probabilities (dataset.unlabelled_recording_clips).

    Returns:
      {'clips': {split: {label name: n}}, 'failures': n, 'files': n, 'wall_seconds': s, ...}.
    """
    clips = dataset.list_labelled_clips(data_root)
    if backgrounds:
        from components.counting import list_recordings

        clips += dataset.site_background_clips(list_recordings(backgrounds))
    if held_out_fold is not None:
        if fold is None or not 0 <= held_out_fold < fold[1] or held_out_fold == fold[0]:
            raise ValueError(f"held_out_fold {held_out_fold} needs a k-fold split of which it is another fold")
        clips = [clip for clip in clips if dataset.clip_fold(clip, fold[1]) != held_out_fold]
    if unlabelled:
        from components.counting import list_recordings

        clips += dataset.unlabelled_recording_clips(list_recordings(unlabelled))
    review = None
    if reviewed:
        added, review = reviewed_clips(reviewed)
        clips = clips + added
    # Labels come from the folders, so the paths cover them; a review's labels, from its hash.
    settings = f"{eval_percent}|{fold}|{held_out_fold}|{pad}|{_RECORD_VERSION}"
    site = [clip.path for clip in clips if clip.recording and clip.group.startswith(dataset.SITE_GROUP_PREFIX)]
    if any(clip.recording for clip in clips):  # only then, so ingestions without (and the pipeline's cache) stay valid
        settings += f"|site every {features.SITE_WINDOW_STEP_SECONDS:g} s"
    fingerprint = files.fingerprint([clip.path for clip in clips],
                                    settings + (f"|{review['sha256']}" if review else ""))
    previous = _previous_summary(output_dir)
    if previous and previous.get("fingerprint") == fingerprint:
        # Same files, same settings: keep the records, so the pipeline's cache stays valid too.
        return {**previous, "up_to_date": True}
    from components import on_dask  # it builds on this module

    for folder in (*dataset.SPLITS, on_dask.WORK_DIR):
        if files.isdir(os.path.join(output_dir, folder)):
            files.rmtree(os.path.join(output_dir, folder))
    files.makedirs(output_dir)
    logging.info("Ingesting %d files from %s into %s", len(clips), data_root, output_dir)
    started = time.time()
    # On Dask, shards written by the ParDo and their receipts stand in for the sinks and the counters.
    dask = on_dask.runs_on_dask(beam_args)
    ingest_clips = (on_dask.IngestClipsInShards if dask else IngestClips)(output_dir, eval_percent, pad, fold)
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args or []))
    _ = pipeline | "ListClips" >> beam.Create(clips) | "Ingest" >> ingest_clips
    result = pipeline.run()
    result.wait_until_finish()
    counters = on_dask.read_receipts(output_dir, len(clips)) if dask else {
        metric.key.metric.name: metric.committed
        for metric in result.metrics().query(MetricsFilter().with_namespace(_METRICS_NAMESPACE))["counters"]
    }
    summary = {
        "data_root": os.path.abspath(data_root),
        "files": len(clips),
        "clips": {
            split: {name: int(counters.get(_counter_name(split, label), 0)) for label, name in LABEL_NAMES.items()}
            for split in dataset.SPLITS
        },
        SITE_WINDOWS: {split: int(counters.get(f"{split}_{SITE_WINDOWS}", 0)) for split in dataset.SPLITS},
        UNLABELLED_WINDOWS: {split: int(counters.get(f"{split}_{UNLABELLED_WINDOWS}", 0)) for split in dataset.SPLITS},
        "site_backgrounds": len(site),
        "failures": int(counters.get("failed", 0)),
        "eval_percent": eval_percent,
        "fold": list(fold) if fold else None,
        "held_out_fold": held_out_fold,
        "pad": pad,
        "reviewed": review,
        "wall_seconds": round(time.time() - started, 1),
        "fingerprint": fingerprint,
    }
    with files.open_file(os.path.join(output_dir, SUMMARY_JSON), "w") as f:
        f.write(json.dumps(summary, indent=2))
    return summary


def _previous_summary(output_dir: str) -> Optional[Dict]:
    try:
        with files.open_file(os.path.join(output_dir, SUMMARY_JSON)) as f:
            return json.loads(f.read())
    except Exception:  # missing or unreadable: ingest afresh
        return None


def summary_line(summary: Dict, output_dir: str) -> str:
    """'Ingested 270 clips in 12.3 s — train: 96 call / 120 not_call; eval: ...; 0 failures → out/'."""
    clips = summary["clips"]
    total = sum(sum(per_label.values()) for per_label in clips.values())
    splits = "; ".join(
        f"{split}: " + " / ".join(f"{n} {name}" for name, n in per_label.items()) for split, per_label in clips.items()
    )
    failures = summary["failures"]
    where = f" (see {os.path.join(output_dir, FAILURES_CSV)})" if failures else ""
    done = "Up to date (nothing changed):" if summary.get("up_to_date") else "Ingested"
    took = "" if summary.get("up_to_date") else f" in {summary['wall_seconds']} s"
    unlabelled = sum(summary.get(UNLABELLED_WINDOWS, {}).values())
    splits += f" (of them {unlabelled} windows of unlabelled recordings, for the student)" if unlabelled else ""
    return (
        f"{done} {total} clips{took} — {splits}; "
        f"{failures} failure{'s' if failures != 1 else ''}{where} → {output_dir}"
    )
