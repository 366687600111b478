"""Ledger aggregates, kept up to date by reading only the bytes appended since the last read.

Every ledger record falls into a *cell*: its UTC day and the fields reports group or filter on.
A cell holds sums (records, the four token counts, known cost). Usage reports, metrics and
budget spend are projections of the cells, so any period is a sum of whole days. Two tables
keep the number of cells small: ``cells`` has every field but the session, ``sessions`` has
only the day, the session, the status and the flags reports need (cached, audit failed, cost
known).

CLI processes persist both tables with the ledger offset they cover in a checkpoint
(``.burnless/cache/ledger-index.json``) and read only what was appended since. The checkpoint
carries a fingerprint of the ledger (inode, and hashes of its head and of the bytes just before
the offset) and a digest of its own content: a replaced, truncated or rewritten ledger, or a
damaged checkpoint, is rebuilt from scratch. It is a cache: concurrent writers replace it
atomically and the last one wins, each consistent on its own.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, TypeGuard

import orjson

from burnless.accounting.ledger import ledger_path
from burnless.storage import jsonl

log = logging.getLogger("burnless")

FORMAT = 4  # bump when the cell layout changes: older checkpoints are ignored
CHECKPOINT = Path("cache") / "ledger-index.json"
SAVE_AFTER_BYTES = 256 * 1024  # re-reading less than this from the checkpoint is cheaper
PARALLEL_AFTER_BYTES = 64 << 20  # a cold build larger than this is split across processes
_FINGERPRINT_SPAN = 4096
TORN_AFTER_S = 2.0  # a tail unfinished for longer is torn, not being written

# A cell key. ``day`` is YYYY-MM-DD (UTC; "" when the record has no readable ts); strings a
# record does not give (or a table does not keep) are "".
Key = tuple[str, str, str, str, str, str, bool, bool, str, bool]
DAY: Final = 0
TIER: Final = 1
MODEL: Final = 2
ROLE: Final = 3
SESSION: Final = 4
STATUS: Final = 5
AUDIT_FAILED: Final = 6
CACHED: Final = 7
REFUSED_BY: Final = 8
COST_KNOWN: Final = 9
# Sums of a cell: [records, input, output, cache_read, cache_write, cost_usd (known costs only)].
Sums = list[float]
RECORDS: Final = 0
INPUT: Final = 1
OUTPUT: Final = 2
CACHE_READ: Final = 3
CACHE_WRITE: Final = 4
COST: Final = 5
Cells = dict[Key, Sums]



def billed(status: object, cached: object) -> bool:
    """The one definition of a billed call: a record of a call that was made. Refusals made no
    call; response-cache hits (``cached``) were answered from disk and billed nothing."""
    return status != "refused" and not cached


def is_billed(key: Key) -> bool:
    """Whether a cell holds billed calls (``billed`` of its status and cached flag)."""
    return billed(key[STATUS], key[CACHED])


_FIELDS = itemgetter("tier", "model", "role", "session", "status", "audit", "cached")
_TOKENS = itemgetter("input", "output", "cache_read", "cache_write")
# Per record, what a real call can report. Past these a value is damage: tokens count as 0 and
# the cost as unknown, so no hand-edited line can drive a counter negative, to inf or past 64 bits.
_MAX_TOKENS = 2**53
_MAX_COST = 1e9


@dataclass
class Tables:
    cells: Cells = field(default_factory=dict)  # every field but the session
    sessions: Cells = field(default_factory=dict)  # day, session, status and flags only

    def merge(self, other: Tables) -> None:
        merge(self.cells, other.cells)
        merge(self.sessions, other.sessions)

    def __bool__(self) -> bool:
        return bool(self.cells or self.sessions)


@dataclass(frozen=True)
class Fingerprint:
    dev: int
    ino: int
    head: str  # sha256 of the first bytes (up to 4 KiB, within the offset)
    tail: str  # sha256 of the bytes just before the offset (up to 4 KiB)

    def to_list(self) -> list[Any]:
        return [self.dev, self.ino, self.head, self.tail]


@dataclass(frozen=True)
class Refresh:
    """What a catch-up read: the cells it added (all cells after a rebuild)."""

    tables: Tables
    rebuilt: bool
    records: int


class LedgerIndex:
    """The cells of one ledger and the byte offset they cover."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = ledger_path(state_dir)
        self.tables = Tables()
        self.offset = 0
        self.records = 0
        self._dev_ino: tuple[int, int] | None = None
        self._head = ""
        self._tail = ""
        self._torn_warned = -1

    @property
    def cells(self) -> Cells:
        return self.tables.cells

    @property
    def sessions(self) -> Cells:
        return self.tables.sessions

    # ------------------------------------------------------------------ entry points

    @classmethod
    def open(cls, state_dir: Path, *, checkpoint: bool = True) -> LedgerIndex:
        """The index, up to date: from the checkpoint when it still matches, then caught up."""
        idx = cls(state_dir)
        loaded = idx._load_checkpoint() if checkpoint else False
        start = idx.offset
        done = idx.refresh()
        if checkpoint and idx.offset > 0 and (
            not loaded or done.rebuilt or idx.offset - start >= SAVE_AFTER_BYTES
        ):
            idx.save_checkpoint()
        return idx

    def refresh(self) -> Refresh:
        """Read what was appended since the last read; rebuild if the ledger was replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            rebuilt = self.offset > 0 or bool(self.tables)
            self._reset()
            return Refresh(Tables(), rebuilt, 0)
        rebuilt = False
        if self.offset and (
            (st.st_dev, st.st_ino) != self._dev_ino
            or st.st_size < self.offset
            or self._hash(0, min(self.offset, _FINGERPRINT_SPAN)) != self._head
            or self._hash(max(0, self.offset - _FINGERPRINT_SPAN), self.offset) != self._tail
        ):
            log.debug("%s: replaced or truncated; rebuilding its index", self.path)
            self._reset()
            rebuilt = True
        self._dev_ino = (st.st_dev, st.st_ino)
        if st.st_size == self.offset:
            return Refresh(self.tables if rebuilt else Tables(), rebuilt, 0)
        start = self.offset
        delta, self.offset, records, torn = scan(self.path, start, st.st_size)
        self.records += records
        # A line being appended right now looks torn too: only a tail left alone for a while is
        # worth a warning, and only once per position.
        if torn and self._torn_warned != self.offset and time.time() - st.st_mtime > TORN_AFTER_S:
            self._torn_warned = self.offset
            log.warning("%s: not counting an incomplete last line (%d bytes)", self.path, torn)
        if not self._head or start < _FINGERPRINT_SPAN:
            self._head = self._hash(0, min(self.offset, _FINGERPRINT_SPAN))
        self._tail = self._hash(max(0, self.offset - _FINGERPRINT_SPAN), self.offset)
        if self.tables:
            self.tables.merge(delta)
        else:
            self.tables = delta
        return Refresh(self.tables if rebuilt else delta, rebuilt, records)

    # ------------------------------------------------------------------ checkpoint

    @property
    def checkpoint_path(self) -> Path:
        return self.state_dir / CHECKPOINT

    def fingerprint(self) -> Fingerprint:
        dev, ino = self._dev_ino or (0, 0)
        return Fingerprint(dev, ino, self._head, self._tail)

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically; a cache that cannot be written is not an error."""
        from burnless.storage.atomic import write_atomic

        data = {
            "format": FORMAT, "offset": self.offset, "records": self.records,
            "fingerprint": self.fingerprint().to_list(),
            "cells": [[*k, *v] for k, v in self.cells.items()],
            "sessions": [[k[DAY], k[SESSION], k[STATUS], k[AUDIT_FAILED], k[CACHED],
                          k[COST_KNOWN], *v] for k, v in self.sessions.items()],
        }
        try:
            data["digest"] = _digest(data)
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.checkpoint_path, orjson.dumps(data))
        except (OSError, TypeError) as exc:  # TypeError: a sum past 64 bits (a hostile ledger)
            log.debug("cannot write %s: %s", self.checkpoint_path, exc)

    def _load_checkpoint(self) -> bool:
        try:
            data = orjson.loads(self.checkpoint_path.read_bytes())
            if data.get("format") != FORMAT:
                return False
            offset, records = int(data["offset"]), int(data["records"])
            dev, ino, head, tail = data["fingerprint"]
            if data["digest"] != _digest(data):  # damaged or edited: not ours to trust
                return False
            st = os.stat(self.path)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return False
        if (st.st_dev, st.st_ino) != (dev, ino) or not 0 <= offset <= st.st_size:
            return False
        if (self._hash(0, min(offset, _FINGERPRINT_SPAN)) != head
                or self._hash(max(0, offset - _FINGERPRINT_SPAN), offset) != tail):
            return False
        try:
            with _gc_paused():
                cells: Cells = {}
                for row in data["cells"]:
                    if len(row) != 16 or not all(_is_num(x) for x in row[10:]):
                        return False
                    cells[tuple(row[:10])] = row[10:]
                sessions: Cells = {}
                for row in data["sessions"]:
                    if len(row) != 12 or not all(_is_num(x) for x in row[6:]):
                        return False
                    day, session, status, failed, cached, known = row[:6]
                    key = (day, "", "", "", session, status, failed, cached, "", known)
                    sessions[key] = row[6:]
        except (TypeError, KeyError, ValueError):
            return False
        self.tables = Tables(cells, sessions)
        self.offset, self.records = offset, records
        self._dev_ino, self._head, self._tail = (dev, ino), head, tail
        return True

    # ------------------------------------------------------------------ helpers

    def _reset(self) -> None:
        self.tables = Tables()
        self.offset = self.records = 0
        self._dev_ino, self._head, self._tail = None, "", ""

    def _hash(self, lo: int, hi: int) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(lo)
                data = f.read(max(0, hi - lo))
        except OSError:
            return ""
        return hashlib.sha256(data).hexdigest()


