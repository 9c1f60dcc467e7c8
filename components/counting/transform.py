"""The counting Beam transform: `CountCalls` (recording paths → result dicts) and its steps.

Decode each recording (`DecodeRecordingFn`), score its chunks through Beam's RunInference
(`ChunkScorerHandler`), merge a recording's scores into calls (`MergeCallsFn`) and save its result as a
part file (`SaveResultFn`). Files, failures and audio seconds are Beam counters in METRICS_NAMESPACE.
"""

import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import soundfile as sf
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import ModelHandler, RunInference

from components import audio, on_dask
from components.counting import outputs, rules
from components.counting.config import CountingConfig
from components.counting.scorer import RecordingScorer, ScoredChunk
from components.counting.windows import Chunk, recording_chunk, split_chunk, whole_chunk, window_starts
from model import features

METRICS_NAMESPACE = "counting"
# MPEG-1 layer III's highest bitrate: an mp3 of N bytes lasts at least N * 8 / this many seconds, whatever
# its header says (libmpg123 decodes every frame; a 6-hour file whose header said 3 minutes was decoded
# whole, and its samples filled the memory).
MP3_MAX_BITS_PER_SECOND = 320_000
FAILED_TAG = "failed"
CHUNKS_TAG = "chunks"
_log = logging.getLogger("capuchin.counting")


