"""Adversarial review of the accounting reports: every figure `usage`, `metrics` and the budget's
spend show must equal a plain recount of the ledger records it covers, in every format, in any
local time zone, and whatever happened to the ledger or the index checkpoint in between."""

from __future__ import annotations

import csv
import io
import os
import pty
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex, day_of, scan, spend_for
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.metrics import Live, MetricsView, exposition
from burnless.accounting.tokens import Tokens
from burnless.accounting.usage import report
from burnless.runs import new_run_id
from burnless.storage import jsonl
from tests.conftest import Samples, Workspace, parse_metrics

TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write")
HOSTILE = ["a,b", 'say "hi"', "two\nlines", "=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2-3",
           "\ttab", "[/bold]", "[red]x"]


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def ts(day: date, clock: str = "12:00:00.000") -> str:
    return f"{day.isoformat()}T{clock}Z"


def rec(**kw: Any) -> LedgerRecord:
    base: dict[str, Any] = dict(
        run_id="r-20261128T120000-abcdef", session="s", role="execution", tier="silver",
        model="claude-sonnet-4-6", status="ok", tokens=Tokens(100, 10, 1000, 50),
        cost_usd=0.01, cost_source="reported", audit="passed", ts=ts(utc_today()),
    )
    base.update(kw)
    return LedgerRecord(**base)


def write(state: Path, *records: LedgerRecord) -> None:
    for r in records:
        ledger.record_call(state, r)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / ".burnless"
    d.mkdir()
    return d


def varied(n: int, seed: int = 3, day: date | None = None) -> list[LedgerRecord]:
    """Records of every kind burnless writes: refusals, cache hits, unknown costs, no model."""
    rnd = random.Random(seed)
    day = day or utc_today()
    out = []
    for i in range(n):
        status = rnd.choice(["ok", "ok", "ok", "failed", "partial", "refused", "interrupted",
                             "escalate"])
        cached = status != "refused" and rnd.random() < 0.15
        cost = None if rnd.random() < 0.25 else round(rnd.uniform(0, 0.3), 6)
        model = rnd.choice(["claude-sonnet-4-6", "claude-opus-4-8", None, "local"])
        out.append(rec(
            session=rnd.choice(["a", "b", "c-1", "d.2"]),
            role=rnd.choice(["planning", "execution", "compaction"]),
            tier=rnd.choice(["gold", "silver", "bronze"]), model=model, status=status,
            tokens=Tokens() if status == "refused" else Tokens(
                *(rnd.randint(0, 20_000) for _ in range(4))),
            cost_usd=0.0 if status == "refused" else cost,
            cost_source="unknown" if cost is None else "reported",
            audit=rnd.choice(["passed", "failed", "skipped"]), cached=cached,
            refused_by=rnd.choice(["budget", "policy"]) if status == "refused" else "",
            ts=ts(day, f"{i % 24:02d}:{i % 60:02d}:00.000"),
        ))
    return out


# --------------------------------------------------------------------------- a plain recount

def recount(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any] = lambda r: None
            ) -> dict[Any, dict[str, Any]]:
    """What every report must say, computed the obvious way from the raw records."""
    out: dict[Any, dict[str, Any]] = {}
    for r in records:
        acc = out.setdefault(key(r), {
            "calls": 0, **dict.fromkeys(TOKEN_FIELDS, 0), "cost": 0.0, "unknown": 0,
            "refusals": 0, "cached": 0, "audit_failures": 0, "failures": 0})
        if r["status"] == "refused":
            acc["refusals"] += 1
            continue
        if r["cached"]:
            acc["cached"] += 1
            continue
        acc["calls"] += 1
        for f in TOKEN_FIELDS:
            acc[f] += r["tokens"][f]
        if r["cost_usd"] is None:
            acc["unknown"] += 1
        else:
            acc["cost"] += r["cost_usd"]
        acc["audit_failures"] += r["audit"] == "failed"
        acc["failures"] += r["status"] in ("failed", "partial", "interrupted", "lost")
    return out


def expected_cost(acc: dict[str, Any]) -> float | None:
    return None if acc["calls"] and acc["unknown"] == acc["calls"] else acc["cost"]


