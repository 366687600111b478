"""Exclusive file locks (POSIX ``flock``), with a timeout: the one locking primitive.

Every lock burnless takes (a session for a whole turn, a JSONL file for one append, the budget,
the breaker) is an advisory ``flock`` on a ``.lock`` file. The kernel releases it when the
holder dies, so a crashed run never leaves a stale lock behind.

A lock file can be removed while someone waits on it (``session rm`` deletes the session's
directory under its lock): a waiter that then gets the lock checks that it locked the file the
path names now, and if not locks that one instead, so two holders can never each lock a
different file of the same name. A lock file that is a symbolic link is refused.

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


def _open(path: Path) -> int:
    for _ in range(100):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except FileNotFoundError:
            continue  # the directory was removed between mkdir and open: make it again
    raise FileNotFoundError(f"{path.parent} keeps disappearing")


def _is_current(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not removed or replaced meanwhile)."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block."""
    fd = _open(path)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} held for more than {timeout:g}s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            if _is_current(fd, path):
                break
            # The file was removed while we waited: what we hold locks nothing. Lock the
            # file the path names now (created afresh if need be).
            os.close(fd)
            fd = -1
            fd = _open(path)
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases the lock
