"""Audio loading shared by ingestion and counting: any wav/flac/mp3 → float32 16 kHz mono.

Decoding is libsndfile (via `soundfile`), resampling is soxr (streamed, so long files stay small): both
are several times faster than tensorflow-io, with the same samples (BENCHMARKS.md, "Audio decoding and
ingestion"). Counting may ask for decoder=MPG123 or MPG123_LOG_MEL (`fast_decoder`): mp3 decoded by
libmpg123 itself, mixed to mono and at half or a quarter of its rate inside the decoder
(components/mpg123.py), for less work and the same samples up to 8 kHz (MPG123) or up to the log-mel's
5 kHz (MPG123_LOG_MEL), one sample of the file's rate later (`mpg123.DOWN_SAMPLED_DELAY_FRAMES`).
Every failure is an `AudioLoadError` that names the file and the reason, so batch jobs can record it
and carry on.
"""

import contextlib
import io
import math
import os
from typing import Iterable, Iterator, NamedTuple, Tuple

import numpy as np
import soundfile as sf
import soxr

from components import mpg123
from model import features

# The decoders: libsndfile for every file, libmpg123 for local mp3s where counting asks for it, keeping
# the band up to 8 kHz (a 48 kHz mp3 at half rate) or only the log-mel's (a quarter: features.MP3_MAX_DOWN_SAMPLE).
SOUNDFILE = "soundfile"
MPG123 = "mpg123"
MPG123_LOG_MEL = "mpg123 to 5 kHz"
_MPG123_BAND_HZ = {MPG123: features.FULL_BAND_HZ, MPG123_LOG_MEL: features.MEL_UPPER_HZ}
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


def fast_decoder(path: str, band_hz: float = features.FULL_BAND_HZ) -> str:
    """The cheapest decoder for a file whose reader needs frequencies up to `band_hz`: for a local mp3
    where libmpg123 loads, MPG123_LOG_MEL where the log-mel's band is enough, else MPG123; else SOUNDFILE.

    A file MPG123 fails on is for the caller to read again with SOUNDFILE, which decodes it or says why
    it cannot be decoded (counting does, so its failures keep soundfile's reasons)."""
    local_mp3 = "://" not in path and os.path.splitext(path)[1].lower() == ".mp3"
    if not (local_mp3 and mpg123.available()):
        return SOUNDFILE
    return MPG123_LOG_MEL if band_hz <= features.MEL_UPPER_HZ else MPG123


def load_audio(path: str, sample_rate: int = features.SAMPLE_RATE, decoder: str = SOUNDFILE) -> np.ndarray:
    """Decodes a wav, flac or mp3 file to float32 mono at `sample_rate`.

    Channels are averaged. Any input rate is resampled.

    Args:
      path: the audio file.
      sample_rate: the rate to return, in Hz.
      decoder: SOUNDFILE, or MPG123 or MPG123_LOG_MEL for a local mp3 (see `fast_decoder`).

    Returns:
      float32[num_samples] in [-1, 1].

    Raises:
      AudioLoadError: the file is missing, unreadable, empty, not audio or corrupt.
    """
    extension, source, size = _open(path)
    pieces = list(_decoded(path, source, sample_rate, decoder))
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    finite = bool(np.all(np.isfinite(samples)))
    peak = float(np.max(np.abs(samples))) if finite and samples.shape[0] else 0.0
    _check_decoded(path, extension, size, samples.shape[0], finite, peak, sample_rate)
    return samples.astype(np.float32, copy=False)


class AudioLength(NamedTuple):
    """What `measure_audio` finds: the length and loudness of a file's audio as `load_audio` returns it."""

    num_samples: int  # len(load_audio(path, sample_rate))
    rms: float  # root mean square of those samples


def measure_audio(path: str, sample_rate: int = features.SAMPLE_RATE, decoder: str = SOUNDFILE) -> AudioLength:
    """The length and RMS of `load_audio(path, sample_rate, decoder)`, and the same checks, decoding the
    file block by block without keeping its samples: memory holds one block, whatever the file's length.

    Raises:
      AudioLoadError: as load_audio.
    """
    extension, source, size = _open(path)
    num_samples, squares, finite, peak = 0, 0.0, True, 0.0
    for piece in _decoded(path, source, sample_rate, decoder):
        num_samples += piece.shape[0]
        if not piece.shape[0] or not finite:
            continue
        finite = bool(np.all(np.isfinite(piece)))
        if finite:
            peak = max(peak, float(np.max(np.abs(piece))))
            squares += float(np.dot(piece.astype(np.float64), piece.astype(np.float64)))
    _check_decoded(path, extension, size, num_samples, finite, peak, sample_rate)
    return AudioLength(num_samples, float(np.sqrt(squares / num_samples)))


# Source audio decoded before and after a range that `load_range` resamples, so that the resampling
# filter (and an mp3 decoder after a seek) has settled by the range's first sample and not yet felt the
# cut-off by its last.
RANGE_MARGIN_SECONDS = 0.5


