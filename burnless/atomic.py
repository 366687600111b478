"""Whole-file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
