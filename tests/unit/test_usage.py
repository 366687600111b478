"""Usage reports: grouping, periods, shapes, unknown costs, and the incremental ledger index.

Every figure `usage` shows must equal a plain recount of the ledger records it covers
(``tests/unit/conftest.py``), in every format and in any local time zone; hostile tier and
session names are quoted in CSV and shown as text, not markup, in the table."""

from __future__ import annotations

import csv
import io
import os
import pty
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex, scan
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.metrics import MetricsView, exposition
from burnless.accounting.tokens import Tokens
from burnless.accounting.usage import from_index, report
from burnless.runs import new_run_id
from burnless.storage import jsonl
from tests.conftest import Workspace
from tests.conftest import parse_metrics as parse
from tests.unit.conftest import (
    TOKEN_FIELDS,
    check_stats,
    group_of,
    ledger_record,
    recount_of,
    usage_report,
    utc_stamp,
    utc_today,
    varied,
    write,
)

TODAY = date(2026, 11, 28)


def ts(day: date, hour: int = 12) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00.000Z"


def rec(day: date = TODAY, **kw: Any) -> LedgerRecord:
    base: dict[str, Any] = dict(
        run_id="r-20261128T120000-abcdef", session="s1", role="execution", tier="silver",
        model="claude-sonnet-4-6", status="ok", tokens=Tokens(100, 10, 1000, 50),
        cost_usd=0.01, cost_source="reported", audit="passed", ts=ts(day),
    )
    base.update(kw)
    return LedgerRecord(**base)


def usage_json(ws: Workspace, *args: str) -> dict[str, Any]:
    p = ws.run("usage", "--format", "json", *args)
    assert p.returncode == 0, p.stderr
    return orjson.loads(p.stdout)


# --------------------------------------------------------------------------- the figures


def test_groups_sum_tokens_cost_refusals_and_audit_failures(state: Path) -> None:
    write(
        state,
        rec(tier="silver", session="a"),
        rec(tier="silver", session="b", audit="failed", status="ok"),
        rec(tier="gold", role="planning", model="claude-opus-4-8", session="a",
            tokens=Tokens(2000, 300, 0, 0), cost_usd=0.5),
        rec(tier="silver", session="b", status="refused", refused_by="budget", cost_usd=0.0,
            tokens=Tokens()),
    )
    by_tier = {r.key: r.stats for r in report(state, by="tier", today=TODAY).rows}
    silver, gold = by_tier["silver"], by_tier["gold"]
    assert (silver.calls, silver.input, silver.output, silver.cache_read, silver.cache_write) == (
        2, 200, 20, 2000, 100)
    assert silver.cost_usd == pytest.approx(0.02) and silver.refusals == 1
    assert silver.audit_failures == 1
    assert silver.cache_hit_ratio == pytest.approx(2000 / (200 + 2000 + 100))
    assert (gold.calls, gold.input, gold.cost_usd, gold.refusals) == (1, 2000, 0.5, 0)
    assert gold.cache_hit_ratio == 0.0

    by_session = {r.key: r.stats for r in report(state, by="session", today=TODAY).rows}
    assert by_session["a"].calls == 2 and by_session["b"].calls == 1
    assert by_session["b"].refusals == 1
    by_role = {r.key: r.stats.calls for r in report(state, by="role", today=TODAY).rows}
    assert by_role == {"execution": 2, "planning": 1}
    by_model = {r.key: r.stats.calls for r in report(state, by="model", today=TODAY).rows}
    assert by_model == {"claude-sonnet-4-6": 2, "claude-opus-4-8": 1}
    total = report(state, by="tier", today=TODAY).total
    assert (total.calls, total.refusals, total.audit_failures) == (3, 1, 1)
    assert total.cost_usd == pytest.approx(0.52)


def test_unknown_cost_is_flagged_never_zero(state: Path) -> None:
    write(state, rec(cost_usd=0.25), rec(cost_usd=None, cost_source="unknown"),
          rec(cost_usd=None, cost_source="unknown"))
    (row,) = report(state, today=TODAY).rows
    assert row.stats.calls == 3 and row.stats.unknown_cost_calls == 2
    assert row.stats.cost_usd == pytest.approx(0.25)


def test_cached_hits_are_not_calls_and_add_no_tokens(state: Path) -> None:
    write(state, rec(), rec(cached=True, cost_usd=0.0, tokens=Tokens(100, 10, 1000, 50)))
    (row,) = report(state, today=TODAY).rows
    assert (row.stats.calls, row.stats.cached_hits, row.stats.input) == (1, 1, 100)