class _HideBeamMemoryWarning(logging.Filter):
    """Beam 2.74 imports `resource` in the same try block as a module that needs torch, so without torch
    RunInference takes `resource` for missing and warns so at every model load; all it loses is its
    model-memory metric. That one warning is dropped, so users see the job's own lines only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Resource module is not available")


logging.getLogger().addFilter(_HideBeamMemoryWarning())  # RunInference warns through the root logger


def counters(result: beam.runners.runner.PipelineResult) -> Dict[str, int]:
    """The counting job's counters in a finished pipeline's result, summed over its steps."""
    totals: Dict[str, int] = {}
    for metric in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        totals[metric.key.metric.name] = totals.get(metric.key.metric.name, 0) + metric.committed
    return totals


class DecodeRecordingFn(beam.DoFn):
    """recording path → (recording, Chunk): the whole recording, or tagged CHUNKS_TAG, the chunks of a
    long one for other workers to score; a file that cannot be counted → its failed result, tagged
    FAILED_TAG. Counts files, failures and audio seconds.

    A local recording longer than one chunk by its header is never held whole: it is streamed through
    once for its exact length and loudness (`audio.measure_audio`), and its chunks go out as specs
    without samples, each decoded where it is scored (`load_chunk`), so memory stays flat whatever the
    recording's length.

    A local mp3 is read by libmpg123 (`audio.fast_decoder`); a file it fails on is read again by
    soundfile, which counts it or says why not. Its chunks are read by the decoder that measured it, so
    lengths and samples agree, and its result names that decoder.
    """

    def __init__(self, config: CountingConfig):
        self._config = config
        self._files = Metrics.counter(METRICS_NAMESPACE, "files")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "failed")
        self._audio_seconds = Metrics.counter(METRICS_NAMESPACE, "audio_seconds")

    def _windows(self, num_samples: int) -> int:
        return len(window_starts(num_samples, self._config.window_samples, self._config.hop_samples))

    def _measured_if_long(self, recording: str, decoder: str) -> Optional[audio.AudioLength]:
        """The length and RMS of a local recording of more than one chunk by its header (an mp3: or by its
        size); else None (to be decoded whole, as are remote files and files whose header cannot be read:
        load_audio says why)."""
        if "://" in recording:
            return None
        try:
            info = sf.info(recording)
        except Exception:  # noqa: BLE001 (any failure: decoding whole reports it)
            return None
        header_seconds = info.frames / max(info.samplerate, 1)
        if info.format == "MP3":  # a header can understate it: mp3s joined byte-wise keep the first one's
            header_seconds = max(header_seconds, os.path.getsize(recording) * 8 / MP3_MAX_BITS_PER_SECOND)
        if self._windows(int(header_seconds * features.SAMPLE_RATE)) <= self._config.chunk_windows:
            return None
        return audio.measure_audio(recording, decoder=decoder)

    def _read(self, recording: str, decoder: str) -> Tuple[Optional[audio.AudioLength], Optional[np.ndarray]]:
        """(its length and RMS, None) for a recording of more than one chunk, else (None, its samples)."""
        measured = self._measured_if_long(recording, decoder)
        if measured is not None and self._windows(measured.num_samples) <= self._config.chunk_windows:
            measured = None  # one chunk after all (the header's length was near): decoded whole
        return measured, (audio.load_audio(recording, decoder=decoder) if measured is None else None)

    def _read_fast_else_soundfile(self, recording: str) -> Tuple[str, Optional[audio.AudioLength],
                                                                  Optional[np.ndarray]]:
        """(decoder, *_read(recording, decoder)) with the fast decoder, or soundfile where that fails."""
        decoder = audio.fast_decoder(recording, self._config.band_hz)
        if decoder != audio.SOUNDFILE:
            try:
                return (decoder, *self._read(recording, decoder))
            except audio.AudioLoadError:
                pass  # soundfile decides: it reads the file, or its reason is the one reported
        return (audio.SOUNDFILE, *self._read(recording, audio.SOUNDFILE))

    def process(self, recording: str):
        self._files.inc()
        decoder = audio.SOUNDFILE
        try:
            decoder, measured, waveform = self._read_fast_else_soundfile(recording)
            num_samples = len(waveform) if measured is None else measured.num_samples
            seconds = num_samples / features.SAMPLE_RATE
            if num_samples < self._config.window_samples:
                raise audio.AudioLoadError(
                    recording, f"too short: {seconds:.2f} s, shorter than one {self._config.window_seconds:g} s window"
                )
        except audio.AudioLoadError as error:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(FAILED_TAG, {"recording": recording, "calls": None, "detections": [],
                                                        "seconds": 0.0, "reason": error.reason, "decoder": decoder})
            return
        self._audio_seconds.inc(round(seconds))
        if measured is None:
            whole = whole_chunk(recording, waveform, self._config, decoder)
        else:
            whole = recording_chunk(recording, num_samples, measured.rms, self._config, decoder=decoder)
        chunks = split_chunk(whole, self._config)
        if len(chunks) == 1:  # a silent long recording (no windows) keeps no samples either
            chunk = chunks[0]
            yield recording, chunk if chunk.samples is not None else dataclasses.replace(
                chunk, samples=np.zeros(0, dtype=np.float32))
            return
        for chunk in chunks:
            yield beam.pvalue.TaggedOutput(CHUNKS_TAG, (recording, chunk))


def load_chunk(keyed_chunk: Tuple[str, Chunk], window: int) -> Tuple[str, Chunk]:
    """(recording, chunk spec) → (recording, chunk) with its samples, decoded from the recording's file
    by the decoder that measured it (`audio.load_range`); a chunk that has its samples is passed on as it is."""
    recording, chunk = keyed_chunk
    if chunk.samples is None:
        samples = audio.load_range(recording, chunk.offset, chunk.end(window), decoder=chunk.decoder)
        chunk = dataclasses.replace(chunk, samples=samples)
    return recording, chunk


class ChunkScorerHandler(ModelHandler[Tuple[str, Chunk], Tuple[str, ScoredChunk], RecordingScorer]):
    """RunInference's model handler: (recording, Chunk) → (recording, ScoredChunk).

    `load_scorer` gives the RecordingScorer (counting: `scorer.warm_scorer`, the process's one warm
    scorer, so each RunInference step of every worker thread finds it loaded). A chunk is already a batch
    of windows for the model (SCORE_BATCH at a time), so RunInference gets one chunk per batch.
    """

    def __init__(self, load_scorer: Callable[[], RecordingScorer]):
        super().__init__()
        self._load_scorer = load_scorer

    def load_model(self) -> RecordingScorer:
        return self._load_scorer()

    def run_inference(self, batch: Sequence[Tuple[str, Chunk]], model: RecordingScorer,
                      inference_args: Optional[Dict] = None) -> Iterable[Tuple[str, ScoredChunk]]:
        return [(recording, model.score(chunk)) for recording, chunk in batch]

    def get_num_bytes(self, batch: Sequence[Tuple[str, Chunk]]) -> int:
        return sum(chunk.samples.nbytes for _, chunk in batch)  # not Beam's default: pickling the audio

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


class ScoreChunks(beam.PTransform):
    """PCollection[(recording, Chunk)] → PCollection[(recording, ScoredChunk)], through RunInference."""

    def __init__(self, handler: ChunkScorerHandler):
        super().__init__()
        self._handler = handler

    def expand(self, chunks):
        return (
            chunks
            | "OneChunkPerBatch" >> beam.Map(lambda keyed_chunk: [keyed_chunk])
            | "RunInference" >> RunInference(self._handler.with_no_batching())
        )


class MergeCallsFn(beam.DoFn):
    """(recording, scored chunks) → the recording's result dict; with `plots`, also its plot."""

    def __init__(self, config: CountingConfig, output_dir: Optional[str], plots: bool):
        self._config = config
        self._output_dir = output_dir
        self._plots = plots

    def process(self, keyed_chunks: Tuple[str, Iterable[ScoredChunk]]):
        recording, scored_chunks = keyed_chunks
        scored_chunks = list(scored_chunks)
        detections, times, track = rules.calls_in(scored_chunks, self._config)
        if self._plots:
            outputs.plot_recording(recording, times, track, detections, self._config, self._output_dir)
        yield {"recording": recording, "calls": len(detections), "detections": detections,
               "seconds": scored_chunks[0].seconds, "reason": None, "decoder": scored_chunks[0].decoder}


