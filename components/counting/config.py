"""CountingConfig: the one home of the counting job's settings and their defaults."""

import dataclasses

from model import features

SCORE_BATCH = 64  # windows per model call: ~12 MB of audio, whatever the recording's length


@dataclasses.dataclass(frozen=True)
class CountingConfig:
    """How recordings are windowed, scored and turned into calls. Callers leave a setting out (or give
    None to `of`) for its default here."""

    threshold: float
    hop_seconds: float = features.HOP_SECONDS
    window_seconds: float = features.CLIP_SECONDS
    # Windows per chunk: 2 x 64 = 128 windows, about 3.2 minutes at a 1.5 s hop (a 3-minute recording is
    # one chunk). Longer recordings are scored in several chunks, in parallel where there are workers;
    # every worker holds one, so smaller chunks keep memory flat (a 12-hour recording, one network, four
    # workers: 1,164 MB against 1,486 MB with 11-minute chunks, the same calls; BENCHMARKS.md).
    chunk_windows: int = 2 * SCORE_BATCH
    # Score whole recordings where the model can (scorer.how_scored); False: window by window.
    whole_recordings: bool = True
    # Scored whole: compute the recording's log-mel once and each window's spectrogram from it, where the
    # model gives its log-mel (scorer.window_spectrograms); False: each window's spectrogram on its own.
    log_mel_once: bool = True
    # The networks in bfloat16 where the CPU computes it natively (scoring.WindowScorer); False: float32.
    bfloat16: bool = True
    # The highest frequency the model reads (job.py: scoring.band_read): an mp3 is decoded no further
    # (audio.fast_decoder), the log-mel's 5 kHz at a quarter of a 48 kHz file's rate.
    band_hz: float = features.FULL_BAND_HZ
    # The merging rule of frame-scoring models (rules.frame_calls); site calibration may choose other values.
    gap_seconds: float = features.CALL_GAP_SECONDS
    min_call_seconds: float = features.MIN_CALL_SECONDS

    def __post_init__(self):
        if self.chunk_windows <= 0 or self.chunk_windows % SCORE_BATCH:
            raise ValueError(f"chunk_windows must be a positive multiple of {SCORE_BATCH}, got {self.chunk_windows}")

    @classmethod
    def of(cls, threshold: float, **settings) -> "CountingConfig":
        """A config with the settings given; those given as None keep their defaults."""
        return cls(threshold=threshold, **{name: value for name, value in settings.items() if value is not None})

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * features.SAMPLE_RATE))

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * features.SAMPLE_RATE))
