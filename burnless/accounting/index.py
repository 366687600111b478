"""Ledger aggregates in SQLite, kept up to date by reading only the bytes appended since.

The ledger (``ledger.jsonl``) is the truth; this index is a cache of its sums, in
``.burnless/cache/ledger-index.sqlite`` (the standard library's ``sqlite3``, WAL mode). Every
record adds to one row of each table, keyed by its UTC day and the fields reports group on:

- ``cells``    day, tier, model, role, status, refused_by, key: usage by tier, model, role,
               day or key, and the day's cost that budgets check;
- ``totals``   the same without the day: the metrics families (``/metrics``, ``/stats``);
- ``sessions`` session and day: usage by session, and a session's spend for budgets;
- ``roots``    root run and day, for records that name one (``root_run_id``).

A row holds the ten figures of ``usage.Stats`` (``STATS``), already split by ``billed``, the
one definition of a billed call: tokens and cost count billed calls only; refusals and
response-cache hits are counted apart. Sums grow with the number of distinct (day, session)
pairs, never with records, and no report holds more than its own rows in memory.

``meta`` holds the byte offset the tables cover and a fingerprint of the ledger (inode, and
hashes of its head and of the bytes just before the offset): a replaced, truncated or
rewritten ledger, or an index copied from elsewhere, is rebuilt from scratch, as is an index
SQLite reports damaged, of another format, or deleted. A catch-up runs under SQLite's write
lock (``BEGIN IMMEDIATE``) and commits the rows with the new offset, so concurrent readers
and writers each see a consistent state. A writer that cannot get the lock within
``BUSY_TIMEOUT_S`` (another process rebuilding a large index), or an index that cannot be
written at all, is never an error: the index is then copied into memory and caught up there,
for this process only, which for a stale copy means computing from the ledger directly.
A budget check (``spend_for``) adds a short tail (``SAVE_AFTER_BYTES``) from memory rather
than writing it: a write would cost a WAL checkpoint, with its fsyncs, when the process closes.

What is not detected: figures edited inside a structurally sound database (the JSON
checkpoint this replaces carried a digest of its content; SQLite pages carry no checksum).
Delete ``.burnless/cache/ledger-index.sqlite*`` to rebuild the index from the ledger.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import operator
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeGuard, TypeVar

import orjson

from burnless.accounting.ledger import ledger_path

log = logging.getLogger("burnless")
T = TypeVar("T")

FORMAT = 5  # PRAGMA user_version; bump when the tables change: an older index is rebuilt
DB = Path("cache") / "ledger-index.sqlite"
BUSY_TIMEOUT_S = 15.0  # how long a catch-up waits for another writer before going private
PARALLEL_AFTER_BYTES = 64 << 20  # a catch-up larger than this is parsed across processes
PIECE_BYTES = 16 << 20  # rows are summed in memory per piece, then written: bounded memory
SAVE_AFTER_BYTES = 256 * 1024  # a budget check reads a shorter tail rather than writing it
_FINGERPRINT_SPAN = 4096
TORN_AFTER_S = 2.0  # a tail unfinished for longer is torn, not being written

# The figures of a row, in the order of usage.Stats. Tokens and cost are of billed calls only.
STATS: Final = ("calls", "input", "output", "cache_read", "cache_write", "cost_usd",
                "unknown_cost_calls", "refusals", "audit_failures", "cached_hits", "failures")
CALLS, INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, COST, UNKNOWN, REFUSALS, AUDIT_FAILURES, \
    CACHED_HITS, FAILURES = range(11)
# Calls that did not succeed (an `escalate` is a hand-off by design, not a failure).
FAILED_STATUSES: Final = frozenset({"failed", "partial", "interrupted", "lost"})
Sums = list[float]

# Row keys. Strings a record does not give are "" (no readable ts: day "").
# day, tier, model, role, status, refused_by, key:
CellKey = tuple[str, str, str, str, str, str, str]
DAY, TIER, MODEL, ROLE, STATUS, REFUSED_BY, KEY = range(7)
TotalKey = tuple[str, str, str, str, str, str]  # a CellKey without its day
PairKey = tuple[str, str]  # (session or root, day)
Cells = dict[CellKey, Sums]
Pairs = dict[PairKey, Sums]

_CELL_COLUMNS = ("day", "tier", "model", "role", "status", "refused_by", "key")
_TABLES: Final = {
    "cells": _CELL_COLUMNS,
    "totals": _CELL_COLUMNS[1:],
    "sessions": ("session", "day"),
    "roots": ("root", "day"),
}


def billed(status: object, cached: object) -> bool:
    """The one definition of a billed call: a record of a call that was made. Refusals made no
    call; response-cache hits (``cached``) were answered from disk and billed nothing."""
    return status != "refused" and not cached


_FIELDS = itemgetter("tier", "model", "role", "session", "status", "audit", "cached")
_TOKENS = itemgetter("input", "output", "cache_read", "cache_write")
# Per record, what a real call can report. Past these a value is damage: tokens count as 0 and
# the cost as unknown, so no hand-edited line can drive a counter negative, to inf or past 64 bits.
_MAX_TOKENS = 2**53
_MAX_COST = 1e9
_MAX_INT = 2**62  # a sum past this is stored as a float (SQLite integers are 64-bit)


@dataclass
class Tables:
    """The rows of a stretch of the ledger, summed in memory before they are written."""

    cells: Cells = field(default_factory=dict)
    sessions: Pairs = field(default_factory=dict)
    roots: Pairs = field(default_factory=dict)

    def merge(self, other: Tables) -> None:
        merge(self.cells, other.cells)
        merge(self.sessions, other.sessions)
        merge(self.roots, other.roots)

    def __bool__(self) -> bool:
        return bool(self.cells or self.sessions)


@dataclass(frozen=True)
class Fingerprint:
    """Which ledger the index describes: its inode and hashes of its head and of its tail."""
    dev: int
    ino: int
    head: str  # sha256 of the first bytes (up to 4 KiB, within the offset)
    tail: str  # sha256 of the bytes just before the offset (up to 4 KiB)


@dataclass(frozen=True)
class Refresh:
    """What a catch-up did."""

    rebuilt: bool
    records: int


@dataclass(frozen=True)
class _Meta:
    """The ``meta`` row: the offset the tables cover, their record count, the fingerprint."""
    offset: int = 0
    records: int = 0
    dev: int = 0
    ino: int = 0
    head: str = ""
    tail: str = ""


# SQLite's primary result codes (sqlite3 names them from Python 3.11 on).
_SQLITE_ERROR, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT = 1, 5, 6, 11
_SQLITE_CONSTRAINT, _SQLITE_MISMATCH, _SQLITE_NOTADB = 19, 20, 26


def _busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds a lock (not damage)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file is not a sound index (rebuild it), rather than that it
    cannot be used right now (read-only, disk full, busy: leave it alone)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        # SQLITE_ERROR is SQL that does not fit the file: a table or column gone or changed.
        return code & 0xFF in (_SQLITE_ERROR, _SQLITE_CORRUPT, _SQLITE_CONSTRAINT,
                               _SQLITE_MISMATCH, _SQLITE_NOTADB)
    text = str(exc)
    return any(w in text for w in ("malformed", "not a database", "no such", "constraint",
                                   "mismatch", "has no column", "values for"))


class LedgerIndex:
    """The SQLite index of one ledger (``open`` it; ``close`` it, or use it in ``with``)."""

    def __init__(self, state_dir: Path, *, persist: bool = True) -> None:
        self.state_dir = state_dir
        self.path = ledger_path(state_dir)
        self.db_path = state_dir / DB
        self.private = not persist  # an index in memory that this process alone sees
        self.offset = 0
        self.records = 0
        self._torn_warned = -1
        self._lock = threading.RLock()  # one connection, used by one thread at a time
        self.db: sqlite3.Connection = self._connect()

    # ------------------------------------------------------------------ entry points

    @classmethod
    def open(cls, state_dir: Path, *, persist: bool = True) -> LedgerIndex:
        """The index, caught up with every whole line of the ledger. ``persist=False``: built
        in memory from scratch, the file neither read nor written."""
        idx = cls(state_dir, persist=persist)
        try:
            idx.refresh()
        except BaseException:
            idx.close()
            raise
        return idx

    def __enter__(self) -> LedgerIndex:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def refresh(self) -> Refresh:
        """Read what was appended since the last read; rebuild if the ledger was replaced.

        Never fails for the index's sake: a busy index is waited for (``BUSY_TIMEOUT_S``),
        then, like an index that cannot be written, replaced by a private copy in memory; a
        damaged one is rebuilt."""
        with self._lock:
            return self._retrying(self._refresh)

    # ------------------------------------------------------------------ queries

    def spend(self, *, session: str, day: str, key: str = "") -> Spend:
        """Settled spend of ``session`` (all time) and of ``day``: what budgets check; with
        ``key``, that virtual key's spend on ``day`` and in its month too."""
        return self._query(lambda: self._spend(session, day, key))

    def spend_now(self, *, session: str, day: str, key: str = "") -> Spend:
        """``spend`` of the whole ledger, for an index opened but not refreshed: a short tail
        (up to ``SAVE_AFTER_BYTES``) is read into memory and added, not written, since a write
        costs a checkpoint with its fsyncs when the process closes the index; a longer one is
        caught up first."""
        def query() -> Spend:
            st = self._stat()
            db = self.db
            db.execute("BEGIN")  # one snapshot for the offset and the sums
            try:
                meta = self._meta()
                gap = -1 if st is None else st.st_size - meta.offset
                if (0 <= gap <= SAVE_AFTER_BYTES and st is not None and self._matches(meta, st)
                        and (meta.offset > 0 or self._bare())):
                    committed = self._spend(session, day, key)
                    tail = scan(self.path, meta.offset, st.st_size)[0]
                    self._seen(meta)
                    return committed + tail_spend(tail, session, day, key)
            finally:
                db.execute("COMMIT")
            self._refresh()
            return self._spend(session, day, key)

        return self._query(query)

    def _spend(self, session: str, day: str, key: str = "") -> Spend:
        s = self.db.execute("SELECT total(cost_usd), total(calls) FROM sessions "
                            "WHERE session = ?", (session,)).fetchone()
        d = self.db.execute("SELECT total(cost_usd) FROM cells WHERE day = ?",
                            (day,)).fetchone()
        if not key:
            return Spend(float(s[0]), int(s[1]), float(d[0]))
        kd = self.db.execute("SELECT total(cost_usd) FROM cells WHERE key = ? AND day = ?",
                             (key, day)).fetchone()
        km = self.db.execute("SELECT total(cost_usd) FROM cells WHERE key = ? AND day >= ? "
                             "AND day <= ?", (key, day[:7] + "-01", day[:7] + "-31")).fetchone()
        return Spend(float(s[0]), int(s[1]), float(d[0]), float(kd[0]), float(km[0]))

    def grouped(self, table: str, column: str, first: str | None = None,
                last: str | None = None) -> list[tuple[str, Sums]]:
        """Rows of ``table`` summed by ``column`` over the days ``first``..``last`` (None:
        every row), sorted by the group's value."""
        if table not in _TABLES or column not in _TABLES[table]:
            raise ValueError(f"no column {column!r} in {table!r}")
        sums = ", ".join(f"total({c})" for c in STATS)
        where = "" if first is None else "WHERE day BETWEEN ? AND ?"
        args = () if first is None else (first, last)
        sql = f"SELECT {column}, {sums} FROM {table} {where} GROUP BY 1 ORDER BY 1"
        return self._query(lambda: [(r[0], _sums(r[1:])) for r in self.db.execute(sql, args)])

    def total(self, table: str, first: str | None = None, last: str | None = None) -> Sums:
        """Every row of ``table`` over the days ``first``..``last`` (None: all), summed."""
        if table not in _TABLES:
            raise ValueError(f"no table {table!r}")
        sums = ", ".join(f"total({c})" for c in STATS)
        where = "" if first is None else "WHERE day BETWEEN ? AND ?"
        args = () if first is None else (first, last)
        sql = f"SELECT {sums} FROM {table} {where}"
        return self._query(lambda: _sums(self.db.execute(sql, args).fetchone()))

    def totals(self) -> dict[TotalKey, Sums]:
        """Every figure summed over all days, by tier, model, role, status, refused_by, key."""
        return self._rows("totals")  # type: ignore[return-value]

    @property
    def cells(self) -> Cells:
        """Every row of ``cells`` (tests and debugging; reports query instead)."""
        return self._rows("cells")  # type: ignore[return-value]

    @property
    def sessions(self) -> Pairs:
        return self._rows("sessions")  # type: ignore[return-value]

    @property
    def roots(self) -> Pairs:
        return self._rows("roots")  # type: ignore[return-value]

    def _rows(self, table: str) -> dict[tuple[str, ...], Sums]:
        keys = _TABLES[table]
        sql = f"SELECT {', '.join(keys + STATS)} FROM {table}"
        return self._query(lambda: {tuple(r[:len(keys)]): _sums(r[len(keys):])
                                    for r in self.db.execute(sql)})

    def _query(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the index; on an index found damaged (or gone) meanwhile, on the
        index rebuilt from the ledger, or in memory."""
        with self._lock:
            try:
                return fn()
            except sqlite3.Error as exc:
                self._recover(exc, 0)

            def again() -> T:
                self._refresh()
                return fn()

            return self._retrying(again)

    # ------------------------------------------------------------------ the catch-up

    def _refresh(self) -> Refresh:
        st = self._stat()
        meta = self._meta()
        size = 0 if st is None else st.st_size
        if meta.offset == size and (
                self._bare() if size == 0 else st is not None and self._matches(meta, st)):
            self._seen(meta)
            return Refresh(False, 0)  # current: no write lock needed
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            meta = self._meta()  # again, under the lock: another process may have caught up
            st = self._stat()  # and the ledger grown meanwhile
            rebuilt = False
            if st is None or meta.offset == 0 or not self._matches(meta, st):
                rebuilt = meta.offset > 0 or meta.records > 0
                if rebuilt:
                    log.debug("%s: replaced or truncated; rebuilding its index", self.path)
                for table in _TABLES:
                    db.execute(f"DELETE FROM {table}")
                meta = _Meta()
            start, records = meta.offset, 0
            if st is not None and st.st_size > start:
                offset, records, torn = self._ingest(start, st.st_size)
                if (torn and self._torn_warned != offset
                        and time.time() - st.st_mtime > TORN_AFTER_S):
                    # A line being appended right now looks torn too: only a tail left alone
                    # for a while is worth a warning, and only once per position.
                    self._torn_warned = offset
                    log.warning("%s: not counting an incomplete last line (%d bytes)",
                                self.path, torn)
                head = self._hash(0, min(offset, _FINGERPRINT_SPAN))
                tail = self._hash(max(0, offset - _FINGERPRINT_SPAN), offset)
                meta = _Meta(offset, meta.records + records, st.st_dev, st.st_ino, head, tail)
            db.execute("INSERT OR REPLACE INTO meta VALUES (0, ?, ?, ?, ?, ?, ?)",
                       (meta.offset, meta.records, meta.dev, meta.ino, meta.head, meta.tail))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._seen(meta)
        return Refresh(rebuilt, records)

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None

    def _bare(self) -> bool:
        """Whether the index holds no rows (and so describes an empty or absent ledger)."""
        return self.db.execute("SELECT 1 FROM totals LIMIT 1").fetchone() is None

    def _seen(self, meta: _Meta) -> None:
        self.offset, self.records = meta.offset, meta.records

    def _matches(self, meta: _Meta, st: os.stat_result) -> bool:
        """Whether the rows still describe this ledger up to ``meta.offset``."""
        if meta.offset == 0:
            return meta.records == 0
        return ((st.st_dev, st.st_ino) == (meta.dev, meta.ino)
                and meta.offset <= st.st_size
                and self._hash(0, min(meta.offset, _FINGERPRINT_SPAN)) == meta.head
                and self._hash(max(0, meta.offset - _FINGERPRINT_SPAN), meta.offset)
                == meta.tail)

    def _ingest(self, start: int, end: int) -> tuple[int, int, int]:
        """Add the records of ``[start, end)``: (offset reached, records, torn bytes)."""
        offset, records, torn = start, 0, 0
        with _gc_paused():  # the rows received are lists without cycles, freed once written
            for rows, reached, n, left in scan_rows(self.path, start, end):
                write(self.db, rows)
                offset, records, torn = reached, records + n, left
        return offset, records, torn

    def _meta(self) -> _Meta:
        row = self.db.execute("SELECT offset, records, dev, ino, head, tail FROM meta "
                              "WHERE id = 0").fetchone()
        if row is None:
            return _Meta()
        offset, records, dev, ino, head, tail = row
        if not (all(isinstance(x, int) and x >= 0 for x in (offset, records, dev, ino))
                and isinstance(head, str) and isinstance(tail, str)):
            return _Meta(offset=1)  # edited by hand: matches no ledger, so it is rebuilt
        return _Meta(offset, records, dev, ino, head, tail)

    def _hash(self, lo: int, hi: int) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(lo)
                data = f.read(max(0, hi - lo))
        except OSError:
            return ""
        return hashlib.sha256(data).hexdigest()

    # ------------------------------------------------------------------ the database

    def _retrying(self, fn: Callable[[], T]) -> T:
        """``fn()``, then after a damaged index once more on a new file, then in memory."""
        for attempt in range(2):
            try:
                return fn()
            except sqlite3.Error as exc:
                self._recover(exc, attempt)
        return fn()  # in memory now: an error here is not the index file's doing

    def _connect(self) -> sqlite3.Connection:
        if self.private:
            return _memory()
        for attempt in range(2):
            try:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
                return _configure(sqlite3.connect(
                    self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                    check_same_thread=False))
            except sqlite3.Error as exc:
                if attempt or not _damaged(exc):
                    why: BaseException = exc
                    break
                self._discard(exc)
            except OSError as exc:
                why = exc
                break
        log.debug("%s: %s; using a private index in memory", self.db_path, why)
        self.private = True
        return _memory()

    def _recover(self, exc: sqlite3.Error, attempt: int) -> None:
        """After ``exc``: a damaged index file is removed and made again (``attempt`` 0); a
        busy or unwritable one, or one that fails again, is left for a private copy."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if self.private:
            raise exc  # an index in memory failing is not the index file's doing
        if attempt == 0 and _damaged(exc):
            self.db.close()
            self._discard(exc)
            self.db = self._connect()
            return
        log.debug("%s: %s; catching up in memory instead", self.db_path, exc)
        self._go_private()

    def _go_private(self) -> None:
        """Copy the committed index into memory (a snapshot: WAL readers are never blocked)
        and go on there; a stale or unreadable copy is rebuilt there from the ledger."""
        mem = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        try:
            self.db.backup(mem)
            if mem.execute("PRAGMA user_version").fetchone()[0] != FORMAT:
                raise sqlite3.DatabaseError("not an index of this format")
        except sqlite3.Error:
            mem.close()
            mem = _memory()
        self.db.close()
        self.db, self.private = mem, True

    def _discard(self, exc: BaseException) -> None:
        log.debug("%s: damaged (%s); rebuilding it from the ledger", self.db_path, exc)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.db_path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as err:
                log.debug("cannot remove %s%s: %s", self.db_path, suffix, err)


def _memory() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    _schema(db)
    return db


def _configure(db: sqlite3.Connection) -> sqlite3.Connection:
    """WAL mode (readers never wait for a writer) and the tables of this ``FORMAT``."""
    try:
        db.execute("PRAGMA synchronous = NORMAL")  # a cache: durable enough, no fsync per commit
        db.execute("PRAGMA cache_size = -16384")  # 16 MiB: a cold build's upserts stay in memory
        db.execute("PRAGMA journal_size_limit = 4194304")  # the WAL a rebuild leaves is cut back
        if db.execute("PRAGMA user_version").fetchone()[0] == FORMAT:
            return db
        # journal_mode needs the file to itself once; later opens find it already set.
        if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise sqlite3.OperationalError("database is locked (cannot enter WAL mode)")
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != FORMAT:
                _schema(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    except BaseException:
        db.close()
        raise
    return db


def _schema(db: sqlite3.Connection) -> None:
    names = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for name in names:
        db.execute(f'DROP TABLE "{name}"')
    db.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 0), offset INTEGER, "
               "records INTEGER, dev INTEGER, ino INTEGER, head TEXT, tail TEXT)")
    stats = ", ".join(f"{c} {'REAL' if c == 'cost_usd' else 'INTEGER'} NOT NULL"
                      for c in STATS)
    for table, keys in _TABLES.items():
        cols = ", ".join(f"{k} TEXT NOT NULL" for k in keys)
        db.execute(f"CREATE TABLE {table} ({cols}, {stats}, PRIMARY KEY ({', '.join(keys)})) "
                   "WITHOUT ROWID")
    db.execute(f"PRAGMA user_version = {FORMAT}")