def _digest(data: dict[str, Any]) -> str:
    """What a checkpoint's figures hash to (a damaged file must not pass for a valid one)."""
    body = [data[k] for k in ("offset", "records", "fingerprint", "cells", "sessions")]
    return hashlib.sha256(orjson.dumps(body)).hexdigest()


def merge(into: Cells, delta: Cells) -> None:
    for k, v in delta.items():
        add(into, k, v)


# --------------------------------------------------------------------------- scanning


def scan(path: Path, start: int, end: int) -> tuple[Tables, int, int, int]:
    """Cells of the records in ``[start, end)``: (tables, offset reached, records, torn bytes)."""
    if end - start >= PARALLEL_AFTER_BYTES and _can_fork():
        return _scan_parallel(path, start, end)
    return _scan(path, start, end)


def _scan(path: Path, start: int, end: int | None) -> tuple[Tables, int, int, int]:
    raw: dict[Any, Sums] = {}
    recs = jsonl.Records(path, start, end)
    days: set[str] = set()  # the ts[:10] seen so far that are real days
    n = 0
    with _gc_paused():
        for r in recs:
            n += 1
            # The fast path reads records as burnless writes them; anything else (hand-written
            # lines, missing or odd fields) takes the careful path. Nothing is mutated before
            # every field has been read and type-checked by the arithmetic below.
            try:
                ts = r["ts"]
                cost = r["cost_usd"]
                i, o, cr, cw = _TOKENS(r["tokens"])
                total = i + o + cr + cw + (cost or 0.0)
                # ts with an offset needs converting to UTC; x - x is non-zero for NaN and inf.
                if (ts[-1] != "Z" or ts[10] != "T" or total - total or (i | o | cr | cw) < 0
                        or total > _MAX_TOKENS or not 0.0 <= (cost or 0.0) <= _MAX_COST):
                    raise ValueError  # the careful path drops what is out of range
                day = ts[:10]
                if day not in days:  # "2026-13-45" or "not a tim" is no day
                    if day_of(day) != day:
                        raise ValueError
                    days.add(day)
                key: Any = (day, _FIELDS(r), r.get("refused_by", ""), cost is not None)
                acc = raw.get(key)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                key, (i, o, cr, cw, cost) = _careful(r)
                acc = raw.get(key)
            if acc is None:
                raw[key] = [1, i, o, cr, cw, cost or 0.0]
            else:
                acc[0] += 1
                acc[1] += i
                acc[2] += o
                acc[3] += cr
                acc[4] += cw
                if cost:
                    acc[5] += cost
        tables = Tables()
        for (day, (tier, model, role, session, status, audit, cached), refused_by, known), v in (
            raw.items()
        ):
            status, failed, cached = _s(status), audit == "failed", cached is True
            known = bool(known)
            add(tables.cells, (day, _s(tier), _s(model), _s(role), "", status, failed, cached,
                                _s(refused_by), known), v)
            add(tables.sessions, (day, "", "", "", _s(session), status, failed, cached, "",
                                   known), v)
    return tables, recs.offset, n, recs.torn


