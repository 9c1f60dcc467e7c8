"""components/malloc.py: with keep_freed_memory, a worker thread's large buffer, freed and asked for again (as
counting does for every recording), reuses the pages it had; with glibc's default each request faults them in
afresh. Each arm runs in its own interpreter: the setting is process-wide and cannot be undone."""

import json
import pathlib
import subprocess
import sys

import pytest

from components import malloc

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")

BUFFER_MB = 64  # above glibc's largest mmap threshold (32 MiB) and a worker thread's 64 MiB heap
REPEATS = 6
REPO = pathlib.Path(malloc.__file__).parents[1]

# Page faults of each repeat after the first: a worker thread fills a fresh buffer and frees it.
_CHILD = f"""
import json, resource, sys, threading
import numpy as np
from components import malloc
configured = malloc.keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
def work():
    for _ in range({REPEATS}):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = np.ones({BUFFER_MB} << 18, np.float32)  # {BUFFER_MB} MiB, every page written
        del buffer
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(json.dumps({{"configured": configured, "faults": faults}}))
"""


def _repeat_faults(arm: str) -> tuple:
    """(whether malloc was configured, page faults of every repeat but the first) in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _CHILD, arm], capture_output=True, text=True, check=True,
                         cwd=REPO)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["configured"], result["faults"][1:]


def test_freed_buffer_is_reused_not_faulted_in_again():
    configured, kept = _repeat_faults("keep")
    _, default = _repeat_faults("default")
    assert configured is True
    # glibc's default maps every repeat afresh: at least one fault per 2 MiB (transparent huge pages).
    assert min(default) >= BUFFER_MB // 2
    # Kept: the repeats find the pages already there (a few faults for Python's own small objects).
    assert sum(kept) <= 0.05 * sum(default), (kept, default)