# Recordings finished and audio seconds counted by this process (all its worker threads).
_progress_lock = threading.Lock()
_progress_totals = {"done": 0, "seconds": 0.0}


class Progress:
    """'[done/total] name: outcome — audio hours so far, realtime rate, ETA h:mm:ss' lines, one per recording.

    Totals are this process's: exact on the local runners (threads share them); with several worker
    processes each reports its own share.
    """

    def __init__(self, total: int, already_done: int):
        self._total = total
        self._already_done = already_done
        self._started = time.time()
        with _progress_lock:  # a fresh count for this run (several runs may share a process, as in tests)
            _progress_totals.update(done=0, seconds=0.0)

    def log(self, result: Dict) -> None:
        with _progress_lock:
            _progress_totals["done"] += 1
            _progress_totals["seconds"] += result["seconds"]
            done, seconds = _progress_totals["done"], _progress_totals["seconds"]
        outcome = f"{result['calls']} calls" if result["reason"] is None else f"FAILED ({result['reason']})"
        elapsed = max(time.time() - self._started, 1e-6)
        # At this process's rate so far; the start-up (model loading) makes the first estimates high.
        eta = round((self._total - self._already_done - done) * elapsed / done)
        _log.info("[%d/%d] %s: %s — %.2f h of audio in %.0f s, %.0fx realtime, ETA %d:%02d:%02d",
                  self._already_done + done, self._total, os.path.basename(result["recording"]), outcome,
                  seconds / 3600, elapsed, seconds / elapsed, eta // 3600, eta // 60 % 60, eta % 60)


class SaveResultFn(beam.DoFn):
    """A recording's result → itself, saved as its part file where there is an output dir, and logged."""

    def __init__(self, output_dir: Optional[str], progress: Optional[Progress]):
        self._output_dir = output_dir
        self._progress = progress

    def process(self, result: Dict):
        if self._output_dir is not None:
            outputs.save_part(self._output_dir, result)
        if self._progress is not None:
            self._progress.log(result)
        yield result


class CountCalls(beam.PTransform):
    """PCollection[recording path] → PCollection[result dict], one per recording (failures included).

    Decoding is parallel across recordings; scoring is parallel across chunks, so one long recording
    is spread over many workers too. A recording of one chunk (most field recordings) is scored, merged
    and saved where it was decoded, with no shuffle of its samples or scores.

    Args:
      config: how recordings are windowed, scored and turned into calls.
      handler: the model, e.g. ChunkScorerHandler(functools.partial(scorer.warm_scorer, model_dir, config)).
      output_dir: where each result is saved as a part file (and plots go); None: nowhere.
      plots: also write a PNG per recording into `output_dir`.
      progress: logs a line per recording, if given.
    """

    def __init__(self, config: CountingConfig, handler: ChunkScorerHandler, output_dir: Optional[str] = None,
                 plots: bool = False, progress: Optional[Progress] = None):
        super().__init__()
        self._config = config
        self._handler = handler
        self._output_dir = output_dir
        self._plots = plots
        self._progress = progress

    def _merge(self):
        return beam.ParDo(MergeCallsFn(self._config, self._output_dir, self._plots))

    def _save(self):
        return beam.ParDo(SaveResultFn(self._output_dir, self._progress))

    def expand(self, recordings):
        decoded = (
            recordings
            | "DistributeRecordings" >> beam.Reshuffle()
            # Outputs kept apart as (tag, value) pairs (on_dask.SplitOutputs): the DaskRunner mixes a
            # ParDo's tagged outputs.
            | "Decode" >> on_dask.SplitOutputs(DecodeRecordingFn(self._config), FAILED_TAG, CHUNKS_TAG,
                                               main="recordings")
        )
        # Each step below stays fused with the one before it: a Flatten would wait for every recording.
        counted = (
            decoded["recordings"]
            | "ScoreRecordings" >> ScoreChunks(self._handler)
            | "AsOneChunk" >> beam.MapTuple(lambda recording, scored: (recording, [scored]))
            | "MergeCalls" >> self._merge()
            | "SaveResults" >> self._save()
        )
        counted_long = (
            decoded[CHUNKS_TAG]
            | "DistributeChunks" >> beam.Reshuffle()
            # Decoded here, on the worker that scores the chunk, fused with its scoring.
            | "LoadChunks" >> beam.Map(load_chunk, self._config.window_samples)
            | "ScoreChunks" >> ScoreChunks(self._handler)
            | "GroupByRecording" >> beam.GroupByKey()
            | "MergeChunkCalls" >> self._merge()
            | "SaveLongResults" >> self._save()
        )
        failed = decoded[FAILED_TAG] | "SaveFailures" >> self._save()
        return (counted, counted_long, failed) | "AllResults" >> beam.Flatten()
