"""Shared by the benchmark scripts: peak memory from /proc, the CPU model, synthetic logs, a lock
for results files that several runs update."""

from __future__ import annotations

import fcntl
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the sidecar ``<path>.lock`` for the block.

    For a read-modify-write of a results file that runs finishing together may update at once:
    each waits for the other's write instead of losing it. The lock file is created if missing
    and never removed (removing it would let a waiter and a newcomer hold two different locks).
    """
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmHWM`` = peak resident set, ``VmRSS`` = now).

    Raises:
        RuntimeError: the field is absent.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS (``clear_refs`` 5); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def synthetic_interactions(n: int, n_users: int, n_items: int, seed: int = 0,
                           sorted_times: bool = False):
    """A synthetic interaction log: Zipf item popularity, uniform users, sparse raw ids.

    Args:
        n: interactions (rows).
        n_users, n_items: how many distinct users and items to draw from.
        seed: random seed.
        sorted_times: timestamps increasing in row order (hence per user); default random order,
            so that building sequences pays for the sort.

    Returns:
        pandas DataFrame with int64 ``user_id``, ``item_id``, ``timestamp`` (seconds, one year).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=n, p=weights / weights.sum())
    start = 1_600_000_000
    user_id = rng.integers(0, n_users, n, dtype=np.int64) * 7 + 3
    item_id = rng.permutation(n_items)[items].astype(np.int64) * 11 + 1
    timestamp = rng.integers(start, start + 365 * 86_400, n, dtype=np.int64)
    if sorted_times:
        timestamp = np.sort(timestamp)
    return pd.DataFrame({"user_id": user_id, "item_id": item_id, "timestamp": timestamp})


def busiest_processes(limit: int = 4) -> str:
    """The busiest other processes (``ps`` CPU share over their lifetime, command cut to 50
    characters), for a results header: what else ran while the figures were taken."""
    import subprocess

    lines = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], capture_output=True,
                           text=True).stdout.splitlines()[1:]
    busy = []
    for line in lines:
        pid, cpu, command = line.split(None, 2)
        if int(pid) != os.getpid() and float(cpu) >= 5 and len(busy) < limit:
            busy.append(f"`{command[:50]}` ({cpu} %)")
    return ", ".join(busy) or "no other process over 5 % CPU"
