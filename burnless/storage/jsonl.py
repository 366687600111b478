"""Append-only JSONL files: the one place that writes them.

Every append is whole lines written under a lock. A crash mid-write can leave a torn last line
(no trailing newline): readers skip it with a warning, and the next writer, under the lock, moves
the fragment to ``<file>.torn`` and truncates it away before appending (a last line that is a
whole record and lacks only its newline gets the newline instead). No complete record is ever
lost or rewritten in place.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from burnless.storage.locks import file_lock

log = logging.getLogger("burnless")

_CHUNK = 1 << 16


def dumps(record: Any) -> bytes:
    """One record as one line (orjson never emits a raw newline inside a line)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


@contextmanager
def locked(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold the file's append lock (for read-then-append sequences)."""
    with file_lock(Path(str(path) + ".lock"), timeout):
        yield


def append(path: Path, records: Sequence[Any], *, fsync: bool = True) -> None:
    """Append records as whole lines, under the file's lock, repairing a torn tail first."""
    with locked(path):
        append_unlocked(path, records, fsync=fsync)


def append_unlocked(path: Path, records: Sequence[Any], *, fsync: bool = True) -> None:
    """Append while the caller already holds ``locked(path)``."""
    data = b"".join(dumps(r) for r in records)
    repair_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def repair_torn_tail(path: Path) -> bool:
    """Move a torn last line to ``<path>.torn`` and truncate it away. Caller holds the lock."""
    try:
        f = open(path, "rb+")
    except FileNotFoundError:
        return False
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return False
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        cut = _after_last_newline(f, size)
        f.seek(cut)
        fragment = f.read()
        if _is_record(fragment):
            # A whole record that lost only its newline (a crash just before it, or a hand
            # edit): it is complete, so it stays, and only the newline is added.
            f.seek(size)
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            log.warning("%s: completed a last line that had no newline", path)
            return True
        with open(str(path) + ".torn", "ab") as torn:
            torn.write(fragment + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: moved a torn last line (%d bytes) to %s.torn", path, len(fragment), path)
    return True


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _after_last_newline(f: BinaryIO, size: int) -> int:
    """Offset just past the last newline before ``size`` (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        f.seek(start)
        chunk = f.read(end - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def read(path: Path) -> list[dict[str, Any]]:
    """Every whole record of the file, in order. A torn last line is skipped with a warning;
    a last line that is a whole record and lacks only its newline is read (it is not torn).
    """
    records, _ = _read(path, 0, whole_tail=True)
    return records


def read_from(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Records from byte ``offset`` on, and the offset just past the last whole line read.

    Used for incremental reading: pass the returned offset back next time.
    """
    return _read(path, offset, whole_tail=False)


def _read(path: Path, offset: int, *, whole_tail: bool) -> tuple[list[dict[str, Any]], int]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end < len(data):
        if whole_tail and _is_record(data[end:]):
            end = len(data)
        else:
            log.warning("%s: skipping a torn last line (%d bytes)", path, len(data) - end)
    return parse_lines(data[:end], path), offset + end


def parse_lines(data: bytes, path: Path | str = "<jsonl>") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("%s: skipping line %d: not valid JSON", path, lineno)
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            log.warning("%s: skipping line %d: not a JSON object", path, lineno)
    return out


class Records:
    """Iterate the whole records of a file from byte ``start`` up to ``end``, in bounded chunks.

    For large files read incrementally (the ledger index): memory stays at one chunk, and after
    iteration ``offset`` is just past the last whole line consumed and ``torn`` the number of
    bytes after it that had no newline yet (a torn or in-progress last line, never consumed).
    The caller decides whether to warn about ``torn``: a line being appended right now is not
    an error. ``start`` and ``end`` must fall on line boundaries (``end=None``: end of file).
    """

    def __init__(
        self, path: Path, start: int = 0, end: int | None = None, chunk_size: int = 1 << 23
    ) -> None:
        self.path = path
        self.offset = start
        self.end = end
        self.torn = 0
        self._chunk = chunk_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        loads = orjson.loads
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(self.offset)
            rest = b""
            remaining = -1 if self.end is None else self.end - self.offset
            while remaining != 0:
                size = self._chunk if remaining < 0 else min(self._chunk, remaining)
                block = f.read(size)
                if not block:
                    break
                if remaining > 0:
                    remaining -= len(block)
                data = rest + block if rest else block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                base = self.offset
                for line in data[:cut].splitlines():
                    try:
                        rec = loads(line)
                    except orjson.JSONDecodeError:
                        if line.strip():
                            log.warning("%s: skipping a line that is not valid JSON "
                                        "(near byte %d)", self.path, base)
                        continue
                    if isinstance(rec, dict):
                        yield rec
                    else:
                        log.warning("%s: skipping a line that is not a JSON object "
                                    "(near byte %d)", self.path, base)
                self.offset = base + cut
            self.torn = len(rest)
