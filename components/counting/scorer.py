"""Scoring a recording: `RecordingScorer` decides once how a model scores recordings under a config
(`how_scored`) and scores chunks that way; `warm_scorer` is the process's one loaded, warmed-up scorer.

Whole (`HowScored.WHOLE`): the windows' spectrograms (each with its own band medians removed, as in
training) are stitched into one spectrogram of the recording, and the networks run once over it
(`recording_track`): half the network time of running them on every overlapping window. Models exported
since the log-mel signature also have the windows' spectrograms made from one log-mel of the recording
(`window_spectrograms`): half the STFTs. Window by window
(`WINDOW_FRAMES`: older frame models, `whole_recordings=False`, or windows whose spectrograms do not
overlap): the networks run on every window (`score_windows`) and the rules join the windows' frames
(`windows.frame_track`). A model with one score per window (the tutorial's, `WINDOW_SCORES`) is counted
by the tutorial's rule.
"""

import enum
import threading
from typing import Dict, List, NamedTuple, Set, Tuple

import numpy as np

from components import audio, scoring
from components.counting.config import SCORE_BATCH, CountingConfig
from components.counting.windows import Chunk, stitch_spectrograms
from model import features

# Whole-recording scoring runs the networks over the stitched spectrogram in pieces of at most ~3 min
# (a typical field recording is one piece), each with 1.28 s of context on either side; one piece per
# model call holds ~60 MB of the first convolution's output. The networks see about 0.8 s each way
# (3x3 convolutions pooled by 4 in time, then dilated convolutions over +-16 model frames), so the
# pieces join exactly.
PIECE_FRAMES = 18_432
PIECE_MARGIN_FRAMES = 128
# A long recording's pieces are of equal length, rounded up to this many frames, so that recordings of
# about the same length give pieces of the same shape (TensorFlow prepares each new shape afresh).
PIECE_ROUNDING_FRAMES = 64
# A stretch's log-mel is computed in pieces of at most ~30 s of frames, a few per model call (~25 MB of
# STFT), so a chunk never holds its whole STFT at once.
LOG_MEL_PIECE_FRAMES = 3_000
LOG_MEL_PIECES_PER_CALL = 4


class HowScored(enum.Enum):
    """How a recording's scores come out of the model, and so which rule turns them into calls."""

    WHOLE = "whole"  # a frame track of the whole recording
    WINDOW_FRAMES = "window frames"  # frame scores [windows, frames] of each window
    WINDOW_SCORES = "window scores"  # one score per window [windows, 1]: the tutorial's rule

    @property
    def per_frame(self) -> bool:
        """Whether the scores are per model frame, so the frame merging rule (gap, shortest call) applies."""
        return self is not HowScored.WINDOW_SCORES


def how_scored(model, config: CountingConfig) -> HowScored:
    """The one decision of how `model` (a scoring.WindowScorer or anything with its attributes) scores
    recordings under `config`: whole where the model can (`scores_sequences`), the config asks for it,
    every hop starts a spectrogram frame, and neighbouring windows' spectrograms overlap (3 s windows
    every 3 s leave 3 frames between them); else window by window."""
    hop_frames, remainder = divmod(config.hop_samples, features.MEL_FRAME_STEP)
    if (config.whole_recordings and model.scores_sequences and remainder == 0
            and config.window_samples == features.CLIP_SAMPLES and hop_frames < features.MEL_FRAMES):
        return HowScored.WHOLE
    return HowScored.WINDOW_FRAMES if model.scores_frames else HowScored.WINDOW_SCORES


class ScoredChunk(NamedTuple):
    """A chunk's scores. WHOLE: the start times (s) of the frames of the chunk's stretch and a score per
    frame. Window by window: its own windows' start times (s) and their scores [windows, frames]."""

    first_window: int
    seconds: float  # length of the whole recording
    how: HowScored
    times: np.ndarray
    scores: np.ndarray
    decoder: str = audio.SOUNDFILE  # what read the recording (Chunk.decoder)


def _through_in_batches(signature, waveform: np.ndarray, starts: np.ndarray, window: int,
                        batch: int = SCORE_BATCH) -> np.ndarray:
    """`signature` (a scorer method) of the windows starting at `starts` (samples), concatenated.
    Windows are views, copied `batch` at a time."""
    windows = np.lib.stride_tricks.sliding_window_view(waveform, window)  # no copy
    return np.concatenate([
        signature(np.ascontiguousarray(windows[starts[i : i + batch]]))
        for i in range(0, len(starts), batch)
    ])


