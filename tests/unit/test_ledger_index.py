"""The SQLite ledger index under concurrency, when busy or unwritable, and its --by hooks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting import index as ledger_index
from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex, scan
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from burnless.accounting.usage import report
from burnless.storage import jsonl
from tests.conftest import FAKES, Workspace

CLIENT = FAKES / "ledger_client.py"


def rec(**kw: Any) -> LedgerRecord:
    base: dict[str, Any] = dict(
        run_id="r-20261128T120000-abcdef", session="s", role="execution", tier="silver",
        model="claude-sonnet-4-6", status="ok", tokens=Tokens(100, 10, 1000, 50),
        cost_usd=0.01, cost_source="reported", audit="passed",
    )
    base.update(kw)
    return LedgerRecord(**base)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / ".burnless"
    d.mkdir()
    return d


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


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
