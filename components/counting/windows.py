"""Window geometry: where a recording's 3 s windows start, how a long one is cut into chunks, and how
the windows' frame scores or spectrograms join into one track or spectrogram of the recording."""

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from components import audio
from components.counting.config import CountingConfig
from model import features

# Below this RMS (about -80 dBFS) a recording holds nothing to hear: counted as 0 without scoring.
SILENCE_RMS = 1e-4


def window_starts(num_samples: int, window: int, hop: int) -> np.ndarray:
    """Start samples of the windows covering a recording.

    Windows step by `hop`; when the last one would run past the end, one more window is placed flush
    with the end (shifted back), so the tail is scored and no window is padded. A recording shorter
    than one window has none.
    """
    if num_samples < window:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, num_samples - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < num_samples:
        starts = np.append(starts, num_samples - window)
    return starts


@dataclasses.dataclass
class Chunk:
    """A run of consecutive windows of one recording (its own) and the samples they cover, with one
    window more on each side where the recording has one, as context.

    Scored window by window, a chunk scores its own windows, each from exactly the samples it would have
    unsplit, in the same batches (a multiple of SCORE_BATCH windows per chunk). Scored whole, it gives
    the frame scores of the stretch between the midpoints of its first own window and the one before and
    of its last own window and the one after; the context window on each side is 1.5 s, more than the
    networks see. Splitting therefore does not change a score, a call or a count.
    """

    recording: str
    first_window: int  # index of the chunk's first own window in the whole recording
    offset: int  # sample of the recording where `samples` begins
    starts: np.ndarray  # window starts, in samples of the recording, context windows included
    own: Tuple[int, int]  # the own windows: starts[own[0]:own[1]]
    samples: Optional[np.ndarray]  # None in a chunk spec: loaded where the chunk is scored
    seconds: float  # length of the whole recording
    keep_from_s: float = -np.inf  # the stretch whose frame scores this chunk gives, by frame centre
    keep_to_s: float = np.inf
    decoder: str = audio.SOUNDFILE  # what read the recording: its chunks are read by the same (audio.load_range)

    def end(self, window: int) -> int:
        """The sample of the recording where the chunk's samples end, for windows of `window` samples."""
        return int(self.starts[-1]) + window if len(self.starts) else self.offset


def whole_chunk(recording: str, waveform: np.ndarray, config: CountingConfig,
                decoder: str = audio.SOUNDFILE) -> Chunk:
    """All of a recording as one chunk, with its windows (none for silence: nothing to count or score)."""
    return recording_chunk(recording, len(waveform), float(np.sqrt(np.mean(waveform**2))), config, waveform,
                           decoder)


def recording_chunk(recording: str, num_samples: int, rms: float, config: CountingConfig,
                    samples: Optional[np.ndarray] = None, decoder: str = audio.SOUNDFILE) -> Chunk:
    """All of a recording of `num_samples` samples and loudness `rms` (as `decoder` read it) as one
    chunk, with its windows (none for silence); without `samples`, a chunk spec: the samples are loaded
    where it is scored (`Chunk.end`, `audio.load_range`)."""
    starts = window_starts(num_samples, config.window_samples, config.hop_samples)
    if rms < SILENCE_RMS:
        starts = starts[:0]
    return Chunk(recording, 0, 0, starts, (0, len(starts)), samples, num_samples / features.SAMPLE_RATE,
                 decoder=decoder)