def _upsert_sql(table: str) -> str:
    keys = _TABLES[table]
    marks = ", ".join("?" * (len(keys) + len(STATS)))
    update = ", ".join(f"{c} = {c} + excluded.{c}" for c in STATS)
    return (f"INSERT INTO {table} VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update}")


_UPSERT = {t: _upsert_sql(t) for t in _TABLES}


Rows = dict[str, list[list[Any]]]  # per table, the parameters of its upserts


def rows_of(tables: Tables) -> Rows:
    """The upserts that add ``tables`` to the index (``totals`` summed from the cells)."""
    totals: dict[TotalKey, Sums] = {}
    for k, v in tables.cells.items():
        add(totals, k[1:], v)
    return {name: [[*k, *_bind(v)] for k, v in part.items()]
            for name, part in (("cells", tables.cells), ("totals", totals),
                               ("sessions", tables.sessions), ("roots", tables.roots)) if part}


def write(db: sqlite3.Connection, rows: Rows) -> None:
    """Add ``rows`` to the index (inside the caller's transaction)."""
    for name, params in rows.items():
        db.executemany(_UPSERT[name], params)


def _bind(v: Sums) -> Sums:
    # Hand-edited lines can sum past SQLite's 64-bit integers; such a sum is stored as a float.
    if v[INPUT] > _MAX_INT or v[OUTPUT] > _MAX_INT or v[CACHE_READ] > _MAX_INT or (
            v[CACHE_WRITE] > _MAX_INT):
        return [float(x) for x in v]
    return v


