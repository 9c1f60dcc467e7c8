"""Audio loading shared by ingestion and counting: any wav/flac/mp3 → float32 16 kHz mono.

Decoding is libsndfile (via `soundfile`), resampling is soxr (streamed, so long files stay small): both
are several times faster than tensorflow-io, with the same samples (BENCHMARKS.md, "Audio decoding and
ingestion").
Every failure is an `AudioLoadError` that names the file and the reason, so batch jobs can record it
and carry on.
"""

import io
import os

import numpy as np
import soundfile as sf
import soxr

from model import features

# Frames decoded at a time: ~10 s at 48 kHz.
_BLOCK_FRAMES = 1 << 19
# Decoded audio peaks near 1 (a little over after lossy coding); garbage decoded from damaged mp3 data
# reaches millions.
_MAX_PEAK = 10.0
# The lowest mp3 bit rate is 8 kbit/s: a file smaller than that for its length is cut short or damaged
# (its header promises more audio than it holds).
_MIN_MP3_BITS_PER_SECOND = 8_000


class AudioLoadError(ValueError):
    """A file that cannot be turned into audio. `reason` is short and meant for a failures table."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def resample(samples: np.ndarray, from_rate: int, to_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a 1-D float32 signal (soxr, high quality)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str, sample_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """Decodes a wav, flac or mp3 file to float32 mono at `sample_rate`.

    Channels are averaged. Any input rate is resampled.

    Args:
      path: the audio file.
      sample_rate: the rate to return, in Hz.

    Returns:
      float32[num_samples] in [-1, 1].

    Raises:
      AudioLoadError: the file is missing, unreadable, empty, not audio or corrupt.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in features.AUDIO_EXTENSIONS:
        raise AudioLoadError(
            path, f"unsupported file type '{extension}' (expected {', '.join(features.AUDIO_EXTENSIONS)})"
        )
    source = path
    try:
        if "://" in path:  # gs:// and the like: fetched whole, decoded from memory
            from components import files

            source = io.BytesIO(files.read_bytes(path))
            size = len(source.getbuffer())
        else:
            size = os.path.getsize(path)
    except Exception as error:  # OSError locally; TensorFlow's NotFoundError and kin remotely
        raise AudioLoadError(path, f"unreadable: {getattr(error, 'strerror', None) or error}") from error
    if size == 0:
        raise AudioLoadError(path, "empty file (0 bytes)")
    try:
        with sf.SoundFile(source) as sound:
            if sound.samplerate == sample_rate:
                pieces = [_mono(block) for block in sound.blocks(_BLOCK_FRAMES, dtype="float32", always_2d=True)]
            else:
                # Decode and resample block by block: memory holds the 16 kHz output and one block,
                # never the whole file at its own rate (1 h of 48 kHz stereo would be 1.4 GB).
                stream = soxr.ResampleStream(sound.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
                pieces = [
                    stream.resample_chunk(_mono(block))
                    for block in sound.blocks(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                ]
                pieces.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioLoadError(path, _decode_failure(error)) from error
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    if samples.shape[0] == 0:
        raise AudioLoadError(path, "empty: no audio frames")
    if not np.all(np.isfinite(samples)):
        raise AudioLoadError(path, "corrupt: non-finite samples")
    # mpg123 resyncs through damaged data and may hand back garbage rather than an error.
    if np.max(np.abs(samples)) > _MAX_PEAK:
        raise AudioLoadError(path, "corrupt audio data: samples far beyond full scale")
    seconds = samples.shape[0] / sample_rate
    if extension == ".mp3" and size * 8 < _MIN_MP3_BITS_PER_SECOND * seconds:
        raise AudioLoadError(path, f"corrupt or truncated mp3: {size} bytes cannot hold {seconds:.0f} s of audio")
    return samples.astype(np.float32, copy=False)


# The forest recordings' format: 48 kHz stereo mp3 at a constant 128 kbit/s (libsndfile's compression
# level 0.65 gives that bit rate).
MP3_RATE = 48_000
MP3_128K_LEVEL = 0.65


def write_mp3(target, samples: np.ndarray, rate: int) -> None:
    """Writes float32[frames] or [frames, channels] as constant 128 kbit/s mp3 to a path or file object."""
    sf.write(target, samples, rate, format="MP3", bitrate_mode="CONSTANT", compression_level=MP3_128K_LEVEL)


def mp3_round_trip(samples: np.ndarray, sample_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """The signal as it comes back from the forest recordings' codec (48 kHz stereo 128 kbit/s mp3).

    Same length and no delay (libsndfile trims the encoder's padding), so it lines up with the input.
    """
    upsampled = resample(samples, sample_rate, MP3_RATE)
    buffer = io.BytesIO()
    write_mp3(buffer, np.stack([upsampled, upsampled], axis=1), MP3_RATE)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    back = resample(_mono(decoded), MP3_RATE, sample_rate)[: len(samples)]
    return np.pad(back, (0, len(samples) - len(back))).astype(np.float32, copy=False)


def _mono(block: np.ndarray) -> np.ndarray:
    """[frames, channels] → [frames], channels averaged.

    Column by column: numpy's `mean(axis=1)` over a two-wide axis is slow enough to rival decoding;
    adding the columns is not.
    """
    mono = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    if block.shape[1] > 1:
        mono *= np.float32(1.0 / block.shape[1])
    return mono


def fixed_length(
    samples: np.ndarray, num_samples: int = features.CLIP_SAMPLES, pad: str = features.DEFAULT_PAD
) -> np.ndarray:
    """The first `num_samples` samples, zero-padded at the front (tutorial) or back when shorter."""
    if pad not in (features.PAD_FRONT, features.PAD_BACK):
        raise ValueError(f"pad must be '{features.PAD_FRONT}' or '{features.PAD_BACK}', got {pad!r}")
    clip = samples[:num_samples]
    missing = num_samples - clip.shape[0]
    if missing == 0:
        return clip.astype(np.float32, copy=False)
    padding = (missing, 0) if pad == features.PAD_FRONT else (0, missing)
    return np.pad(clip, padding).astype(np.float32, copy=False)


def load_clip(path: str, pad: str = features.DEFAULT_PAD, offset_seconds: float = 0.0) -> np.ndarray:
    """A training clip: the first 3 s of a file (from `offset_seconds` on) at 16 kHz mono, zero-padded.
    float32[CLIP_SAMPLES]."""
    return fixed_length(load_audio(path)[int(round(offset_seconds * features.SAMPLE_RATE)):], features.CLIP_SAMPLES, pad)


def _decode_failure(error: Exception) -> str:
    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    # libsndfile says "Error opening ..." (sometimes "possibly a pipe?") when no decoder claims the bytes.
    if "Error opening" in text:
        return "not audio: no decoder recognises its format"
    return f"corrupt audio data: {text}"
