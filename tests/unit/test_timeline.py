"""The timeline behind `usage --chart` and `usage --format html` says what `usage` says."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.timeline import build, timeline, tokens
from burnless.accounting.tokens import Tokens
from burnless.accounting.usage import report

TODAY = date(2026, 11, 28)
STATUSES = ["ok", "ok", "ok", "ok", "failed", "partial", "escalate", "interrupted", "refused"]


def seeded(state: Path, n: int = 120, seed: int = 3) -> list[LedgerRecord]:
    """Varied records over 20 days (some before a 7-day period, one with no timestamp)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        day = TODAY - timedelta(days=rnd.randint(0, 19))
        status = rnd.choice(STATUSES)
        cached = status == "ok" and rnd.random() < 0.1
        refused = status == "refused"
        r = LedgerRecord(
            run_id=f"r-{i}", session=f"s{i % 3}", role="execution",
            tier=rnd.choice(["gold", "silver", "bronze"]), model="claude-sonnet-4-6",
            status=status, tokens=Tokens() if refused else Tokens(
                rnd.randint(0, 500), rnd.randint(0, 500), rnd.randint(0, 5000),
                rnd.randint(0, 900)),
            cost_usd=None if rnd.random() < 0.1 else (0.0 if refused else
                                                      round(rnd.uniform(0, 0.2), 6)),
            cost_source="reported", audit="passed", ts=f"{day.isoformat()}T12:00:00.000Z",
            cached=cached, refused_by="budget" if refused else None)
        ledger.record_call(state, r)
        out.append(r)
    ledger.record_call(state, LedgerRecord(
        run_id="r-nots", session="s0", role="execution", tier="silver", model=None,
        status="ok", tokens=Tokens(1, 1, 0, 0), cost_usd=0.5, cost_source="reported",
        audit="passed", ts="not a time"))
    return out


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / ".burnless"
    d.mkdir()
    return d


@pytest.mark.parametrize("period", ["last7d", "last30d"])
def test_days_and_tiers_add_up_to_the_usage_report(state: Path, period: str) -> None:
    seeded(state)
    t = timeline(state, period=period, today=TODAY)
    n = 7 if period == "last7d" else 30
    assert len(t.days) == n and t.days[-1] == TODAY.isoformat()
    by_day = {r.key: r.stats for r in report(state, by="day", period=period, today=TODAY).rows}
    for day in t.days:
        total = t.day_total(day)
        want = by_day.get(day)
        assert total.calls == (want.calls if want else 0)
        assert total.cost_usd == pytest.approx(want.cost_usd if want else 0.0)
        assert tokens(total) == (tokens(want) if want else 0)
        assert total.failures == (want.failures if want else 0)
    by_tier = report(state, by="tier", period=period, today=TODAY)
    assert t.by_tier == by_tier
    # most expensive tier first
    costs = [next(r.stats.cost_usd for r in by_tier.rows if r.key == k) for k in t.tiers]
    assert costs == sorted(costs, reverse=True)


def test_statuses_count_calls_refusals_and_cache_hits(state: Path) -> None:
    records = seeded(state)
    t = timeline(state, period="all", today=TODAY)
    want: dict[str, int] = {}
    for r in records:
        key = "cached" if r.cached else r.status
        want[key] = want.get(key, 0) + 1
    want["ok"] += 1  # the record with no timestamp counts under `all`
    assert dict(t.statuses) == want
    order = [s for s, _ in t.statuses]
    assert order.index("ok") < order.index("failed") < order.index("refused")
    # `all` starts on the first day with records; the one with no day is in no day
    assert t.since is None and t.days[0] == min(r.ts[:10] for r in records)
    assert sum(t.day_total(d).calls for d in t.days) == t.by_tier.total.calls - 1


def test_an_empty_ledger_draws_one_empty_period(state: Path) -> None:
    with LedgerIndex.open(state) as idx:
        t = build(idx.cells, period="today", today=TODAY)
    assert t.days == (TODAY.isoformat(),) and t.tiers == () and t.statuses == ()
    t = build({}, period="all", today=TODAY)
    assert t.days == (TODAY.isoformat(),)