def test_periods_are_whole_utc_days(state: Path) -> None:
    days = [0, 6, 7, 29, 30, 400]
    write(state, *(rec(TODAY - timedelta(days=d), session=f"d{d}") for d in days))
    calls = {p: report(state, period=p, today=TODAY).total.calls
             for p in ("today", "last7d", "last30d", "all")}
    assert calls == {"today": 1, "last7d": 2, "last30d": 4, "all": 6}
    assert report(state, today=TODAY).period == "last30d"  # the default
    since = report(state, since=(TODAY - timedelta(days=7)).isoformat(), today=TODAY)
    assert since.total.calls == 3 and since.period is None
    assert since.since == "2026-11-21"
    by_day = report(state, by="day", period="last7d", today=TODAY)
    assert [r.key for r in by_day.rows] == ["2026-11-22", "2026-11-28"]


def test_timestamps_with_an_offset_count_on_their_utc_day(state: Path) -> None:
    # 01:30 at +02:00 is 23:30 the day before in UTC.
    jsonl.append(ledger.ledger_path(state), [
        {**rec().to_dict(), "ts": "2026-11-28T01:30:00+02:00"},
        {**rec().to_dict(), "ts": "not a time"},
    ])
    rows = report(state, by="day", period="all", today=TODAY).rows
    assert {r.key: r.stats.calls for r in rows} == {None: 1, "2026-11-27": 1}
    assert report(state, period="last30d", today=TODAY).total.calls == 1


def test_odd_records_do_not_crash_and_count_what_they_say(state: Path) -> None:
    path = ledger.ledger_path(state)
    path.write_bytes(
        orjson.dumps({"ts": ts(TODAY), "tier": "x", "status": "ok"}) + b"\n"  # no tokens
        + b"[1, 2]\n"  # not an object
        + b"{broken json\n"
        + orjson.dumps({"ts": ts(TODAY), "tier": "x", "status": "ok", "cost_usd": "free",
                        "tokens": {"input": "many", "output": 7}}) + b"\n"
    )
    (row,) = report(state, today=TODAY).rows
    assert row.key == "x" and row.stats.calls == 2 and row.stats.output == 7
    assert row.stats.unknown_cost_calls == 2


# --------------------------------------------------------------------------- the CLI