def split_chunk(whole: Chunk, config: CountingConfig) -> List[Chunk]:
    """A recording's whole chunk as chunks of `config.chunk_windows` own windows (itself if it has no more);
    a chunk spec (no samples) as chunk specs."""
    starts, step, window = whole.starts, config.chunk_windows, config.window_samples
    if len(starts) <= step:
        return [whole]
    # Where one chunk's stretch ends and the next one's begins: midway between two windows' centres.
    boundaries_s = ((starts[:-1] + starts[1:]) / 2 + window / 2) / features.SAMPLE_RATE
    chunks = []
    for first in range(0, len(starts), step):
        last = min(first + step, len(starts))  # own windows: first..last-1
        lo, hi = max(first - 1, 0), min(last + 1, len(starts))  # with the context windows
        begin, end = int(starts[lo]), int(starts[hi - 1]) + window
        chunks.append(Chunk(whole.recording, first, begin, starts[lo:hi], (first - lo, last - lo),
                            None if whole.samples is None else whole.samples[begin:end].copy(), whole.seconds,
                            keep_from_s=boundaries_s[first - 1] if first else -np.inf,
                            keep_to_s=boundaries_s[last - 1] if last < len(starts) else np.inf,
                            decoder=whole.decoder))
    return chunks


def frame_track(starts_s: np.ndarray, frame_scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One score per model frame of the whole recording: (frame start times, scores).

    Overlapping windows score the same moment more than once; each moment keeps the score of the
    window in which it is most central, where the model sees the most context around it.
    """
    step = features.MODEL_FRAME_STEP_SECONDS
    frames = frame_scores.shape[1]
    offsets = np.arange(frames) * step  # frame starts within a window
    from_centre = np.abs(offsets + features.MODEL_FRAME_SPAN_SECONDS / 2 - features.CLIP_SECONDS / 2)
    # A window's frames fill consecutive slots from the one nearest its start (hops need not be whole frames).
    first_slots = np.floor(np.asarray(starts_s) / step + 0.5).astype(np.int64)
    slots = first_slots[:, None] + np.arange(frames)[None, :]  # [windows, frames]
    length = int(slots.max()) + 1 if slots.size else 0
    track = np.zeros(length, dtype=np.float32)
    closest = np.full(length, np.inf)
    for window_slots, scores in zip(slots, frame_scores):
        better = from_centre < closest[window_slots]
        track[window_slots[better]] = scores[better]
        closest[window_slots[better]] = from_centre[better]
    return np.arange(length) * step, track


def stitch_spectrograms(first_frames: np.ndarray, spectrograms: np.ndarray) -> np.ndarray:
    """One spectrogram of a whole recording from its windows' spectrograms.

    Each window's spectrogram has that window's band medians removed, as in training. Where two windows
    overlap, the stitched frames fade linearly from the one to the other: overlapping windows hold the
    same log-mel frames, so this is each frame with band medians that glide from window to window.
    (Taking each frame from one window instead leaves steps at the joins, where the networks missed
    quiet calls: 5 more of fold 0's 79 planted calls in bench/accuracy.py.)

    Args:
      first_frames: int[windows], increasing: the spectrogram frame each window starts at, counted from
        the first window's start.
      spectrograms: float32[windows, frames, bands].

    Returns:
      float32[first_frames[-1] + frames, bands].
    """
    windows, frames, bands = spectrograms.shape
    centres = first_frames + frames // 2
    # Window k fades into window k+1 over fade_starts[k]..fade_ends[k], inside both and between their centres.
    fade_starts = np.maximum(centres[:-1], first_frames[1:])
    fade_ends = np.minimum(centres[1:], first_frames[:-1] + frames)
    stitched = np.zeros((first_frames[-1] + frames, bands), dtype=np.float32)
    for k in range(windows):
        begin = first_frames[0] if k == 0 else fade_starts[k - 1]
        end = len(stitched) if k == windows - 1 else fade_ends[k]
        weights = np.ones(end - begin, dtype=np.float32)
        if k > 0:  # fading in
            fade = fade_ends[k - 1] - fade_starts[k - 1]
            weights[:fade] = np.arange(fade) / fade
        if k < windows - 1:  # fading out
            fade = fade_ends[k] - fade_starts[k]
            weights[fade_starts[k] - begin :] = 1 - np.arange(fade) / fade
        stitched[begin:end] += weights[:, None] * spectrograms[k, begin - first_frames[k] : end - first_frames[k]]
    return stitched
