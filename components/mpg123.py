"""libmpg123 through ctypes: an mp3 decoded straight to float32 mono at a fraction of its rate.

libsndfile decodes mp3 with this same library, at the file's rate and in stereo; asking libmpg123
itself to mix the channels (before its filter bank, so it runs once instead of twice) and to synthesise
only the lower subbands at a lower rate (MPG123_DOWN_SAMPLE) leaves out work whose result the
resampling to 16 kHz would throw away. `audio` uses it for counting and falls back to soundfile
wherever this module cannot open or decode a file.
"""

import collections
import ctypes
import functools
import os
import threading
from typing import Iterator, List, Optional, Tuple

import numpy as np

# The system library; tests point this at a missing one to see the fallback.
LIBRARY = "libmpg123.so.0"

# Decoded below the file's rate, libmpg123 keeps every 2nd (4th) sample of its filter bank's output from
# the 2nd on: the samples lag the full-rate ones by one frame of the file's rate (21 us at 48 kHz), measured.
DOWN_SAMPLED_DELAY_FRAMES = 1
# Samples read at a time: ~10 s at 24 kHz.
_BLOCK_SAMPLES = 1 << 18
# Bytes of the file handed to the decoder at a time (feed mode): one read() per MiB, where libmpg123's
# own reader makes two per frame (~80 per second of audio); 8-13 % less CPU decoding (BENCHMARKS.md).
_FEED_BYTES = 1 << 20

# From mpg123.h (API 45+, stable since libmpg123 1.x).
_MPG123_OK, _MPG123_DONE, _MPG123_NEW_FORMAT, _MPG123_NEED_MORE = 0, -12, -11, -10
_MPG123_ADD_FLAGS, _MPG123_DOWN_SAMPLE, _MPG123_INDEX_SIZE = 2, 4, 15
_MPG123_MONO_MIX, _MPG123_QUIET, _MPG123_GAPLESS, _MPG123_FORCE_FLOAT = 0x4, 0x20, 0x40, 0x400
_MPG123_MONO, _MPG123_ENC_FLOAT_32 = 1, 0x200
_SEEK_SET = 0
_OFF_T = ctypes.c_int64  # off_t is 64-bit on the 64-bit Linux this runs on

# The frame index (byte offsets of every step-th frame) of files seeked in lately: a seek walks the frame
# headers from the start of the file (~37 us per second of audio), so without it the chunks of a long
# recording would cost quadratic time (a 12-hour mp3 in 3-minute chunks: minutes). With it, each seek
# walks from the nearest indexed frame, and libmpg123 extends the index as it goes (a growing index: a
# negative MPG123_INDEX_SIZE), which is kept thinned to at most _INDEX_ENTRIES frames.
_INDEXES: "collections.OrderedDict[Tuple, Tuple[List[int], int]]" = collections.OrderedDict()
_INDEXES_KEPT = 32
_INDEX_ENTRIES = 1_000
_INDEXES_LOCK = threading.Lock()