def window_probabilities(waveform: np.ndarray, starts: np.ndarray, model, window: int) -> np.ndarray:
    """Each window's probability float32[windows] (the windows starting at `starts`, samples), through
    `model` itself (a WindowScorer's window signature, or any callable on float32[n, window])."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.float32)
    return _through_in_batches(model, waveform, starts, window)


def score_windows(waveform: np.ndarray, starts: np.ndarray, model, window: int) -> np.ndarray:
    """Frame scores [windows, frames] of the windows starting at `starts` (samples), through `model.frames`."""
    if len(starts) == 0:
        return np.zeros((0, 1), dtype=np.float32)
    return _through_in_batches(model.frames, waveform, starts, window)


def sequence_scores(spectrogram: np.ndarray, model, piece_frames: int = PIECE_FRAMES) -> np.ndarray:
    """Frame probabilities float32[frames // 4] of a spectrogram [frames, bands] of any length.

    A spectrogram of up to `piece_frames` frames (plus the margins) is scored in one go, as a window is.
    A longer one is cut into the fewest pieces of equal length that each give at most `piece_frames`
    frames of scores, and see PIECE_MARGIN_FRAMES more on either side; at the ends a piece slides
    inward instead, so the ends are the sequence's own, as a window's are in training. (Equal pieces:
    fixed ones of 4096 frames ran the networks over 21% more frames than a 3-minute recording holds.)
    """
    pool, margin = features.MODEL_FRAME_POOLING, PIECE_MARGIN_FRAMES
    if len(spectrogram) <= piece_frames + 2 * margin:
        return model.sequence_frames(spectrogram[None])[0]
    usable = len(spectrogram) // pool * pool  # the last 1-3 frames (up to 30 ms) make no model frame
    pieces = -(-usable // piece_frames)
    core = -(-usable // (pieces * PIECE_ROUNDING_FRAMES)) * PIECE_ROUNDING_FRAMES  # a multiple of the pooling
    length = core + 2 * margin  # every piece's input
    scores = []
    for begin in range(0, usable, core):
        end = min(begin + core, usable)
        first = min(max(begin - margin, 0), usable - length)
        # The last piece also sees the frames that make no model frame, as the one piece would.
        stop = first + length if end < usable else len(spectrogram)
        probabilities = model.sequence_frames(spectrogram[None, first:stop])[0]  # [length // 4]
        scores.append(probabilities[(begin - first) // pool : (end - first) // pool])
    return np.concatenate(scores)


def stretch_log_mel(samples: np.ndarray, num_frames: int, model) -> np.ndarray:
    """The first `num_frames` frames float32[num_frames, bands] of the unscaled log-mel of `samples`
    (zero-padded where they end first), through `model.log_mels`, in pieces of equal length that join
    exactly: a piece of n frames is the (n - 1) * 160 + 512 samples from its first frame on."""
    step = features.MEL_FRAME_STEP
    pieces = -(-num_frames // LOG_MEL_PIECE_FRAMES)
    piece = -(-num_frames // pieces)  # frames per piece
    length = (piece - 1) * step + features.MEL_FRAME_LENGTH  # samples per piece
    needed = (pieces - 1) * piece * step + length
    padded = samples  # a copy only where the samples end first: a chunk's stretch is tens of MB
    if len(samples) < needed:
        padded = np.zeros(needed, dtype=np.float32)
        padded[: len(samples)] = samples
    starts = np.arange(pieces) * piece * step
    log_mels = _through_in_batches(model.log_mels, padded, starts, length, LOG_MEL_PIECES_PER_CALL)
    return log_mels.reshape(-1, log_mels.shape[-1])[:num_frames]


def window_spectrograms(waveform: np.ndarray, starts: np.ndarray, model) -> np.ndarray:
    """The spectrograms float32[windows, 297, bands] of the windows at `starts` (samples of `waveform`),
    equal to `model.spectrograms` of them, for about half the work: the stretch's log-mel is computed
    once (each moment lies in two windows), each window's cut from it, and then its band medians removed
    and scaled as model/preprocessing.py does. A last window placed flush with the recording's end
    (off the other windows' frame grid) gets its own log-mel."""
    frames, step = features.MEL_FRAMES, features.MEL_FRAME_STEP
    offsets = starts - starts[0]
    on_grid = offsets % step == 0
    log_mel = stretch_log_mel(waveform[starts[0]:], offsets[on_grid][-1] // step + frames, model)
    log_mels = np.empty((len(starts), frames, log_mel.shape[-1]), dtype=np.float32)
    by_window = np.lib.stride_tricks.sliding_window_view(log_mel, frames, axis=0)  # [frames - 296, bands, 297]
    log_mels[on_grid] = by_window[offsets[on_grid] // step].transpose(0, 2, 1)
    if not on_grid.all():
        log_mels[~on_grid] = _through_in_batches(model.log_mels, waveform, starts[~on_grid], features.CLIP_SAMPLES)
    # Each band's median over the window: its middle frame in order (as preprocessing.remove_band_medians),
    # then the scale; in place and SCORE_BATCH windows at a time, so that a long chunk's hundreds of
    # windows are held once rather than in four copies.
    mean, std = model.spectrogram_scale
    for batch in range(0, len(starts), SCORE_BATCH):
        windows = log_mels[batch : batch + SCORE_BATCH]
        medians = np.partition(windows, frames // 2, axis=1)[:, frames // 2]  # [windows, bands]
        windows -= medians[:, None, :]
        windows -= mean
        windows /= std
    return log_mels


def recording_track(waveform: np.ndarray, starts: np.ndarray, model, offset: int = 0,
                    piece_frames: int = PIECE_FRAMES, log_mel_once: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """(frame start times in s, scores) of a recording, or of a chunk of one that begins at sample
    `offset`, scored whole: the windows at `starts` (samples of `waveform`) give their spectrograms
    (with `log_mel_once`, from one log-mel of the stretch: `window_spectrograms`), stitched into one,
    and the networks run over that once. Frames fall on the recording's 40 ms grid.
    """
    if len(starts) == 0:  # silence: nothing scored
        return np.zeros(0), np.zeros(0, dtype=np.float32)
    if log_mel_once:
        spectrograms = window_spectrograms(waveform, starts, model)  # [windows, 297, bands]
    else:
        spectrograms = _through_in_batches(model.spectrograms, waveform, starts, features.CLIP_SAMPLES)
    first_frames = np.round((np.asarray(starts) + offset) / features.MEL_FRAME_STEP).astype(np.int64)
    stitched = stitch_spectrograms(first_frames - first_frames[0], spectrograms)
    skip = -first_frames[0] % features.MODEL_FRAME_POOLING  # onto the recording's model-frame grid
    scores = sequence_scores(stitched[skip:], model, piece_frames)
    first = first_frames[0] + skip + features.MODEL_FRAME_POOLING * np.arange(len(scores))
    return first * features.MEL_FRAME_STEP / features.SAMPLE_RATE, scores


class RecordingScorer:
    """A model and how it scores recordings under a config (`how`, decided once by `how_scored`)."""

    def __init__(self, model, config: CountingConfig):
        self.model = model
        self.how = how_scored(model, config)
        self.log_mel_once = self.how is HowScored.WHOLE and config.log_mel_once and model.scores_log_mel
        self._window_samples = config.window_samples

    def warm_up(self) -> None:
        """Runs the signatures this scorer uses once, on silence, in the batch shape counting uses: the
        first call of a signature builds what TensorFlow runs it with (~0.3 s for the spectrograms or the
        log-mel, ~0.4 s for the networks)."""
        batch = np.zeros((SCORE_BATCH, features.CLIP_SAMPLES), np.float32)
        if self.how is not HowScored.WHOLE:
            self.model.frames(batch)
            return
        if self.log_mel_once:
            stretch_log_mel(np.zeros(0, np.float32), LOG_MEL_PIECE_FRAMES * LOG_MEL_PIECES_PER_CALL, self.model)
        else:
            self.model.spectrograms(batch)
        self.model.sequence_frames(np.zeros((1, 3 * features.MEL_FRAMES, features.MEL_BANDS), np.float32))

    def score(self, chunk: Chunk) -> ScoredChunk:
        """A chunk's scores: a frame track of its stretch (WHOLE), else its own windows' scores."""
        if self.how is HowScored.WHOLE:
            times, track = recording_track(chunk.samples, chunk.starts - chunk.offset, self.model, chunk.offset,
                                           log_mel_once=self.log_mel_once)
            centres = times + features.MODEL_FRAME_SPAN_SECONDS / 2
            keep = (centres > chunk.keep_from_s) & (centres <= chunk.keep_to_s)
            return ScoredChunk(chunk.first_window, chunk.seconds, self.how, times[keep], track[keep], chunk.decoder)
        own = chunk.starts[chunk.own[0] : chunk.own[1]]
        scores = score_windows(chunk.samples, own - chunk.offset, self.model, self._window_samples)
        return ScoredChunk(chunk.first_window, chunk.seconds, self.how, own / features.SAMPLE_RATE, scores,
                           chunk.decoder)


# The process's models, each with the ways of scoring it has been warmed up for: Beam makes a DoFn
# instance per worker thread and step, and loading a SavedModel (about a second) and warming it up
# would otherwise be paid by every one of them. The signatures are safe to call from several threads.
_lock = threading.Lock()
_models: Dict[Tuple[str, bool], Tuple[scoring.WindowScorer, Set[Tuple[HowScored, bool]]]] = {}


def warm_scorer(model_dir: str, config: CountingConfig) -> RecordingScorer:
    """The process's one scorer of the SavedModel at `model_dir` for `config`, loaded once and warmed up
    once per way of scoring, under a lock, rather than by every worker thread at once."""
    with _lock:
        key = (model_dir, config.bfloat16)
        if key not in _models:
            _models[key] = (scoring.WindowScorer(model_dir, config.bfloat16), set())
        model, warmed = _models[key]
        scorer = RecordingScorer(model, config)
        if (scorer.how, scorer.log_mel_once) not in warmed:
            scorer.warm_up()
            warmed.add((scorer.how, scorer.log_mel_once))
    return scorer


def loaded_models() -> List[str]:
    """The model folders this process has loaded (e.g. to see which workers scored)."""
    with _lock:
        return sorted({model_dir for model_dir, _ in _models})


def score_chunk(chunk: Chunk, model, config: CountingConfig) -> ScoredChunk:
    """`chunk`'s scores by `model` (e.g. a scoring.WindowScorer) under `config`."""
    return RecordingScorer(model, config).score(chunk)
