"""Safe file access: whole-file writes (a reader sees the old file or the new one, never half of
either), and reads that refuse anything but a regular file."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, rename over the target.

    A failure (disk full, read-only directory, the target is a directory) leaves the target as
    it was, removes the temp file and raises an ``OSError`` that names ``path``.
    """
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(exc, OSError) and exc.filename is None:
            # A failed write() names no file; say which one (the errno's subclass is kept).
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file.

    Opened non-blocking, then checked: a FIFO or device planted there raises ``OSError``
    (EINVAL) at once instead of hanging the reader. A missing file raises FileNotFoundError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
