"""glibc's malloc set up for the counting process: memory freed after one recording serves the next.

Counting allocates the same large buffers for every recording (its samples, its log-mel and spectrograms,
the networks' activations: tens of MB each) and frees them when the recording is done. By default glibc
serves a request of more than 32 MiB, and in a worker thread's arena any request its 64 MiB heaps cannot
hold, with fresh pages from the kernel and hands them back when they are freed, so every recording's
buffers were faulted in and zeroed again: 713,000-880,000 page faults for 6.2 hours of recordings, 6.5 % of
counting's CPU spent in the kernel. Kept, 184,000-189,000 faults (most of them start-up), 2.5 % in the
kernel, and counting 1.05-1.11x faster on an AMD EPYC in two runs (BENCHMARKS.md, "Counting speed and memory").

`keep_freed_memory` makes malloc serve every request from the one main heap and keep what is freed there
for the next request. The heap is as large as the most the process ever holds at once, so memory still
stays flat over any number and length of recordings (bench/batch_100h.py).

Imports nothing heavy, so a runner can call it before anything starts a thread.
"""

import ctypes
import logging

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1  # give back the heap's free top only beyond this many bytes
_M_MMAP_MAX = -4  # how many requests may be served by mmap (fresh pages) at once
_M_ARENA_MAX = -8  # how many arenas the threads share
# One heap for every thread: a worker thread's own arena would mmap what its 64 MiB heaps cannot hold.
ARENA_MAX = 1
# The heap's free top is given back to the kernel only beyond 1 GiB, which counting never frees at once.
TRIM_THRESHOLD_BYTES = 1 << 30

_log = logging.getLogger("capuchin.counting")


def keep_freed_memory() -> bool:
    """Sets glibc's malloc to keep freed memory for reuse (see the module's docstring); whether it could.

    Call it before the process starts its threads: a thread that has already allocated keeps its own
    arena. Elsewhere than glibc (musl, macOS) it does nothing and says so.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        _log.debug("Not glibc: malloc left as it is")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_ARENA_MAX, ARENA_MAX), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
