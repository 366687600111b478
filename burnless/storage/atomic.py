"""Safe file access: whole-file writes (a reader sees the old file or the new one, never half of
either), and reads that refuse anything but a regular file."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, rename over the target.

    A failure (disk full, read-only directory, the target is a directory) leaves the target as
    it was, removes the temp file and raises an ``OSError`` that names ``path``.
    """
    tmp = ""
    try:
        fd, tmp = _temp_beside(path)
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


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new file (mode 0600) in ``path``'s directory, as ``tempfile.mkstemp`` makes one, without
    importing tempfile (and the shutil and compression modules it pulls in) on every run."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


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