def add(cells: dict[Any, Sums], key: Any, v: Sums) -> None:
    """Add sums ``v`` into ``cells[key]`` (a copy when the key is new)."""
    cur = cells.get(key)
    if cur is None:
        cells[key] = v[:]
    else:
        for j, x in enumerate(v):
            cur[j] += x


def _careful(r: dict[str, Any]) -> tuple[Any, tuple[int, int, int, int, float | None]]:
    """Key and sums of a record that is not in the shape burnless writes."""
    tokens = r.get("tokens")
    tokens = tokens if isinstance(tokens, dict) else {}
    nums = tuple(_num(tokens.get(k)) for k in ("input", "output", "cache_read", "cache_write"))
    cost_raw = r.get("cost_usd")
    cost = float(cost_raw) if _is_num(cost_raw) and 0 <= cost_raw <= _MAX_COST else None
    fields = tuple(r.get(k) for k in ("tier", "model", "role", "session", "status", "audit"))
    hashable = tuple(x if isinstance(x, (str, type(None))) else str(x) for x in fields)
    key = (day_of(r.get("ts")), (*hashable, r.get("cached") is True),
           _s(r.get("refused_by")), cost is not None)
    i, o, cr, cw = (int(x) for x in nums)
    return key, (i, o, cr, cw, cost)