def _sums(row: Sequence[Any]) -> Sums:
    """A row's figures as read back (``total()`` gives floats): counts as ints, the cost as a
    float."""
    out: Sums = list(map(int, row))
    out[COST] = float(row[COST])
    return out


def merge(into: dict[Any, Sums], delta: dict[Any, Sums]) -> None:
    for k, v in delta.items():
        add(into, k, v)


def add(cells: dict[Any, Sums], key: Any, v: Sums) -> None:
    """Add sums ``v`` into ``cells[key]`` (a copy when the key is new)."""
    cur = cells.get(key)
    if cur is None:
        cells[key] = v[:]
    else:
        for j, x in enumerate(v):
            cur[j] += x


# --------------------------------------------------------------------------- scanning


def scan(path: Path, start: int, end: int) -> tuple[Tables, int, int, int]:
    """Rows of the records in ``[start, end)``, in memory: (tables, offset reached, records,
    torn bytes). ``start`` and ``end`` fall on line boundaries."""
    tables = Tables()
    offset, records, torn = start, 0, 0
    for part, reached, n, left in _pieces(_scan_range, path, start, end):
        tables.merge(part)
        offset, records, torn = reached, records + n, left
    return tables, offset, records, torn


def scan_rows(path: Path, start: int, end: int) -> Iterator[tuple[Rows, int, int, int]]:
    """``scan`` piece by piece, in order, as upserts (each piece's rows, offset reached,
    records, torn bytes); a large range is read by forked processes while the caller writes
    what they return."""
    return _pieces(_scan_rows, path, start, end)


