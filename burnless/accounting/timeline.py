"""Usage over time: the ledger per UTC day and per tier, and its records by status.

What ``burnless usage --chart`` and ``usage --format html`` draw. Every figure is a usage
report (``accounting.usage.aggregate``) over a slice of the same index cells, so a chart says
exactly what ``usage`` says: the same billed calls, failures, known costs and periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from burnless.accounting.index import CACHED, STATUS, TIER, Cells, LedgerIndex
from burnless.accounting.usage import Report, Stats, aggregate, first_day

# Record statuses in the order a reader expects them; others (a hand-edited ledger) follow.
STATUS_ORDER = ("ok", "partial", "failed", "escalate", "interrupted", "lost", "refused")
CACHED_STATUS = "cached"  # a response-cache hit: answered from disk, no call


@dataclass(frozen=True)
class Timeline:
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
    today: date | None = None,
) -> Timeline:
    today = today or datetime.now(timezone.utc).date()
    name, start = first_day(period, since, today)
    end = today.isoformat()
    by_tier = aggregate(cells, by="tier", period=period, since=since, today=today)
    tiers = tuple(r.key or "" for r in sorted(
        by_tier.rows, key=lambda r: (-r.stats.cost_usd, -tokens(r.stats), r.key or "")))
    per: dict[tuple[str, str], Stats] = {}
    for tier in tiers:
        mine = {k: v for k, v in cells.items() if k[TIER] == tier}
        for row in aggregate(mine, by="day", period=period, since=since, today=today).rows:
            if row.key:  # a record with no readable day counts under `all`, in no day
                per[(row.key, tier)] = row.stats
    first = start or min((d for d, _ in per), default=end)
    days = _days(date.fromisoformat(first), today)
    return Timeline(name, start, end, days, tiers, by_tier, per, _statuses(cells, period,
                                                                           since, today))


def _days(first: date, last: date) -> tuple[str, ...]:
    n = (last - first).days + 1
    return tuple((first + timedelta(days=i)).isoformat() for i in range(max(n, 1)))


def _statuses(cells: Cells, period: str | None, since: str | None,
              today: date) -> tuple[tuple[str, int], ...]:
    """Records by status over the period: calls made (billed) by their status, refusals, and
    response-cache hits (``cached``)."""
    found = {CACHED_STATUS if k[CACHED] and k[STATUS] != "refused" else str(k[STATUS])
             for k in cells}
    out: list[tuple[str, int]] = []
    for status in sorted(found, key=lambda s: (
            STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER), s)):
        if status == CACHED_STATUS:
            mine = {k: v for k, v in cells.items() if k[CACHED] and k[STATUS] != "refused"}
        else:
            mine = {k: v for k, v in cells.items() if k[STATUS] == status and not k[CACHED]}
        total = aggregate(mine, by="tier", period=period, since=since, today=today).total
        n = (total.refusals if status == "refused"
             else total.cached_hits if status == CACHED_STATUS else total.calls)
        if n:
            out.append((status, n))
    return tuple(out)


def timeline(
    state_dir: Path, *, period: str | None = None, since: str | None = None,
    today: date | None = None,
) -> Timeline:
    """The timeline of the workspace's ledger (read incrementally, like ``usage``)."""
    first_day(period, since, today or date.today())  # bad options fail before any reading
    return build(LedgerIndex.open(state_dir).cells, period=period, since=since, today=today)

