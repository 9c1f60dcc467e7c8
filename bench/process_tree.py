"""Memory of a process and all its descendants (Dask workers, Beam worker processes), sampled over time.

Used by bench/dask_workers.py and bench/batch_100h.py. psutil when installed, else /proc.
"""

import os
import threading
import time
from typing import List, Tuple


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants, in bytes (0 once it is gone)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
        pending.extend(children.get(current, []))
    return total


class RssSampler:
    """Samples the tree's RSS every `interval` seconds on a thread: `samples` holds (seconds since start, bytes)."""

    def __init__(self, pid: int, interval: float = 1.0):
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._started = time.time()
        self.samples: List[Tuple[float, int]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time() - self._started, tree_rss_bytes(self._pid)))
            self._stop.wait(self._interval)

    @property
    def peak_mb(self) -> float:
        return max((rss for _, rss in self.samples), default=0) / 2**20