class Mpg123Error(RuntimeError):
    """libmpg123 could not open, seek or decode a file (or is not installed)."""


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Optional[ctypes.CDLL]:
    """The library with its signatures declared, or None where it cannot be loaded."""
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    handle, off_t = ctypes.c_void_p, _OFF_T
    signatures = {
        "mpg123_init": ([], ctypes.c_int),
        "mpg123_new": ([ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)], handle),
        "mpg123_delete": ([handle], None),
        "mpg123_param": ([handle, ctypes.c_int, ctypes.c_long, ctypes.c_double], ctypes.c_int),
        "mpg123_open": ([handle, ctypes.c_char_p], ctypes.c_int),
        "mpg123_open_feed": ([handle], ctypes.c_int),
        "mpg123_feed": ([handle, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int),
        "mpg123_close": ([handle], ctypes.c_int),
        "mpg123_getformat": ([handle, ctypes.POINTER(ctypes.c_long), ctypes.POINTER(ctypes.c_int),
                              ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
        "mpg123_format_none": ([handle], ctypes.c_int),
        "mpg123_format": ([handle, ctypes.c_long, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "mpg123_read": ([handle, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], ctypes.c_int),
        "mpg123_seek": ([handle, off_t, ctypes.c_int], off_t),
        "mpg123_index": ([handle, ctypes.POINTER(ctypes.POINTER(off_t)), ctypes.POINTER(off_t),
                          ctypes.POINTER(ctypes.c_size_t)], ctypes.c_int),
        "mpg123_set_index": ([handle, ctypes.POINTER(off_t), off_t, ctypes.c_size_t], ctypes.c_int),
        "mpg123_strerror": ([handle], ctypes.c_char_p),
        "mpg123_plain_strerror": ([ctypes.c_int], ctypes.c_char_p),
        "mpg123_current_decoder": ([handle], ctypes.c_char_p),
    }
    for function, (argtypes, restype) in signatures.items():
        getattr(lib, function).argtypes = argtypes
        getattr(lib, function).restype = restype
    if lib.mpg123_init() != _MPG123_OK:
        return None
    return lib


def available() -> bool:
    """Whether libmpg123 can be loaded."""
    return _load(LIBRARY) is not None


class Mp3File:
    """An open mp3 file, read as float32 mono at `rate`: the file's rate divided by 2**down_sample, or
    by less where that would not stay above `min_rate` or libmpg123 has no such rate (a 22.05 kHz file is
    decoded at its own rate where min_rate is 16 kHz).

    Channels are mixed to their average inside the decoder; the encoder's delay and padding are
    trimmed (gapless, from the LAME header), as libsndfile does. The file is fed to the decoder a MiB at
    a time (`feed`), else read by libmpg123 itself, as a seek does: the same samples. Use as a context
    manager.

    Raises:
      Mpg123Error: the library cannot be loaded, or the file cannot be opened as MPEG audio.
    """

    def __init__(self, path: str, down_sample: int, min_rate: int = 0, feed: bool = True):
        self._lib = _load(LIBRARY)
        if self._lib is None:
            raise Mpg123Error(f"cannot load {LIBRARY}")
        self._handle = self._file = None
        for down in range(down_sample, -1, -1):
            try:
                self._open(path, down, feed)
            except Mpg123Error:
                if down == 0:
                    raise
                continue  # libmpg123 has no output rate below 8 kHz (a 22.05 kHz file at a quarter): a higher one
            if self.rate > min_rate or down == 0:
                return
            self.close()

    def _open(self, path: str, down_sample: int, feed: bool = True) -> None:
        """Opens `path` at 2**-down_sample of its rate: fed from a Python file (sequential reading), or
        through libmpg123's own reader (`feed=False`, for seeking)."""
        self.down_sample = down_sample
        self._path = path
        error = ctypes.c_int(0)
        self._handle = self._lib.mpg123_new(None, ctypes.byref(error))
        if not self._handle:
            raise Mpg123Error(self._lib.mpg123_plain_strerror(error.value).decode())
        try:
            flags = _MPG123_MONO_MIX | _MPG123_FORCE_FLOAT | _MPG123_GAPLESS | _MPG123_QUIET
            self._check(self._lib.mpg123_param(self._handle, _MPG123_ADD_FLAGS, flags, 0.0))
            self._check(self._lib.mpg123_param(self._handle, _MPG123_DOWN_SAMPLE, down_sample, 0.0))
            if feed:
                self._file = open(path, "rb")
                self._check(self._lib.mpg123_open_feed(self._handle))
                # The format is known once the first frame has been parsed.
                code = self._decode(None, 0)[0]
                if code == _MPG123_DONE:
                    raise Mpg123Error("no MPEG audio frame in the file")
                if code != _MPG123_NEW_FORMAT:
                    raise self._error()
            else:
                self._check(self._lib.mpg123_param(self._handle, _MPG123_INDEX_SIZE, -_INDEX_ENTRIES, 0.0))
                self._check(self._lib.mpg123_open(self._handle, path.encode()))
            rate, channels, encoding = ctypes.c_long(), ctypes.c_int(), ctypes.c_int()
            self._check(self._lib.mpg123_getformat(self._handle, ctypes.byref(rate), ctypes.byref(channels),
                                                   ctypes.byref(encoding)))
            # Fixed for the whole file: a stream that changes format part way is an error, not a surprise.
            self._check(self._lib.mpg123_format_none(self._handle))
            self._check(self._lib.mpg123_format(self._handle, rate.value, _MPG123_MONO, _MPG123_ENC_FLOAT_32))
            self.rate = int(rate.value)
            self._started = False
        except BaseException:  # Mpg123Error, or OSError opening the file: nothing left open
            self.close()
            raise

    @property
    def synthesis(self) -> str:
        """The decoder core libmpg123 chose for this file (e.g. 'AVX'; 'generic' below the file's rate)."""
        return self._lib.mpg123_current_decoder(self._handle).decode()

    def _error(self) -> Mpg123Error:
        return Mpg123Error(self._lib.mpg123_strerror(self._handle).decode(errors="replace"))

    def _check(self, code: int) -> None:
        if code != _MPG123_OK:
            raise self._error()

    def seek(self, sample: int) -> None:
        """Moves to `sample` (at `rate`), exactly: libmpg123's own reader walks the frame headers to it
        (no fuzzy seeking; fed, it would have to be given every byte before it) and decodes a frame or
        more before it again (MPG123_PREFRAMES) for the bit reservoir."""
        if sample == 0 and not self._started:
            return
        if self._file is not None:
            down_sample = self.down_sample
            self.close()
            self._open(self._path, down_sample, feed=False)
        stat = os.stat(self._path)
        key = (self._path, stat.st_size, stat.st_mtime_ns)  # a file rewritten in place is another file
        with _INDEXES_LOCK:
            known = _INDEXES.get(key)
        if known:
            offsets, step = known
            self._check(self._lib.mpg123_set_index(self._handle, (_OFF_T * len(offsets))(*offsets), step, len(offsets)))
        if self._lib.mpg123_seek(self._handle, sample, _SEEK_SET) < 0:
            raise self._error()
        self._remember_index(key, reached=len(known[0]) * known[1] if known else 0)

    def _remember_index(self, key: Tuple, reached: int) -> None:
        """Keeps the handle's frame index (thinned to _INDEX_ENTRIES) for `key` where it reaches further
        than the `reached` frames of the one kept."""
        offsets, step, fill = ctypes.POINTER(_OFF_T)(), _OFF_T(), ctypes.c_size_t()
        self._check(self._lib.mpg123_index(self._handle, ctypes.byref(offsets), ctypes.byref(step), ctypes.byref(fill)))
        if fill.value == 0 or fill.value * step.value <= reached:
            return
        every = -(-fill.value // _INDEX_ENTRIES)
        thinned = np.ctypeslib.as_array(offsets, shape=(fill.value,))[::every].tolist()
        with _INDEXES_LOCK:
            _INDEXES[key] = (thinned, step.value * every)
            _INDEXES.move_to_end(key)
            while len(_INDEXES) > _INDEXES_KEPT:
                _INDEXES.popitem(last=False)

    def _decode(self, buffer, nbytes: int):
        """(libmpg123's code, bytes written) of one mpg123_read into `buffer`, feeding the file as the
        decoder asks for more; the end of the file ends the stream (_MPG123_DONE)."""
        done = ctypes.c_size_t(0)
        while True:
            code = self._lib.mpg123_read(self._handle, buffer, nbytes, ctypes.byref(done))
            if code != _MPG123_NEED_MORE or self._file is None:
                return code, done.value
            if done.value:  # some samples, then out of input: those first
                return _MPG123_OK, done.value
            data = self._file.read(_FEED_BYTES)
            if not data:
                return _MPG123_DONE, 0
            self._check(self._lib.mpg123_feed(self._handle, data, len(data)))

    def blocks(self, frames: int = -1) -> Iterator[np.ndarray]:
        """float32 blocks from here to the end, or of `frames` samples in all (fewer at the file's end)."""
        self._started = True
        remaining = None if frames < 0 else frames
        while remaining is None or remaining > 0:
            want = _BLOCK_SAMPLES if remaining is None else min(_BLOCK_SAMPLES, remaining)
            block = np.empty(want, dtype=np.float32)
            code, written = self._decode(block.ctypes.data, block.nbytes)
            got = written // 4
            if code not in (_MPG123_OK, _MPG123_DONE, _MPG123_NEW_FORMAT):
                raise self._error()
            if code == _MPG123_OK and not got:  # never seen; a batch job must not spin on it
                raise Mpg123Error("the decoder returned no samples")
            if got:
                yield block[:got]
                if remaining is not None:
                    remaining -= got
            if code == _MPG123_DONE:
                return

    def close(self) -> None:
        if self._handle:
            self._lib.mpg123_close(self._handle)
            self._lib.mpg123_delete(self._handle)
            self._handle = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Mp3File":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