def check_stats(got: dict[str, Any], want: dict[str, Any]) -> None:
    """A usage JSON/CSV group (numbers parsed) against the recount of its records."""
    assert int(got["calls"]) == want["calls"]
    for f in TOKEN_FIELDS:
        assert int(got[f]) == want[f], f
    assert int(got["unknown_cost_calls"]) == want["unknown"]
    assert int(got["refusals"]) == want["refusals"]
    assert int(got["cached_hits"]) == want["cached"]
    assert int(got["audit_failures"]) == want["audit_failures"]
    assert int(got["failures"]) == want["failures"]
    cost = expected_cost(want)
    if cost is None:
        assert got["cost_usd"] in (None, ""), got  # unknown, never 0
    else:
        assert float(got["cost_usd"]) == pytest.approx(cost, abs=1e-7)


def usage_json(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    p = ws.run("usage", "--format", "json", *args, env=env)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    doc: dict[str, Any] = orjson.loads(p.stdout)
    return doc


def group_of(by: str) -> Callable[[dict[str, Any]], Any]:
    if by == "day":
        return lambda r: day_of(r["ts"]) or None
    return lambda r: r[by] or None


# --------------------------------------------------------------------------- totals, groups

def test_json_csv_and_table_totals_equal_the_records_for_every_grouping(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *varied(60))
    records = ws.ledger()
    (everything,) = recount(records).values()
    assert everything["unknown"] and everything["refusals"] and everything["cached"]

    for by in ("tier", "model", "session", "role", "day"):
        doc = usage_json(ws, "--period", "all", "--by", by)
        check_stats(doc["total"], everything)
        want = recount(records, group_of(by))
        assert {r[by] for r in doc["rows"]} == set(want), by
        for row in doc["rows"]:
            check_stats(row, want[row[by]])
        # The groups add up to the total.
        for f in ("calls", *TOKEN_FIELDS, "unknown_cost_calls", "refusals", "cached_hits",
                  "failures"):
            assert sum(r[f] for r in doc["rows"]) == doc["total"][f], (by, f)
        assert sum(r["cost_usd"] or 0 for r in doc["rows"]) == pytest.approx(
            doc["total"]["cost_usd"], abs=1e-7)

        p = ws.run("usage", "--period", "all", "--by", by, "--format", "csv")
        assert p.returncode == 0, p.stderr
        rows = list(csv.DictReader(io.StringIO(p.stdout)))
        assert len(rows) == len(want)
        for row in rows:
            check_stats(row, want[row[by] or None])

    # The table's TOTAL line (exact below a million) says the same.
    p = ws.run("usage", "--period", "all")
    assert p.returncode == 0, p.stderr
    total = next(line for line in p.stdout.splitlines() if line.startswith("TOTAL")).split()
    assert [int(x.replace(",", "")) for x in total[1:7]] == [
        everything[f] for f in ("calls", "failures", *TOKEN_FIELDS)]
    assert total[8] == f"${everything['cost']:,.2f}*"  # '*': some calls' cost is unknown
    assert int(total[9]) == everything["refusals"]
    assert int(total[11]) == everything["cached"]
    assert f"excludes {everything['unknown']} call(s) of unknown cost" in p.stdout


def test_a_group_of_unknown_cost_is_never_shown_as_zero(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state,
          rec(tier="local", model="llama", cost_usd=None, cost_source="unknown"),
          rec(tier="local", model="llama", cost_usd=None, cost_source="unknown"),
          rec(tier="silver", cost_usd=0.25),
          rec(tier="silver", cost_usd=None, cost_source="unknown"),
          rec(tier="gold", status="refused", refused_by="budget", cost_usd=0.0,
              tokens=Tokens()))
    doc = usage_json(ws, "--by", "tier")
    rows = {r["tier"]: r for r in doc["rows"]}
    assert rows["local"]["cost_usd"] is None and rows["local"]["unknown_cost_calls"] == 2
    assert rows["silver"]["cost_usd"] == 0.25 and rows["silver"]["unknown_cost_calls"] == 1
    assert rows["gold"]["cost_usd"] == 0 and rows["gold"]["calls"] == 0  # a refusal: no call
    assert doc["total"]["cost_usd"] == 0.25 and doc["total"]["unknown_cost_calls"] == 3

    p = ws.run("usage", "--by", "tier", "--format", "csv")
    local = next(r for r in csv.DictReader(io.StringIO(p.stdout)) if r["tier"] == "local")
    assert local["cost_usd"] == "" and local["unknown_cost_calls"] == "2"

    p = ws.run("usage", "--by", "tier")
    lines = {line.split()[0]: line for line in p.stdout.splitlines() if line.strip()}
    assert "unknown*" in lines["local"] and "$0.0000" not in lines["local"]
    assert "$0.2500*" in lines["silver"] and "$0.2500*" in lines["TOTAL"]
    assert "excludes 3 call(s) of unknown cost" in p.stdout

    # /metrics: no $0 sample for a tier and model whose cost is unknown, the count instead.
    m = parse(ws.run("metrics").stdout)
    local = frozenset({"tier": "local", "model": "llama"}.items())
    assert ("burnless_cost_usd_total", local) not in m
    assert m[("burnless_unknown_cost_calls_total", local)] == 2
    silver = frozenset({"tier": "silver", "model": "claude-sonnet-4-6"}.items())
    assert m[("burnless_cost_usd_total", silver)] == 0.25

    # Only unknown costs in the whole report: the total is unknown too, not $0.
    only = Workspace(ws.root.parent / "only")
    only.tiers(silver="honest")
    write(only.state, rec(cost_usd=None, cost_source="unknown"))
    assert usage_json(only)["total"]["cost_usd"] is None
    assert "unknown*" in next(line for line in only.run("usage").stdout.splitlines()
                              if line.startswith("TOTAL"))


# --------------------------------------------------------------------------- periods

def boundary_records(today: date) -> dict[str, LedgerRecord]:
    """Records just inside and just outside every period's edges, each in its own session."""
    d = timedelta(days=1)
    at = {
        "today-first": ts(today, "00:00:00.000"),
        "today-last": ts(today, "23:59:59.999"),
        "yesterday-last": ts(today - d, "23:59:59.999"),
        "d6-first": ts(today - 6 * d, "00:00:00.000"),
        "d7-last": ts(today - 7 * d, "23:59:59.999"),
        "d29-first": ts(today - 29 * d, "00:00:00.000"),
        "d30-last": ts(today - 30 * d, "23:59:59.999"),
        "tomorrow": ts(today + d, "00:00:00.000"),  # a clock that was ahead
        "next-year": ts(today + 400 * d),
        # 00:30 at +01:00 is 23:30 yesterday in UTC; 23:30 at -01:00 is 00:30 tomorrow.
        "offset-yesterday": f"{today.isoformat()}T00:30:00+01:00",
        "offset-tomorrow": f"{today.isoformat()}T23:30:00-01:00",
        "offset-today": f"{(today - d).isoformat()}T23:30:00-01:00",
        "garbage": "not a timestamp",
        "garbage-z": "not a timeZ",
        "bad-month": "2026-13-45T00:00:00.000Z",
        "year-1": "0001-01-01T00:00:00+14:00",  # before year 1 in UTC: unreadable, no crash
        "year-9999": "9999-12-31T23:00:00-14:00",  # after year 9999 in UTC
    }
    return {name: rec(session=name, ts=t) for name, t in at.items()}


IN_PERIOD = {
    "today": {"today-first", "today-last", "offset-today"},
    "last7d": {"today-first", "today-last", "offset-today", "yesterday-last", "offset-yesterday",
               "d6-first"},
}
IN_PERIOD["last30d"] = IN_PERIOD["last7d"] | {"d7-last", "d29-first"}


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Adak"])
def test_periods_are_utc_days_in_any_local_zone(ws: Workspace, zone: str) -> None:
    ws.tiers(silver="honest")
    today = utc_today()
    recs = boundary_records(today)
    write(ws.state, *recs.values())
    env = {"TZ": zone}
    for period, sessions in IN_PERIOD.items():
        doc = usage_json(ws, "--period", period, "--by", "session", env=env)
        assert {r["session"] for r in doc["rows"]} == sessions, period
        assert doc["total"]["calls"] == len(sessions)
        assert doc["until"] == today.isoformat()
    since = usage_json(ws, "--since", (today - timedelta(days=6)).isoformat(), "--by", "session",
                       env=env)
    assert {r["session"] for r in since["rows"]} == IN_PERIOD["last7d"]
    # Everything, the unreadable and the future included, only under all.
    everything = usage_json(ws, "--period", "all", "--by", "session", env=env)
    assert {r["session"] for r in everything["rows"]} == set(recs)
    by_day = {r["day"]: r["calls"] for r in usage_json(
        ws, "--period", "all", "--by", "day", env=env)["rows"]}
    assert by_day[None] == 5  # the unreadable timestamps, under no day
    assert by_day[(today + timedelta(days=1)).isoformat()] == 2
    assert all(k is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", k) for k in by_day)
    # The table's title names the UTC days it covers.
    p = ws.run("usage", "--period", "last7d", env=env)
    assert f"{(today - timedelta(days=6)).isoformat()} to {today.isoformat()} UTC" in p.stdout


def test_the_ledger_stamps_records_in_utc_whatever_the_local_zone(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for zone in ("Pacific/Kiritimati", "America/Adak"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        try:
            r = rec(session=zone.replace("/", "-"), ts=ledger.now_iso())
            write(state, r)
            assert r.ts.endswith("Z")
            stamped = datetime.fromisoformat(r.ts[:-1]).replace(tzinfo=timezone.utc)
            assert abs(stamped - datetime.now(timezone.utc)) < timedelta(seconds=5)
            assert new_run_id()[2:10] == utc_today().strftime("%Y%m%d")
        finally:
            monkeypatch.delenv("TZ")
            time.tzset()
    assert report(state, period="today", by="session").total.calls == 2


# --------------------------------------------------------------------------- the index

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
        want = recount(whole_records(state), group_of(by))
        assert {r[by] for r in got["rows"]} == set(want)
        for row in got["rows"]:
            check_stats(row, want[row[by]])


def test_index_follows_appends_a_torn_tail_and_its_repair(state: Path) -> None:
    write(state, *varied(12, seed=1))
    check_index(state)
    write(state, *varied(5, seed=2))  # appended after the index exists
    check_index(state)
    path = ledger.ledger_path(state)
    torn = jsonl.dumps(rec(session="torn").to_dict())
    with open(path, "ab") as f:
        f.write(torn[:50])
    check_index(state)  # the fragment is no record
    assert "torn" not in {r["session"] for r in indexed_report(state)["rows"]}
    write(state, rec(session="after"))  # the next writer moves the fragment away
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
    write(state, *(rec(session=f"new{i}", tokens=Tokens(7, 7, 7, 7)) for i in range(3)))
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
    write(state, rec(session="rotated"))  # a new ledger, a new file
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
    (want,) = recount([r for r in raw if r["session"] == "a"]).values()
    (day,) = recount(raw).values()
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
    (want,) = recount(ws.ledger()).values()
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


# --------------------------------------------------------------------------- spend

def test_budget_spend_equals_the_records(state: Path) -> None:
    today = utc_today()
    records = varied(40, seed=10, day=today) + varied(10, seed=11, day=today - timedelta(days=1))
    write(state, *records)
    raw = whole_records(state)
    for session in ("a", "b", "c-1"):
        got = spend_for(state, session=session, day=today.isoformat())
        (mine,) = recount([r for r in raw if r["session"] == session]).values()
        (day,) = recount([r for r in raw if r["ts"][:10] == today.isoformat()]).values()
        assert got.session_calls == mine["calls"]
        assert got.session_cost == pytest.approx(mine["cost"])
        assert got.day_cost == pytest.approx(day["cost"])


# --------------------------------------------------------------------------- metrics

parse = parse_metrics


def summed(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_agree_with_usage_over_the_same_records(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *varied(60, seed=12))
    p = ws.run("metrics")
    assert p.returncode == 0, p.stderr
    m = parse(p.stdout)
    families = ("burnless_tier_planning_tokens_total", "burnless_tier_execution_tokens_total",
                "burnless_tier_compaction_tokens_total")
    for by in ("tier", "model"):
        for row in usage_json(ws, "--period", "all", "--by", by)["rows"]:
            label = {by: row[by] or ""}
            for typ in TOKEN_FIELDS:
                assert sum(summed(m, f, **label, type=typ) for f in families) == row[typ]
            assert summed(m, "burnless_cost_usd_total", **label) == pytest.approx(
                row["cost_usd"] or 0.0)
            assert summed(m, "burnless_unknown_cost_calls_total", **label) == (
                row["unknown_cost_calls"])
            if by == "tier":  # these are by tier only
                assert summed(m, "burnless_calls_total", **label) == row["calls"]
                assert summed(m, "burnless_refusals_total", **label) == row["refusals"]
                assert summed(m, "burnless_audit_failures_total", **label) == (
                    row["audit_failures"])
                assert summed(m, "burnless_cached_responses_total", **label) == (
                    row["cached_hits"])
    (want,) = recount(ws.ledger()).values()
    budget = sum(1 for r in ws.ledger() if r.get("refused_by") == "budget")
    assert summed(m, "burnless_budget_refusals_total") == budget
    assert summed(m, "burnless_ledger_records_total") == len(ws.ledger())
    assert summed(m, "burnless_calls_total") == want["calls"]


def test_the_live_metrics_follow_truncation_and_growth(state: Path) -> None:
    write(state, *varied(30, seed=13))
    live = Live(state)
    live.families()
    path = ledger.ledger_path(state)
    data = path.read_bytes()
    with open(path, "r+b") as f:  # two records removed in place, then more appended
        f.truncate(data[:data[:-1].rfind(b"\n")].rfind(b"\n") + 1)
    write(state, *varied(6, seed=14))
    assert path.stat().st_size > len(data)
    view = MetricsView()
    view.apply(scan(path, 0, path.stat().st_size)[0].cells)
    assert parse(exposition(live.families())) == pytest.approx(parse(exposition(
        view.families())))


# --------------------------------------------------------------------------- hostile names

def test_csv_quotes_hostile_names_and_defuses_formulas(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *(rec(session=name, model=name, cost_usd=0.5) for name in HOSTILE))
    for by in ("session", "model"):
        p = ws.run("usage", "--by", by, "--format", "csv")
        assert p.returncode == 0, p.stderr
        rows = list(csv.reader(io.StringIO(p.stdout)))
        assert len(rows) == 1 + len(HOSTILE)
        assert all(len(r) == len(rows[0]) for r in rows)
        keys = [r[0] for r in rows[1:]]
        for k in keys:
            assert not k.startswith(("=", "+", "-", "@", "\t", "\r")), k
        assert sorted(k[1:] if k.startswith("'") else k for k in keys) == sorted(HOSTILE)
        assert all(r[rows[0].index("cost_usd")] == "0.5" for r in rows[1:])
        # JSON keeps every name exactly.
        doc = usage_json(ws, "--by", by)
        assert sorted(r[by] for r in doc["rows"]) == sorted(HOSTILE)


def test_the_terminal_table_shows_names_not_markup(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *(rec(model=name) for name in ("[/bold]", "[red]x")))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "usage", "--by", "model"],
                            cwd=ws.root, stdout=slave, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "200", "TERM": "dumb"})
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    _, err = proc.communicate(timeout=30)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode())
    assert proc.returncode == 0, err.decode()
    assert "[/bold]" in text and "[red]x" in text


def test_out_of_range_values_in_a_hand_edited_ledger_are_damage_not_figures(
    state: Path,
) -> None:
    """Negative, past-2**53 and overflowing values count as 0 tokens / unknown cost: no
    counter goes negative or to inf, and the index still saves and loads."""
    write(state, rec())
    line = orjson.loads(orjson.dumps(rec().to_dict()))
    hostile = []
    for tokens, cost in (({"input": -500}, 0.01), ({"output": 10**19}, 0.01),
                         ({}, 1.5e308), ({}, 1.5e308), ({}, -3.0)):
        r = dict(line, tokens={**line["tokens"], **tokens}, cost_usd=cost)
        hostile.append(orjson.dumps(r) + b"\n")
    with open(state / "ledger.jsonl", "ab") as f:
        f.writelines(hostile)
    for _ in range(2):  # the second pass reads the index the first one wrote
        with LedgerIndex.open(state) as index:
            view = MetricsView()
            view.apply(index.cells)
        text = exposition(view.families())
        values = [s.value for fam in text_string_to_metric_families(text) for s in fam.samples]
        assert values and all(0 <= v < 1e12 for v in values), values
        total = report(state, period="all").total
        assert total.calls == 6 and 0 <= total.input < 10**6 and 0 <= total.output < 10**6
        assert total.cost_usd is not None and 0 <= total.cost_usd < 1
        assert total.unknown_cost_calls == 3
