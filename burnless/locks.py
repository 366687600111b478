"""Exclusive file locks (POSIX ``flock``), with a timeout: the one locking primitive.

Every lock burnless takes (a session for a whole turn, a JSONL file for one append, the budget,
the breaker) is an advisory ``flock`` on a ``.lock`` file. The kernel releases it when the
holder dies, so a crashed run never leaves a stale lock behind.

(This replaces the ``filelock`` package, whose import alone cost ~18 ms, an eighth of the
start-up budget of every ``burnless run``, for the one call we need.)
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockTimeout(TimeoutError):
    """The lock was held by someone else for longer than the timeout."""


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} held for more than {timeout:g}s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
