"""The SQLite ledger index under concurrency, when busy or unwritable, and its --by hooks; its
reports against a from-scratch report and a plain recount after appends, torn tails, truncation,
rotation and a damaged, unreadable or foreign index; the budget's spend against the records."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting import index as ledger_index
from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex, scan, spend_for
from burnless.accounting.tokens import Tokens
from burnless.accounting.usage import report
from burnless.storage import jsonl
from tests.conftest import FAKES, Workspace, rec, today
from tests.unit.conftest import (
    check_stats,
    group_of,
    ledger_record,
    recount_of,
    utc_today,
    varied,
    write,
)

CLIENT = FAKES / "ledger_client.py"


def recount(state: Path) -> tuple[int, float]:
    records = jsonl.read(ledger.ledger_path(state))
    return len(records), sum(r["cost_usd"] or 0.0 for r in records)


# --------------------------------------------------------------------------- concurrency


def test_several_processes_append_and_ingest_at_once(state: Path) -> None:
    """Six processes start together on a ledger with no index yet (all race to create it),
    each appending and reading its spend back after every call: none fails or misses its own
    calls, what each sees of the day only grows, and the index ends equal to a recount."""
    go = state.parent / "go"
    clients, calls = 6, 25
    procs = [subprocess.Popen([sys.executable, str(CLIENT), str(state), f"p{i}", str(calls),
                               str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(clients)]
    time.sleep(0.5)  # every interpreter up and waiting
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "locked" not in err, err
        results.append(orjson.loads(out))
    for r in results:
        assert r["seen"] == sorted(r["seen"]) and len(r["seen"]) == calls
        assert not r["private"]  # the waits were short: nobody needed a copy in memory
    n, cost = recount(state)
    assert n == clients * calls
    with LedgerIndex.open(state) as idx:
        assert not idx.private and idx.records == n
        spend = idx.spend(session="p0", day=today())
        assert spend.day_cost == pytest.approx(cost) and spend.session_calls == calls
        fresh = scan(idx.path, 0, idx.path.stat().st_size)[0]
        assert idx.sessions.keys() == fresh.sessions.keys()
        for key, sums in fresh.cells.items():
            assert idx.cells[key] == pytest.approx(sums)


@contextmanager
def write_locked(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the index's write lock for ``seconds`` (as a long rebuild
    does)."""
    code = ("import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "db.execute('COMMIT')\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.communicate()


def test_a_busy_index_is_waited_for(state: Path) -> None:
    ledger.record_call(state, rec(session="a"))
    LedgerIndex.open(state).close()
    ledger.record_call(state, rec(session="b"))
    with write_locked(state / ledger_index.DB, 1.0):
        t0 = time.monotonic()
        with LedgerIndex.open(state) as idx:
            waited = time.monotonic() - t0
            assert not idx.private and idx.records == 2
            assert sorted(k[0] for k in idx.sessions) == ["a", "b"]
    assert waited >= 0.5


def test_an_index_busy_past_the_timeout_is_computed_in_memory(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        ledger.record_call(state, rec(session=f"s{i % 2}", cost_usd=0.5))
    LedgerIndex.open(state).close()
    ledger.record_call(state, rec(session="late", cost_usd=2.0))
    monkeypatch.setattr(ledger_index, "BUSY_TIMEOUT_S", 0.3)
    with write_locked(state / ledger_index.DB, 30):
        t0 = time.monotonic()
        with LedgerIndex.open(state) as idx:
            assert idx.private and idx.records == 6
            assert idx.spend(session="late", day=today()).session_cost == pytest.approx(2.0)
        assert report(state, period="today", by="session").total.cost_usd == pytest.approx(4.5)
        assert time.monotonic() - t0 < 10
        assert ledger_index.spend_for(state, session="s0", day=today()).session_calls == 3
    with LedgerIndex.open(state) as idx:  # the lock gone: back on the file, caught up
        assert not idx.private and idx.records == 6


def test_an_unwritable_index_is_computed_in_memory(state: Path) -> None:
    ledger.record_call(state, rec(session="a"))
    (state / "cache").write_text("not a directory")
    with LedgerIndex.open(state) as idx:
        assert idx.private and idx.records == 1
    assert report(state, by="session").rows[0].key == "a"


def test_the_index_is_current_without_taking_the_write_lock(state: Path) -> None:
    ledger.record_call(state, rec())
    LedgerIndex.open(state).close()
    with write_locked(state / ledger_index.DB, 30):  # readers are never blocked (WAL)
        t0 = time.monotonic()
        with LedgerIndex.open(state) as idx:
            assert not idx.private and idx.records == 1
        assert time.monotonic() - t0 < 1


# --------------------------------------------------------------------------- --by key | root


def test_usage_by_key_and_by_root_when_records_carry_them(ws: Workspace) -> None:
    """Records that name a key or a root run (fields a later format adds) group by them;
    those that do not are one group, null; every grouping has the same total."""
    ws.tiers(silver="honest")
    rows = []
    for i, (key, root) in enumerate([("k1", "r-root-1"), ("k1", "r-root-1"), ("k2", "r-root-2"),
                                     (None, None), ("k2", None)]):
        d = rec(session=f"s{i}", cost_usd=0.5 + i).to_dict()
        if key:
            d["key"] = key
        if root:
            d["root_run_id"] = root
            d["parent_run_id"] = root
        rows.append(d)
    jsonl.append(ledger.ledger_path(ws.state), rows)

    def usage(by: str) -> dict[str, Any]:
        p = ws.run("usage", "--by", by, "--format", "json")
        assert p.returncode == 0, p.stderr
        return orjson.loads(p.stdout)

    by_key = usage("key")
    assert [(r["key"], r["calls"], r["cost_usd"]) for r in by_key["rows"]] == [
        (None, 1, 3.5), ("k1", 2, 2.0), ("k2", 2, 7.0)]
    by_root = usage("root")
    assert [(r["root"], r["calls"], r["cost_usd"]) for r in by_root["rows"]] == [
        (None, 2, 8.0), ("r-root-1", 2, 2.0), ("r-root-2", 1, 2.5)]
    assert by_key["total"] == by_root["total"] == usage("tier")["total"]
    assert by_key["total"]["calls"] == 5


def test_by_root_with_no_root_anywhere_is_one_group(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    for i in range(3):
        ledger.record_call(ws.state, rec(session=f"s{i}"))
    p = ws.run("usage", "--by", "root", "--format", "json")
    assert p.returncode == 0, p.stderr
    doc = orjson.loads(p.stdout)
    assert [(r["root"], r["calls"]) for r in doc["rows"]] == [(None, 3)]


def test_a_hostile_key_or_root_is_kept_as_text(state: Path) -> None:
    rows = [dict(rec().to_dict(), key={"a": 1}, root_run_id=["x"]),
            dict(rec().to_dict(), key=7, root_run_id=None)]
    jsonl.append(ledger.ledger_path(state), rows)
    with LedgerIndex.open(state) as idx:
        assert sorted(k[ledger_index.KEY] for k in idx.cells) == ["7", "{'a': 1}"]
        assert [k[0] for k in idx.roots] == ["['x']"]
    assert os.path.exists(state / ledger_index.DB)


# --------------------------------------------------------------------------- budget checks


def test_a_budget_check_reads_a_short_tail_without_writing_the_index(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A budget check adds a short unindexed tail from memory (no write, so no checkpoint and
    its fsyncs when it closes); a long one is caught up. Both equal a recount."""
    for i in range(6):
        ledger.record_call(state, rec(session=f"s{i % 2}", cost_usd=0.5))
    LedgerIndex.open(state).close()
    indexed = LedgerIndex(state)
    covered = indexed._meta().offset
    for i in range(4):
        ledger.record_call(state, rec(session="s0", cost_usd=0.25))
        spend = ledger_index.spend_for(state, session="s0", day=today())
        assert spend.session_calls == 4 + i
        assert spend.session_cost == pytest.approx(1.5 + 0.25 * (i + 1))
        assert spend.day_cost == pytest.approx(3.0 + 0.25 * (i + 1))
        assert indexed._meta().offset == covered  # read, not written
    monkeypatch.setattr(ledger_index, "SAVE_AFTER_BYTES", 10)
    spend = ledger_index.spend_for(state, session="s1", day=today())
    assert (spend.session_calls, spend.session_cost) == (3, pytest.approx(1.5))
    assert indexed._meta().offset == ledger.ledger_path(state).stat().st_size  # caught up
    indexed.close()


# --------------------------------------------------------------------------- the index, recounted

def fresh_report(state: Path, **kw: Any) -> dict[str, Any]:
    """The report computed from scratch, in memory: no index file read or written."""
    from burnless.accounting.usage import from_index

    with LedgerIndex.open(state, persist=False) as idx:
        return from_index(idx, period="all", **kw).to_dict()


def rounded(x: Any) -> Any:
    """``x`` with every float rounded to 7 places (sums in another order differ in the 16th)."""
    if isinstance(x, float):
        return round(x, 7)
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    return x


def same(got: Any, want: Any) -> None:
    assert rounded(got) == rounded(want)


def indexed_report(state: Path, by: str = "session") -> dict[str, Any]:
    return report(state, by=by, period="all").to_dict()


def whole_records(state: Path) -> list[dict[str, Any]]:
    """The whole lines of the ledger, parsed the obvious way (a torn tail is not a record)."""
    data = ledger.ledger_path(state).read_bytes()
    data = data[:data.rfind(b"\n") + 1]
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def check_index(state: Path) -> None:
    """The indexed report, the from-scratch report and a plain recount all agree."""
    for by in ("session", "tier"):
        got = indexed_report(state, by)
        same(got, fresh_report(state, by=by))
        want = recount_of(whole_records(state), group_of(by))
        assert {r[by] for r in got["rows"]} == set(want)
        for row in got["rows"]:
            check_stats(row, want[row[by]])


def test_index_follows_appends_a_torn_tail_and_its_repair(state: Path) -> None:
    write(state, *varied(12, seed=1))
    check_index(state)
    write(state, *varied(5, seed=2))  # appended after the index exists
    check_index(state)
    path = ledger.ledger_path(state)
    torn = jsonl.dumps(ledger_record(session="torn").to_dict())
    with open(path, "ab") as f:
        f.write(torn[:50])
    check_index(state)  # the fragment is no record
    assert "torn" not in {r["session"] for r in indexed_report(state)["rows"]}
    write(state, ledger_record(session="after"))  # the next writer moves the fragment away
    check_index(state)
    assert {"after"} <= {r["session"] for r in indexed_report(state)["rows"]}


def test_index_rebuilds_after_truncation_then_growth_past_the_old_offset(state: Path) -> None:
    write(state, *varied(30, seed=4))  # more than the 4 KiB hashed at the head
    check_index(state)
    live = LedgerIndex.open(state)  # the server's way: one open index, refreshed in place
    path = ledger.ledger_path(state)
    data = path.read_bytes()
    size = len(data)
    assert size > 8192
    last = data[:-1].rfind(b"\n") + 1
    with open(path, "r+b") as f:  # the last record removed by hand, same file
        f.truncate(last)
    write(state, *(ledger_record(session=f"new{i}", tokens=Tokens(7, 7, 7, 7)) for i in range(3)))
    assert path.stat().st_size > size  # grown past the offset the index had reached
    check_index(state)
    live.refresh()
    fresh = scan(path, 0, path.stat().st_size)[0]
    same(live.sessions, fresh.sessions)
    same(live.cells, fresh.cells)
    live.close()


def test_index_rebuilds_after_rotation_or_replacement(state: Path) -> None:
    path = ledger.ledger_path(state)
    write(state, *varied(10, seed=5))
    check_index(state)
    os.replace(path, path.with_name("ledger.jsonl.1"))  # rotated away: no ledger
    assert indexed_report(state)["rows"] == []
    write(state, ledger_record(session="rotated"))  # a new ledger, a new file
    check_index(state)
    assert [r["session"] for r in indexed_report(state)["rows"]] == ["rotated"]
    # Same size, same head, different tail: replaced by a same-length copy.
    write(state, *varied(20, seed=6))
    check_index(state)
    data = path.read_bytes()
    swapped = data[:4096] + data[4096:].replace(b'"session":"a"', b'"session":"z"')
    assert swapped != data and len(swapped) == len(data) and swapped[:4096] == data[:4096]
    path.write_bytes(swapped)
    check_index(state)
    # Emptied in place (copytruncate).
    path.write_bytes(b"")
    assert indexed_report(state)["rows"] == []


def _damages() -> list[tuple[str, Callable[[Path], Any]]]:
    """Ways an index file can be found: each must be rebuilt from the ledger, never read."""
    import sqlite3

    def sql(*statements: str) -> Callable[[Path], None]:
        def run(db: Path) -> None:
            with sqlite3.connect(db) as c:
                for s in statements:
                    c.execute(s)
            c.close()
        return run

    def overwrite(at: int, data: bytes) -> Callable[[Path], None]:
        def run(db: Path) -> None:
            with open(db, "r+b") as f:
                f.seek(at)
                f.write(data)
        return run

    return [
        ("the header zeroed", overwrite(0, b"\0" * 100)),
        ("truncated to a page", lambda db: os.truncate(db, 4096)),
        ("truncated mid-page", lambda db: os.truncate(db, 5000)),
        ("pages overwritten", overwrite(4096, random.Random(5).randbytes(8192))),
        ("another format", sql("PRAGMA user_version = 3")),
        ("a table dropped", sql("DROP TABLE sessions")),
        ("a table remade without a column", sql(
            "DROP TABLE cells", "CREATE TABLE cells (day TEXT, tier TEXT)")),
        ("meta emptied, rows kept", sql("DELETE FROM meta")),
        ("offset negative", sql("UPDATE meta SET offset = -1")),
        ("offset past the ledger", sql("UPDATE meta SET offset = offset + 10")),
        ("offset a string", sql("UPDATE meta SET offset = 'abc'")),
        ("records null", sql("UPDATE meta SET records = NULL")),
        ("fingerprint changed", sql("UPDATE meta SET head = 'x'")),
        ("inode changed", sql("UPDATE meta SET ino = ino + 1")),
        ("a directory in its place", lambda db: (os.unlink(db), db.mkdir())),
    ]


@pytest.mark.parametrize(("name", "damage"), _damages(), ids=[c[0] for c in _damages()])
def test_a_damaged_index_is_never_trusted(
    state: Path, name: str, damage: Callable[[Path], Any]
) -> None:
    write(state, *varied(40, seed=7))
    with LedgerIndex.open(state) as idx:
        db = idx.db_path
        # What a trusted index would show:
        idx.db.execute("UPDATE cells SET calls = calls + 1000, cost_usd = cost_usd + 1000")
        idx.db.execute("UPDATE sessions SET calls = calls + 1000, cost_usd = cost_usd + 1000")
    damage(db)
    raw = whole_records(state)
    got = spend_for(state, session="a", day=utc_today().isoformat())  # a budget check first
    (want,) = recount_of([r for r in raw if r["session"] == "a"]).values()
    (day,) = recount_of(raw).values()
    assert got.session_calls == want["calls"] and got.session_cost == pytest.approx(want["cost"])
    assert got.day_cost == pytest.approx(day["cost"])
    check_index(state)
    write(state, *varied(3, seed=17))  # and it is kept up to date from then on
    check_index(state)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"null", b'{"format": 3}',
                                 b"\x00" * 64, b"SQLite format 3\x00" + b"\xff" * 200])
def test_an_unreadable_index_is_ignored(ws: Workspace, raw: bytes) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *varied(8, seed=8))
    with LedgerIndex.open(ws.state) as idx:
        db = idx.db_path
    db.write_bytes(raw)
    (want,) = recount_of(ws.ledger()).values()
    p = ws.run("usage", "--period", "all", "--format", "json")
    assert p.returncode == 0, p.stderr
    check_stats(orjson.loads(p.stdout)["total"], want)
    check_index(ws.state)


def test_an_index_copied_from_another_workspace_is_not_used(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    same_records = varied(8, seed=9)
    write(a, *same_records)
    write(b, *same_records[:4])
    with LedgerIndex.open(a) as src:
        src_path = src.db_path
    dst = LedgerIndex(b).db_path
    dst.write_bytes(src_path.read_bytes())
    check_index(b)


# --------------------------------------------------------------------------- the budget's spend

def test_budget_spend_equals_the_records(state: Path) -> None:
    today = utc_today()
    records = varied(40, seed=10, day=today) + varied(10, seed=11, day=today - timedelta(days=1))
    write(state, *records)
    raw = whole_records(state)
    for session in ("a", "b", "c-1"):
        got = spend_for(state, session=session, day=today.isoformat())
        (mine,) = recount_of([r for r in raw if r["session"] == session]).values()
        (day,) = recount_of([r for r in raw if r["ts"][:10] == today.isoformat()]).values()
        assert got.session_calls == mine["calls"]
        assert got.session_cost == pytest.approx(mine["cost"])
        assert got.day_cost == pytest.approx(day["cost"])