def load_range(path: str, begin: int, end: int, sample_rate: int = features.SAMPLE_RATE,
               decoder: str = SOUNDFILE) -> np.ndarray:
    """`load_audio(path, sample_rate, decoder)[begin:end]`, decoding only that stretch of the file (plus
    a margin of RANGE_MARGIN_SECONDS either side): the file is seeked at its decoding rate, the stretch
    mixed to mono, resampled as load_audio does and the margins trimmed. Memory holds the range and one
    block.

    Exactly load_audio's samples where the file is decoded at `sample_rate` already; resampled, they
    differ by float32 rounding in soxr's filter (about 1e-6 of full scale). A remote file (gs://...) is
    fetched and decoded whole.

    Raises:
      AudioLoadError: the file cannot be read or decoded.
    """
    if "://" in path:
        return load_audio(path, sample_rate, decoder)[begin:end]
    with _stream(path, path, decoder) as stream:
        rate = stream.rate
        # Start on a source frame that falls on an output sample: `in_step` frames make `out_step` samples.
        common = math.gcd(rate, sample_rate)
        in_step, out_step = rate // common, sample_rate // common
        margin = 0 if rate == sample_rate else int(RANGE_MARGIN_SECONDS * sample_rate)
        first_out = max(begin - margin, 0) // out_step * out_step
        first_in = first_out // out_step * in_step
        stop_in = -(-(end + margin) // out_step) * in_step  # the decoder stops at the file's end
        stream.seek(first_in)
        pieces = list(_resampled(stream.blocks(stop_in - first_in), rate, sample_rate))
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return samples[begin - first_out : end - first_out].astype(np.float32, copy=False)


def _open(path: str) -> Tuple[str, object, int]:
    """(extension, what soundfile opens, size in bytes) of a file to decode, or AudioLoadError."""
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
    return extension, source, size


def _decoded(path: str, source, sample_rate: int, decoder: str) -> Iterator[np.ndarray]:
    """The file's audio as float32 mono pieces at `sample_rate`, decoded and resampled block by block:
    memory holds one block, never the whole file at its own rate (1 h of 48 kHz stereo would be 1.4 GB)."""
    with _stream(path, source, decoder) as stream:
        yield from _resampled(stream.blocks(), stream.rate, sample_rate)


class _SoundfileStream:
    """An open SoundFile as `_stream` hands it out: mono float32 blocks at `rate`, seekable."""

    def __init__(self, sound: sf.SoundFile):
        self._sound = sound
        self.rate = sound.samplerate

    def seek(self, frame: int) -> None:
        self._sound.seek(frame)

    def blocks(self, frames: int = -1) -> Iterator[np.ndarray]:
        """Mono blocks from here to the end, or of `frames` frames in all (fewer at the file's end)."""
        for block in self._sound.blocks(_BLOCK_FRAMES, frames=frames, dtype="float32", always_2d=True):
            yield _mono(block)


@contextlib.contextmanager
def _stream(path: str, source, decoder: str):
    """The file opened by `decoder` (a _SoundfileStream or an mpg123.Mp3File: `rate`, `seek(frame)`,
    `blocks(frames)` of mono float32); its errors, opening or decoding, as AudioLoadError."""
    try:
        if decoder in _MPG123_BAND_HZ:
            with mpg123.Mp3File(path, features.MP3_MAX_DOWN_SAMPLE, min_rate=int(2 * _MPG123_BAND_HZ[decoder])) as mp3:
                yield mp3
        else:
            with sf.SoundFile(source) as sound:
                yield _SoundfileStream(sound)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:  # mpg123.Mpg123Error is a RuntimeError
        raise AudioLoadError(path, _decode_failure(error)) from error


def _resampled(blocks: Iterable[np.ndarray], from_rate: int, to_rate: int) -> Iterator[np.ndarray]:
    """Mono blocks at `from_rate` → pieces at `to_rate`, through one soxr stream."""
    if from_rate == to_rate:
        yield from blocks
        return
    stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
    for block in blocks:
        yield stream.resample_chunk(block)
    yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _check_decoded(path: str, extension: str, size: int, num_samples: int, finite: bool, peak: float,
                   sample_rate: int) -> None:
    """AudioLoadError where decoded audio is empty, non-finite, far beyond full scale, or (mp3) longer
    than its file's bytes can hold."""
    if num_samples == 0:
        raise AudioLoadError(path, "empty: no audio frames")
    if not finite:
        raise AudioLoadError(path, "corrupt: non-finite samples")
    # mpg123 resyncs through damaged data and may hand back garbage rather than an error.
    if peak > _MAX_PEAK:
        raise AudioLoadError(path, "corrupt audio data: samples far beyond full scale")
    seconds = num_samples / sample_rate
    if extension == ".mp3" and size * 8 < _MIN_MP3_BITS_PER_SECOND * seconds:
        raise AudioLoadError(path, f"corrupt or truncated mp3: {size} bytes cannot hold {seconds:.0f} s of audio")


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