def test_cli_json_csv_and_table_shapes(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    today = datetime.now(timezone.utc).date()
    write(ws.state, rec(today, tier="silver"), rec(today, tier="gold", cost_usd=None),
          rec(today, tier="gold", status="refused", refused_by="policy", tokens=Tokens()))
    doc = usage_json(ws, "--by", "tier")
    assert set(doc) == {"period", "since", "until", "by", "rows", "total"}
    assert doc["period"] == "last30d" and doc["by"] == "tier"
    assert doc["until"] == today.isoformat()
    assert doc["since"] == (today - timedelta(days=29)).isoformat()
    rows = {r["tier"]: r for r in doc["rows"]}
    assert set(rows) == {"gold", "silver"}
    assert rows["gold"]["unknown_cost_calls"] == 1 and rows["gold"]["refusals"] == 1
    assert rows["silver"]["cost_usd"] == 0.01 and rows["silver"]["cache_hit_ratio"] == round(
        1000 / 1150, 4)
    assert doc["total"]["calls"] == 2 and doc["total"]["refusals"] == 1
    assert set(doc["total"]) == set(rows["gold"]) - {"tier"}

    p = ws.run("usage", "--format", "csv", "--by", "model")
    assert p.returncode == 0, p.stderr
    table = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["model"] for r in table] == ["claude-sonnet-4-6"]
    assert table[0]["calls"] == "2" and table[0]["unknown_cost_calls"] == "1"
    assert table[0]["refusals"] == "1"

    p = ws.run("usage", "--period", "all")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "Usage by tier, all time" in lines[0]
    assert any(line.startswith("TOTAL") for line in lines)
    gold = next(line for line in lines if line.startswith("gold"))
    assert "unknown" in gold
    assert "of unknown cost" in p.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--period", "yesterday"], "--period 'yesterday'"),
        (["--by", "color"], "--by 'color'"),
        (["--since", "28/11/2026"], "YYYY-MM-DD"),
        (["--since", "2026-02-30"], "not a calendar date"),
        (["--since", "2026-01-01", "--period", "all"], "either --period or --since"),
        (["--format", "xml"], "--format 'xml'"),
    ],
)
def test_bad_options_are_exit_2_with_a_message(ws: Workspace, args: list[str],
                                               needle: str) -> None:
    ws.tiers(silver="honest")
    p = ws.run("usage", *args)
    assert p.returncode == 2 and needle in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_torn_last_line_is_skipped_then_counted_once_repaired(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    today = datetime.now(timezone.utc).date()
    write(ws.state, rec(today))
    whole = rec(today, session="torn").to_dict()
    line = jsonl.dumps(whole)
    path = ledger.ledger_path(ws.state)
    with open(path, "ab") as f:
        f.write(line[:40])  # a crash mid-write, or a line being written right now
    p = ws.run("usage", "--format", "json", "--by", "session")
    assert p.returncode == 0 and "incomplete" not in p.stderr  # too fresh to call it torn
    old = time.time() - 60
    os.utime(path, (old, old))  # left alone for a minute: torn
    p = ws.run("usage", "--format", "json", "--by", "session")
    assert p.returncode == 0
    assert [r["session"] for r in orjson.loads(p.stdout)["rows"]] == ["s1"]
    assert "incomplete last line" in p.stderr
    write(ws.state, rec(today, session="after"))  # the next writer moves the fragment away
    doc = usage_json(ws, "--by", "session")
    assert [r["session"] for r in doc["rows"]] == ["after", "s1"]
    assert (path.parent / "ledger.jsonl.torn").read_bytes() == line[:40] + b"\n"


def test_a_real_run_shows_up(ws: Workspace) -> None:
    ws.tiers(silver="claude-json")
    code, res = ws.json("run", "write u.txt from the fake", "--session", "real")
    assert code == 0, res
    doc = usage_json(ws, "--by", "session")
    (row,) = doc["rows"]
    assert row["session"] == "real" and row["calls"] == 1
    assert (row["input"], row["output"], row["cache_read"], row["cache_write"]) == (
        100, 50, 8000, 2000)
    assert row["cost_usd"] == 0.0123 and row["unknown_cost_calls"] == 0
    assert row["cache_hit_ratio"] == round(8000 / 10100, 4)


# --------------------------------------------------------------------------- the index


def test_the_index_is_kept_and_follows_appends(state: Path) -> None:
    write(state, rec(session="one"))
    idx = LedgerIndex.open(state)
    assert idx.db_path.is_file() and not idx.private
    assert idx.offset == ledger.ledger_path(state).stat().st_size
    idx.close()
    write(state, rec(session="two"))
    with LedgerIndex.open(state) as again:
        assert sorted(k[0] for k in again.sessions) == ["one", "two"]
        assert again.offset == ledger.ledger_path(state).stat().st_size
        assert again.records == 2


def test_a_catch_up_reads_only_the_appended_bytes(state: Path) -> None:
    write(state, rec(session="one"))
    LedgerIndex.open(state).close()
    path = ledger.ledger_path(state)
    size = path.stat().st_size
    write(state, rec(session="two"))
    with LedgerIndex(state) as idx:
        done = idx.refresh()
        assert (done.rebuilt, done.records, idx.records) == (False, 1, 2)
        assert idx.offset == path.stat().st_size > size


def test_the_index_is_trusted_only_while_the_ledger_matches(state: Path) -> None:
    write(state, rec(session="one"), rec(session="two"))
    LedgerIndex.open(state).close()
    path = ledger.ledger_path(state)
    # Replaced by a different, shorter ledger: rebuilt, not resumed.
    tmp = path.with_suffix(".new")
    jsonl.append(tmp, [rec(session="fresh").to_dict()])
    os.replace(tmp, path)
    assert [r.key for r in report(state, by="session", today=TODAY).rows] == ["fresh"]
    # Rewritten in place, same inode, longer than before: the head no longer matches.
    path.write_bytes(b"".join(jsonl.dumps(rec(session=s).to_dict()) for s in "xyz" * 3))
    assert [r.key for r in report(state, by="session", today=TODAY).rows] == ["x", "y", "z"]
    # A corrupt index file is rebuilt.
    db = LedgerIndex(state).db_path
    db.write_bytes(b"{not json")
    assert report(state, today=TODAY).total.calls == 9


def test_an_index_whose_fingerprint_lies_about_the_ledger_is_rebuilt(state: Path) -> None:
    import sqlite3

    write(state, rec(session="a"), rec(session="b"))
    with LedgerIndex.open(state) as idx:
        idx.db.execute("UPDATE cells SET calls = calls + 100")
        idx.db.execute("UPDATE meta SET tail = ?", ("0" * 64,))  # the bytes before the offset
    assert report(state, today=TODAY).total.calls == 2
    with sqlite3.connect(LedgerIndex(state).db_path) as db:
        assert db.execute("SELECT tail FROM meta").fetchone()[0] != "0" * 64


def test_parallel_scan_equals_serial_scan(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from burnless.accounting import index as ledger_index

    write(state, *(rec(TODAY - timedelta(days=i % 5), session=f"s{i % 7}",
                       tier=("bronze", "silver", "gold")[i % 3]) for i in range(300)))
    path = ledger.ledger_path(state)
    size = path.stat().st_size
    serial = scan(path, 0, size)
    monkeypatch.setattr(ledger_index, "PARALLEL_AFTER_BYTES", 1)
    monkeypatch.setattr(ledger_index, "PIECE_BYTES", size // 5)
    monkeypatch.setattr(ledger_index, "_cpus", lambda: 3)
    monkeypatch.setattr(ledger_index, "_can_fork", lambda: True)  # pytest's threads aside
    pieces = list(ledger_index.scan_rows(path, 0, size))
    assert len(pieces) >= 5
    parallel = scan(path, 0, size)
    assert parallel[1:] == serial[1:] == (size, 300, 0)
    for table in ("cells", "sessions"):
        want, got = getattr(serial[0], table), getattr(parallel[0], table)
        assert got.keys() == want.keys() and len(want) > 10
        for key, sums in want.items():
            assert got[key] == pytest.approx(sums)
    # And an index built that way (in memory) holds the same rows.
    with LedgerIndex.open(state, persist=False) as idx:
        assert idx.offset == size and idx.records == 300
        for key, sums in serial[0].sessions.items():
            assert idx.sessions[key] == pytest.approx(sums)


record_st = st.builds(
    dict,
    day=st.integers(0, 40),
    tier=st.sampled_from(["bronze", "silver", "gold"]),
    session=st.sampled_from(["a", "b", "c"]),
    status=st.sampled_from(["ok", "failed", "refused"]),
    cost=st.one_of(st.none(), st.floats(0, 2, allow_nan=False)),
    tokens=st.tuples(*(st.integers(0, 10_000) for _ in range(4))),
    cached=st.booleans(),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(record_st, max_size=6), min_size=1, max_size=6))
def test_incremental_reads_equal_a_full_recount(tmp_path: Path, batches: list[list[dict]]) -> None:
    state = Path(tempfile.mkdtemp(dir=tmp_path))
    written: list[dict[str, Any]] = []
    live = LedgerIndex(state)  # the server's way: one open index, refreshed after each batch
    for batch in batches:
        for r in batch:
            lr = rec(TODAY - timedelta(days=r["day"]), tier=r["tier"], session=r["session"],
                     status=r["status"], cost_usd=r["cost"], tokens=Tokens(*r["tokens"]),
                     cached=r["cached"])
            ledger.record_call(state, lr)
            written.append(lr.to_dict())
        got = report(state, by="session", period="last30d", today=TODAY)
        want = _naive(written, since=(TODAY - timedelta(days=29)).isoformat())
        assert {r.key: (r.stats.calls, r.stats.input, r.stats.refusals, r.stats.cached_hits,
                        r.stats.unknown_cost_calls) for r in got.rows} == {
            k: v[:-1] for k, v in want.items()}
        for r in got.rows:
            assert r.stats.cost_usd == pytest.approx(want[r.key or ""][-1])
        live.refresh()
        path = ledger.ledger_path(state)
        size = path.stat().st_size if path.exists() else 0
        fresh = scan(path, 0, size)[0]
        assert live.offset == size
        for table in ("cells", "sessions"):
            assert getattr(live, table).keys() == getattr(fresh, table).keys()
            for key, sums in getattr(fresh, table).items():
                assert getattr(live, table)[key] == pytest.approx(sums)
    live.close()


def _naive(records: list[dict[str, Any]], since: str) -> dict[str, tuple[Any, ...]]:
    out: dict[str, list[Any]] = {}
    for r in records:
        if r["ts"][:10] < since:
            continue
        acc = out.setdefault(r["session"], [0, 0, 0, 0, 0, 0.0])
        if r["status"] == "refused":
            acc[2] += 1
        elif r["cached"]:
            acc[3] += 1
        else:
            acc[0] += 1
            acc[1] += r["tokens"]["input"]
            acc[4] += r["cost_usd"] is None
            acc[5] += r["cost_usd"] or 0.0
    return {k: tuple(v) for k, v in out.items()}


def test_a_report_rejects_a_bad_group(state: Path) -> None:
    from burnless.errors import UsageError

    with LedgerIndex.open(state, persist=False) as idx, pytest.raises(UsageError, match="--by"):
        from_index(idx, by="colour")


HOSTILE = ["a,b", 'say "hi"', "two\nlines", "=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2-3",
           "\ttab", "[/bold]", "[red]x"]



# --------------------------------------------------------------------------- totals, groups

def test_json_csv_and_table_totals_equal_the_records_for_every_grouping(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *varied(60))
    records = ws.ledger()
    (everything,) = recount_of(records).values()
    assert everything["unknown"] and everything["refusals"] and everything["cached"]

    for by in ("tier", "model", "session", "role", "day"):
        doc = usage_report(ws, "--period", "all", "--by", by)
        check_stats(doc["total"], everything)
        want = recount_of(records, group_of(by))
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
          ledger_record(tier="local", model="llama", cost_usd=None, cost_source="unknown"),
          ledger_record(tier="local", model="llama", cost_usd=None, cost_source="unknown"),
          ledger_record(tier="silver", cost_usd=0.25),
          ledger_record(tier="silver", cost_usd=None, cost_source="unknown"),
          ledger_record(tier="gold", status="refused", refused_by="budget", cost_usd=0.0,
              tokens=Tokens()))
    doc = usage_report(ws, "--by", "tier")
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
    write(only.state, ledger_record(cost_usd=None, cost_source="unknown"))
    assert usage_report(only)["total"]["cost_usd"] is None
    assert "unknown*" in next(line for line in only.run("usage").stdout.splitlines()
                              if line.startswith("TOTAL"))


# --------------------------------------------------------------------------- periods, any time zone

def boundary_records(today: date) -> dict[str, LedgerRecord]:
    """Records just inside and just outside every period's edges, each in its own session."""
    d = timedelta(days=1)
    at = {
        "today-first": utc_stamp(today, "00:00:00.000"),
        "today-last": utc_stamp(today, "23:59:59.999"),
        "yesterday-last": utc_stamp(today - d, "23:59:59.999"),
        "d6-first": utc_stamp(today - 6 * d, "00:00:00.000"),
        "d7-last": utc_stamp(today - 7 * d, "23:59:59.999"),
        "d29-first": utc_stamp(today - 29 * d, "00:00:00.000"),
        "d30-last": utc_stamp(today - 30 * d, "23:59:59.999"),
        "tomorrow": utc_stamp(today + d, "00:00:00.000"),  # a clock that was ahead
        "next-year": utc_stamp(today + 400 * d),
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
    return {name: ledger_record(session=name, ts=t) for name, t in at.items()}


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
        doc = usage_report(ws, "--period", period, "--by", "session", env=env)
        assert {r["session"] for r in doc["rows"]} == sessions, period
        assert doc["total"]["calls"] == len(sessions)
        assert doc["until"] == today.isoformat()
    since = usage_report(ws, "--since", (today - timedelta(days=6)).isoformat(), "--by", "session",
                       env=env)
    assert {r["session"] for r in since["rows"]} == IN_PERIOD["last7d"]
    # Everything, the unreadable and the future included, only under all.
    everything = usage_report(ws, "--period", "all", "--by", "session", env=env)
    assert {r["session"] for r in everything["rows"]} == set(recs)
    by_day = {r["day"]: r["calls"] for r in usage_report(
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
            r = ledger_record(session=zone.replace("/", "-"), ts=ledger.now_iso())
            write(state, r)
            assert r.ts.endswith("Z")
            stamped = datetime.fromisoformat(r.ts[:-1]).replace(tzinfo=timezone.utc)
            assert abs(stamped - datetime.now(timezone.utc)) < timedelta(seconds=5)
            assert new_run_id()[2:10] == utc_today().strftime("%Y%m%d")
        finally:
            monkeypatch.delenv("TZ")
            time.tzset()
    assert report(state, period="today", by="session").total.calls == 2



# --------------------------------------------------------------------------- hostile names

def test_csv_quotes_hostile_names_and_defuses_formulas(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *(ledger_record(session=name, model=name, cost_usd=0.5) for name in HOSTILE))
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
        doc = usage_report(ws, "--by", by)
        assert sorted(r[by] for r in doc["rows"]) == sorted(HOSTILE)


def test_the_terminal_table_shows_names_not_markup(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *(ledger_record(model=name) for name in ("[/bold]", "[red]x")))
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
    write(state, ledger_record())
    line = orjson.loads(orjson.dumps(ledger_record().to_dict()))
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