def _is_num(x: object) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: object) -> float:
    """A token count as recorded; anything else (negative, past 2**53, not a number) is 0."""
    return x if _is_num(x) and 0 <= x <= _MAX_TOKENS else 0


def _s(x: object) -> str:
    return x if isinstance(x, str) else ("" if x is None else str(x))


def day_of(ts: object) -> str:
    """The UTC day (YYYY-MM-DD) of an ISO timestamp; "" when it cannot be read."""
    if not isinstance(ts, str) or len(ts) < 10:
        return ""
    if ts.endswith("Z"):
        ts = ts[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(ts)
        if t.tzinfo is not None:
            t = t.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: year 1 at +14:00 is before year 1 UTC
        return ""
    return t.date().isoformat()  # strftime("%Y") does not pad years before 1000


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Scanning allocates millions of short-lived dicts and no cycles; the cyclic collector
    # would walk the growing cell table again and again for nothing.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def _can_fork() -> bool:
    # Forking a threaded process (the metrics server once it serves) is unsafe.
    return sys.platform == "linux" and _cpus() > 1 and threading.active_count() == 1


def _scan_parallel(path: Path, start: int, end: int) -> tuple[Tables, int, int, int]:
    """A cold build split at line boundaries across forked processes, merged in order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    bounds = _split(path, start, end, max(2, min(_cpus(), 8)))
    if len(bounds) < 2:  # no line boundary to split at
        return _scan(path, start, end)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=len(bounds) - 1, mp_context=ctx) as pool:
        futures = [pool.submit(_scan, path, lo, hi) for lo, hi in bounds[:-1]]
        last = _scan(path, *bounds[-1])  # this process takes the final share
        results = [f.result() for f in futures] + [last]
    tables = Tables()
    records = 0
    for part, _, n, _ in results:
        tables.merge(part)
        records += n
    return tables, last[1], records, last[3]


def _split(path: Path, start: int, end: int, parts: int) -> list[tuple[int, int | None]]:
    """``parts`` ranges covering ``[start, end)``, each ending just after a newline."""
    step = (end - start) // parts
    cuts = [start]
    with open(path, "rb") as f:
        for k in range(1, parts):
            f.seek(start + k * step)
            f.readline()  # to the next line boundary
            pos = f.tell()
            if cuts[-1] < pos < end:
                cuts.append(pos)
    out: list[tuple[int, int | None]] = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    out.append((cuts[-1], end))
    return out


@dataclass(frozen=True)
class Spend:
    """Settled spend, what budgets check a new call against."""

    session_cost: float = 0.0
    session_calls: int = 0
    day_cost: float = 0.0


def spend_for(state_dir: Path, *, session: str, day: str) -> Spend:
    """Cost and billed calls of ``session`` (all time) and cost of ``day`` (UTC, YYYY-MM-DD).

    Read through the index (only the bytes appended since the last checkpoint), so a budget
    check stays cheap however long the ledger grows; the guard calls this under its lock,
    after every settled call was appended, so it is complete. A call of unknown cost adds no
    cost (with a cost limit set, such calls are refused before they are made).
    """
    idx = LedgerIndex.open(state_dir)
    return spend_in(idx.cells, idx.sessions, session=session, day=day)


def spend_in(cells: Cells, sessions: Cells, *, session: str, day: str) -> Spend:
    session_cost = day_cost = 0.0
    calls = 0.0
    for key, sums in sessions.items():
        if key[SESSION] == session and is_billed(key):
            session_cost += sums[COST]
            calls += sums[RECORDS]
    for key, sums in cells.items():
        if key[DAY] == day and is_billed(key):
            day_cost += sums[COST]
    return Spend(session_cost, int(calls), day_cost)


def tables_of(records: Iterable[dict[str, Any]]) -> Tables:
    """Cells of records given as mappings (copies read from a shared state server), each read
    as carefully as a hand-edited ledger line."""
    tables = Tables()
    for r in records:
        (day, fields, refused_by, known), (i, o, cr, cw, cost) = _careful(r)
        tier, model, role, session, status, audit, cached = fields
        v: Sums = [1, i, o, cr, cw, cost or 0.0]
        status, failed = _s(status), audit == "failed"
        add(tables.cells, (day, _s(tier), _s(model), _s(role), "", status, failed, cached,
                           _s(refused_by), known), v)
        add(tables.sessions, (day, "", "", "", _s(session), status, failed, cached, "", known),
            v)
    return tables