Piece = TypeVar("Piece")


def _pieces(fn: Callable[[Path, int, int], tuple[Piece, int, int, int]], path: Path, start: int,
            end: int) -> Iterator[tuple[Piece, int, int, int]]:
    bounds = _split(path, start, end, max(1, -(-(end - start) // PIECE_BYTES)))
    if end - start >= PARALLEL_AFTER_BYTES and len(bounds) > 1 and _can_fork():
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork")
        workers = max(2, min(_cpus(), 8))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            yield from pool.map(fn, [path] * len(bounds), *zip(*bounds, strict=True))
        return
    for lo, hi in bounds:
        yield fn(path, lo, hi)


def _scan_rows(path: Path, start: int, end: int) -> tuple[Rows, int, int, int]:
    # Lists are what a worker process sends back cheapest (Tables, keyed by tuples, cost the
    # parent twice as much to unpickle), and what the parent passes to SQLite as they are.
    with _gc_paused():  # rows_of allocates a list per row, and holds no cycles either
        tables, offset, n, torn = _scan_range(path, start, end)
        return rows_of(tables), offset, n, torn


def _scan_range(path: Path, start: int, end: int) -> tuple[Tables, int, int, int]:
    """The rows of the whole lines in ``[start, end)`` (``start`` on a line boundary):
    (tables, offset just past the last whole line, records, torn bytes after it)."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    fields, tokens_of, get = _FIELDS, _TOKENS, dict.get
    # Sums per key: every field a row needs, as the record gives it (normalised per key, in
    # ``_fold``, not per record: this loop is the cost of reading a large ledger).
    raw: dict[Any, list[Any]] = {}
    days: set[str] = set()  # the ts[:10] seen so far that are real days
    offset = start
    rest = b""
    try:
        f = open(path, "rb")
    except FileNotFoundError:  # gone since it was measured: nothing to read
        return Tables(), offset, 0, 0
    with f, _gc_paused():
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            block = f.read(min(_CHUNK, remaining))
            if not block:
                break
            remaining -= len(block)
            data = rest + block if rest else block
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            for line in data[:cut].splitlines():
                try:
                    r = loads(line)
                except decode_error:
                    if line.strip():
                        log.warning("%s: skipping a line that is not valid JSON (near byte %d)",
                                    path, offset)
                    continue
                # The fast path reads records as burnless writes them; anything else
                # (hand-written lines, missing or odd fields) takes the careful path. Nothing
                # is added before every value has been read and checked by the arithmetic.
                try:
                    ts = r["ts"]
                    cost = r["cost_usd"]
                    i, o, cr, cw = tokens_of(r["tokens"])
                    c = cost or 0.0
                    total = i + o + cr + cw + c
                    # ts with an offset needs converting to UTC; x - x is non-zero for NaN
                    # and inf; past these bounds a value is damage, not a figure.
                    if (ts[-1] != "Z" or ts[10] != "T" or total - total or (i | o | cr | cw) < 0
                            or total > _MAX_TOKENS or not 0.0 <= c <= _MAX_COST):
                        raise ValueError
                    day = ts[:10]
                    if day not in days:  # "2026-13-45" or "not a tim" is no day
                        if day_of(day) != day:
                            raise ValueError
                        days.add(day)
                    key: Any = (day, fields(r), get(r, "refused_by"), cost is None,
                                get(r, "key"), get(r, "root_run_id"))
                    acc = raw.get(key)
                except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                    if type(r) is not dict:
                        log.warning("%s: skipping a line that is not a JSON object "
                                    "(near byte %d)", path, offset)
                        continue
                    key, (i, o, cr, cw, c) = _careful(r)
                    acc = raw.get(key)
                if acc is None:
                    raw[key] = [1, i, o, cr, cw, c]
                else:
                    acc[0] += 1
                    acc[1] += i
                    acc[2] += o
                    acc[3] += cr
                    acc[4] += cw
                    acc[5] += c
            offset += cut
        tables, n = _fold(raw)  # with the collector still paused: it allocates a row per key
    return tables, offset, n, len(rest)


_CHUNK = 1 << 22  # bytes read at a time


def _fold(raw: dict[Any, list[Any]]) -> tuple[Tables, int]:
    """The rows of the records summed in ``raw``, and how many records they are."""
    cells: dict[Any, Sums] = {}  # keyed by the values as the records give them, then
    sessions: dict[Any, Sums] = {}  # normalised (None -> "") once per row, not per key
    roots: dict[Any, Sums] = {}
    records = 0
    plus = operator.add
    for (day, (tier, model, role, session, status, audit, cached), refused_by, no_cost, vkey,
         root), (n, i, o, cr, cw, c) in raw.items():
        records += n
        if billed(status, cached is True):
            v: Sums = [n, i, o, cr, cw, c, n if no_cost else 0, 0,
                       n if audit == "failed" else 0, 0, n if status in FAILED_STATUSES else 0]
        elif status == "refused":
            v = [0, 0, 0, 0, 0, 0.0, 0, n, 0, 0, 0]
        else:  # a response-cache hit
            v = [0, 0, 0, 0, 0, 0.0, 0, 0, 0, n, 0]
        key = (day, tier, model, role, status, refused_by, vkey)
        cur = cells.get(key)
        if cur is None:
            cells[key] = v
        else:
            cur[:] = map(plus, cur, v)
        pair = (session, day)
        cur = sessions.get(pair)
        if cur is None:
            sessions[pair] = v[:]
        else:
            cur[:] = map(plus, cur, v)
        if root:
            add(roots, (root, day), v)
    tables = Tables()
    for k, v in cells.items():
        add(tables.cells, tuple(map(_s, k)), v)
    for table, pairs in ((tables.sessions, sessions), (tables.roots, roots)):
        for (name, day), v in pairs.items():
            add(table, (_s(name), day), v)
    return tables, records


def _careful(r: dict[str, Any]) -> tuple[Any, tuple[int, int, int, int, float]]:
    """Key and sums of a record that is not in the shape burnless writes: a token count that
    is not a count (negative, past 2**53, not a number) is 0, a cost that is not a cost is
    unknown, a day that cannot be read is ""."""
    tokens = r.get("tokens")
    tokens = tokens if isinstance(tokens, dict) else {}
    nums = tuple(_num(tokens.get(k)) for k in ("input", "output", "cache_read", "cache_write"))
    cost_raw = r.get("cost_usd")
    cost = float(cost_raw) if _is_num(cost_raw) and 0 <= cost_raw <= _MAX_COST else None
    fields = tuple(r.get(k) for k in ("tier", "model", "role", "session", "status", "audit"))
    hashable = tuple(x if isinstance(x, (str, type(None))) else str(x) for x in fields)
    extra = tuple(_s(r.get(k)) for k in ("refused_by", "key", "root_run_id"))
    key = (day_of(r.get("ts")), (*hashable, r.get("cached") is True), extra[0], cost is None,
           extra[1], extra[2])
    i, o, cr, cw = (int(x) for x in nums)
    return key, (i, o, cr, cw, cost or 0.0)


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
    # would walk the growing tables again and again for nothing.
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


def _split(path: Path, start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """Up to ``parts`` ranges covering ``[start, end)``, each ending just after a newline."""
    step = (end - start) // parts
    cuts = [start]
    if parts > 1 and step > 0:
        with open(path, "rb") as f:
            for k in range(1, parts):
                f.seek(start + k * step)
                f.readline()  # to the next line boundary
                pos = f.tell()
                if cuts[-1] < pos < end:
                    cuts.append(pos)
    cuts.append(end)
    return list(zip(cuts, cuts[1:], strict=False))


# --------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class Spend:
    """Settled spend, what budgets check a new call against."""

    session_cost: float = 0.0
    session_calls: int = 0
    day_cost: float = 0.0
    key_day_cost: float = 0.0  # of the gateway virtual key asked about, that day
    key_month_cost: float = 0.0  # ... and that day's calendar month (UTC)

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.session_cost + other.session_cost,
                     self.session_calls + other.session_calls, self.day_cost + other.day_cost,
                     self.key_day_cost + other.key_day_cost,
                     self.key_month_cost + other.key_month_cost)


def tail_spend(tables: Tables, session: str, day: str, key: str = "") -> Spend:
    """``Spend`` of rows still in memory (a tail of the ledger not yet in the index)."""
    mine = [v for (name, _), v in tables.sessions.items() if name == session]
    keyed = [(k, v) for k, v in tables.cells.items() if key and k[KEY] == key]
    return Spend(sum(v[COST] for v in mine), int(sum(v[CALLS] for v in mine)),
                 sum(v[COST] for k, v in tables.cells.items() if k[DAY] == day),
                 sum(v[COST] for k, v in keyed if k[DAY] == day),
                 sum(v[COST] for k, v in keyed if k[DAY][:7] == day[:7]))


def spend_for(state_dir: Path, *, session: str, day: str, key: str = "") -> Spend:
    """Cost and billed calls of ``session`` (all time) and cost of ``day`` (UTC, YYYY-MM-DD).

    Read through the index (two indexed lookups, plus the bytes appended since its last
    catch-up: read in memory while short, else caught up), so a budget check stays cheap
    however long the ledger grows; the guard calls this under its lock, after every settled
    call was appended, so it is complete. A call of unknown cost adds no cost (with a cost
    limit set, such calls are refused before they are made).
    """
    with LedgerIndex(state_dir) as idx:
        return idx.spend_now(session=session, day=day, key=key)


def tables_of(records: Iterable[dict[str, Any]]) -> Tables:
    """The rows of records given as mappings (copies read from a shared state server), each
    read as carefully as a hand-edited ledger line."""
    raw: dict[Any, list[Any]] = {}
    for r in records:
        key, (i, o, cr, cw, cost) = _careful(r)
        cur = raw.get(key)
        if cur is None:
            raw[key] = [1, i, o, cr, cw, cost]
        else:
            cur[:] = [cur[0] + 1, cur[1] + i, cur[2] + o, cur[3] + cr, cur[4] + cw, cur[5] + cost]
    return _fold(raw)[0]


class TablesView:
    """Rows in memory queried as ``LedgerIndex`` is (``grouped``, ``total``), so a report of
    them (the team's, from a shared state server) is the same projection as a local one."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def _rows(self, table: str, first: str | None, last: str | None
              ) -> Iterator[tuple[dict[str, str], Sums]]:
        """The rows of ``table`` over the days ``first``..``last`` (None: every row)."""
        if table == "totals":
            raise ValueError("totals are not kept in memory; group the cells")
        if table == "cells":
            rows: Iterator[tuple[dict[str, str], Sums]] = (
                (dict(zip(_CELL_COLUMNS, k, strict=True)), v)
                for k, v in self.tables.cells.items())
        else:
            pairs = self.tables.sessions if table == "sessions" else self.tables.roots
            rows = (({_TABLES[table][0]: name, "day": day}, v) for (name, day), v in pairs.items())
        for cols, v in rows:
            if first is None or first <= cols["day"] <= (last or cols["day"]):
                yield cols, v

    def grouped(self, table: str, column: str, first: str | None = None,
                last: str | None = None) -> list[tuple[str, Sums]]:
        if table not in _TABLES or column not in _TABLES[table]:
            raise ValueError(f"no column {column!r} in {table!r}")
        out: dict[str, Sums] = {}
        for cols, v in self._rows(table, first, last):
            add(out, cols[column], v)
        return sorted(out.items())

    def total(self, table: str, first: str | None = None, last: str | None = None) -> Sums:
        out: Sums = [0] * len(STATS)
        out[COST] = 0.0
        for _, v in self._rows(table, first, last):
            for j, x in enumerate(v):
                out[j] += x
        return out
