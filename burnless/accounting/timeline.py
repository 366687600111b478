"""Usage over time: the ledger per UTC day and per tier, and its records by status.

What ``burnless usage --chart`` and ``usage --format html`` draw. Every figure is summed from
the same index cells as ``usage`` (``accounting.index``), so a chart says exactly what
``usage`` says: the same billed calls, failures, known costs and periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from burnless.accounting.index import (
    CACHED_HITS,
    CALLS,
    DAY,
    REFUSALS,
    STATUS,
    TIER,
    Cells,
    LedgerIndex,
    Sums,
    add,
)
from burnless.accounting.usage import Report, Row, Stats, first_day, stats_of

# Record statuses in the order a reader expects them; others (a hand-edited ledger) follow.
STATUS_ORDER = ("ok", "partial", "failed", "escalate", "interrupted", "lost", "refused")
CACHED_STATUS = "cached"  # a response-cache hit: answered from disk, no call


@dataclass(frozen=True)
class Timeline:
    """Usage per day and tier over a period: what ``--chart`` and the HTML report draw."""
    period: str | None  # None with --since
    since: str | None  # first UTC day included; None for all
    today: str
    days: tuple[str, ...]  # every UTC day drawn, oldest first
    tiers: tuple[str, ...]  # tiers with records in the period, most expensive first
    by_tier: Report  # the usage report by tier over the period (rows and total)
    cells: dict[tuple[str, str], Stats]  # (day, tier) -> stats; absent: nothing that day
    statuses: tuple[tuple[str, int], ...]  # (status, records) with records > 0

    def at(self, day: str, tier: str) -> Stats:
        return self.cells.get((day, tier), Stats())

    def day_total(self, day: str) -> Stats:
        return _sum([self.at(day, t) for t in self.tiers])

    @property
    def span(self) -> str:
        if self.since is None:
            return f"all time, {self.days[0]} to {self.today} UTC"
        if self.period:
            return f"{self.period}, {self.since} to {self.today} UTC"
        return f"since {self.since} UTC, to {self.today}"


def tokens(s: Stats) -> int:
    """Every token of a group: input, output, cache reads and cache writes."""
    return s.input + s.output + s.cache_read + s.cache_write


def _sum(stats: list[Stats]) -> Stats:
    if not stats:
        return Stats()
    fields = Stats.__dataclass_fields__
    return Stats(**{f: sum(getattr(s, f) for s in stats) for f in fields})


def build(
    cells: Cells, *, period: str | None = None, since: str | None = None,
    today: date | None = None, by_tier: Report | None = None,
) -> Timeline:
    """The timeline of ``cells`` (the index's rows). ``by_tier``: the usage report by tier
    over the same period, when the caller has it (``timeline`` asks the index for it)."""
    today = today or datetime.now(timezone.utc).date()
    name, start = first_day(period, since, today)
    end = today.isoformat()
    tier_sums: dict[str, Sums] = {}
    per: dict[tuple[str, str], Sums] = {}
    statuses: dict[str, float] = {}
    for key, v in cells.items():
        day = key[DAY]
        # No readable day, or a day after today: counted under `all` only (as `usage`).
        if start is not None and not (day and start <= day <= end):
            continue
        tier = key[TIER]
        add(tier_sums, tier, v)
        if day:
            add(per, (day, tier), v)
        for status, n in ((str(key[STATUS]), v[CALLS]), ("refused", v[REFUSALS]),
                          (CACHED_STATUS, v[CACHED_HITS])):
            if n:
                statuses[status] = statuses.get(status, 0) + n
    stats = {t: stats_of(v) for t, v in tier_sums.items()}
    tiers = tuple(sorted(stats, key=lambda t: (-stats[t].cost_usd, -tokens(stats[t]), t)))
    report = by_tier or Report("tier", name, start, end, tuple(
        Row(t or None, stats[t]) for t in sorted(stats)), _sum(list(stats.values())))
    first = start or min((d for d, _ in per), default=end)
    days = _days(date.fromisoformat(first), today)
    ordered = sorted(statuses, key=lambda s: (
        STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER), s))
    return Timeline(name, start, end, days, tiers, report,
                    {k: stats_of(v) for k, v in per.items()},
                    tuple((s, int(statuses[s])) for s in ordered))


def _days(first: date, last: date) -> tuple[str, ...]:
    n = (last - first).days + 1
    return tuple((first + timedelta(days=i)).isoformat() for i in range(max(n, 1)))


def timeline(
    state_dir: Path, *, period: str | None = None, since: str | None = None,
    today: date | None = None,
) -> Timeline:
    """The timeline of the workspace's ledger (read incrementally, like ``usage``)."""
    first_day(period, since, today or date.today())  # bad options fail before any reading
    from burnless.accounting.usage import from_index

    with LedgerIndex.open(state_dir) as idx:
        by_tier = from_index(idx, by="tier", period=period, since=since, today=today)
        return build(idx.cells, period=period, since=since, today=today, by_tier=by_tier)

