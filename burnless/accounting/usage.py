"""Usage reports: the ledger summed by tier, model, session, role, day, key or root run over a
period (read from the index: ``index.LedgerIndex``).

Periods are whole UTC days counted back from today: ``today``, ``last7d`` (today and the six
days before), ``last30d`` (default), ``all``, or ``--since YYYY-MM-DD`` (that day onwards).
Every period but ``all`` ends with today: a record dated after today (a clock that was ahead)
or with no readable ``ts`` is counted under ``all`` only.

What counts where, for every group:

- ``calls``: calls dispatched to a worker (any status but ``refused``), tokens and cost are
  theirs. Response-cache hits (``cached: true``) made no call and billed nothing: they are
  counted in ``cached_hits`` only, never as calls, tokens or cost.
- ``refusals``: records with status ``refused`` (budget, policy, breaker): no call, no cost.
- ``cost_usd`` sums the known costs; calls whose cost is unknown (no reported cost and no
  price for the model) are counted in ``unknown_cost_calls``, never added as 0 silently. When
  every call of a group is of unknown cost, its ``cost_usd`` is None (null), not 0.
- ``cache_hit_ratio`` = cache_read / (input + cache_read + cache_write), None without input.
- ``audit_failures``: calls whose audit verdict is ``failed``.
- ``failures``: calls that did not complete their job: status ``failed``, ``partial``,
  ``interrupted`` or ``lost``. ``escalate`` is not one (a tier handing work up the ladder, as a
  tier-0 script does by design); a call that completed but whose claims did not hold is an
  audit failure, not a failure.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from burnless.accounting.index import COST, LedgerIndex, Sums, Tables, TablesView, tables_of
from burnless.accounting.ledger import LEDGER_NAME
from burnless.errors import UsageError

PERIODS = {"today": 1, "last7d": 7, "last30d": 30, "all": None}
DEFAULT_PERIOD = "last30d"
# --by: the table and column each grouping reads. ``key`` and ``root`` group records that name
# a key (``key``) or a root run (``root_run_id``); records that do not are one group, None.
GROUPS: dict[str, tuple[str, str]] = {
    "tier": ("cells", "tier"), "model": ("cells", "model"), "session": ("sessions", "session"),
    "role": ("cells", "role"), "day": ("cells", "day"), "key": ("cells", "key"),
    "root": ("roots", "root"),
}
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Stats:
    """The figures of a group of records; tokens and cost count billed calls only."""
    calls: int = 0
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float = 0.0  # known costs only
    unknown_cost_calls: int = 0
    refusals: int = 0
    audit_failures: int = 0
    cached_hits: int = 0
    failures: int = 0

    @property
    def cost_unknown(self) -> bool:
        """No call of the group has a known cost: its cost is unknown, not 0."""
        return 0 < self.calls == self.unknown_cost_calls

    @property
    def cache_hit_ratio(self) -> float | None:
        denominator = self.input + self.cache_read + self.cache_write
        return self.cache_read / denominator if denominator else None

    def to_dict(self) -> dict[str, Any]:
        ratio = self.cache_hit_ratio
        return {
            "calls": self.calls, "input": self.input, "output": self.output,
            "cache_read": self.cache_read, "cache_write": self.cache_write,
            "cache_hit_ratio": None if ratio is None else round(ratio, 4),
            "cost_usd": None if self.cost_unknown else round(self.cost_usd, 8),
            "unknown_cost_calls": self.unknown_cost_calls,
            "refusals": self.refusals, "audit_failures": self.audit_failures,
            "cached_hits": self.cached_hits, "failures": self.failures,
        }


FIELDS = tuple(Stats().to_dict())


def stats_of(v: Sums) -> Stats:
    """A row of index figures (``index.STATS`` order) as ``Stats``."""
    calls, i, o, cr, cw, cost, unknown, refusals, audit, cached, failures = v
    return Stats(int(calls), int(i), int(o), int(cr), int(cw), float(cost), int(unknown),
                 int(refusals), int(audit), int(cached), int(failures))


@dataclass(frozen=True)
class Row:
    """One group of a usage report and its figures."""
    key: str | None  # the group's value (None: the records did not say, e.g. no model)
    stats: Stats


@dataclass(frozen=True)
class Report:
    """A usage report: one row per group, and the total."""
    by: str
    period: str | None  # None with --since
    since: str | None  # first UTC day included; None for all
    today: str
    rows: tuple[Row, ...]
    total: Stats

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period, "since": self.since, "until": self.today, "by": self.by,
            "rows": [{self.by: r.key, **r.stats.to_dict()} for r in self.rows],
            "total": self.total.to_dict(),
        }

    def to_csv(self) -> str:
        """One header line and one line per group (no total line: sum the columns).

        A group name a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR
        first: a model name comes from the worker) is prefixed with ``'``; JSON keeps it as is.
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([self.by, *FIELDS])
        for r in self.rows:
            d = r.stats.to_dict()
            key = "" if r.key is None else r.key
            w.writerow(["'" + key if key.startswith(_FORMULA) else key,
                        *("" if d[f] is None else d[f] for f in FIELDS)])
        return buf.getvalue()


def first_day(period: str | None, since: str | None, today: date) -> tuple[str | None, str | None]:
    """(period name, first day included) from the options; bad values are usage errors."""
    if period is not None and since is not None:
        raise UsageError("give either --period or --since, not both")
    if since is not None:
        if not _DATE_RE.fullmatch(since):
            raise UsageError(f"--since {since!r}: expected a date as YYYY-MM-DD (UTC)")
        try:
            date.fromisoformat(since)
        except ValueError:
            raise UsageError(f"--since {since!r}: not a calendar date") from None
        return None, since
    period = period or DEFAULT_PERIOD
    if period not in PERIODS:
        raise UsageError(f"--period {period!r}: expected one of {', '.join(PERIODS)} "
                         "(or --since YYYY-MM-DD)")
    days = PERIODS[period]
    return period, None if days is None else (today - timedelta(days=days - 1)).isoformat()


EVALS = ("include", "exclude", "only")


def report(
    state_dir: Path, *, by: str = "tier", period: str | None = None, since: str | None = None,
    today: date | None = None, evals: str = "include",
) -> Report:
    """The usage report of the workspace's ledger (through its index, caught up first).
    ``evals``: ``include`` every record; ``exclude`` the copies of ``burnless eval`` jobs'
    calls (read from each evaluation's own copy, ``ledger.eval_ledger``, and taken out of the
    ledger's figures); ``only`` those copies."""
    if by not in GROUPS:  # before reading anything
        raise UsageError(f"--by {by!r}: expected one of {', '.join(GROUPS)}")
    if evals not in EVALS:
        raise UsageError(f"--evals {evals!r}: expected one of {', '.join(EVALS)}")
    first_day(period, since, today or date.today())
    if evals == "include":
        with LedgerIndex.open(state_dir) as idx:
            return from_index(idx, by=by, period=period, since=since, today=today)
    copies = TablesView(eval_tables(state_dir))
    if evals == "only":
        return from_index(copies, by=by, period=period, since=since, today=today)
    with LedgerIndex.open(state_dir) as idx:
        return from_index(idx, by=by, period=period, since=since, today=today, minus=copies)


def eval_tables(state_dir: Path) -> Tables:
    """The rows of every evaluation's copies of its calls' records."""
    from burnless.storage import jsonl

    tables = Tables()
    for path in sorted((state_dir / "evals").glob(f"*/{LEDGER_NAME}")):
        tables.merge(tables_of(jsonl.read(path)))
    return tables


def from_index(
    idx: LedgerIndex | TablesView, *, by: str = "tier", period: str | None = None,
    since: str | None = None, today: date | None = None, minus: TablesView | None = None,
) -> Report:
    """The report over an open index (less the rows of ``minus``, records it also holds)."""
    if by not in GROUPS:
        raise UsageError(f"--by {by!r}: expected one of {', '.join(GROUPS)}")
    today = today or datetime.now(timezone.utc).date()
    period, start = first_day(period, since, today)
    end = today.isoformat()
    table, column = GROUPS[by]
    # "" (no readable ts) sorts first and a day after today last: both under all only.
    last = None if start is None else end
    groups, total = _grouped(idx, table, column, start, last)
    if minus is not None:
        less_groups, less_total = _grouped(minus, table, column, start, last)
        less = dict(less_groups)
        groups = [(k, _less(v, less.get(k))) for k, v in groups]
        groups = [(k, v) for k, v in groups if any(round(x, 9) for x in v)]
        total = _less(total, less_total)
    rows = tuple(Row(k or None, stats_of(v)) for k, v in groups)
    return Report(by, period, start, end, rows, stats_of(total))


def _grouped(idx: LedgerIndex | TablesView, table: str, column: str, start: str | None,
             last: str | None) -> tuple[list[tuple[str, Sums]], Sums]:
    groups = idx.grouped(table, column, start, last)
    total = idx.total(table, start, last)
    if table == "roots":  # records that name no root run: what the cells have and roots lack
        everything = idx.total("cells", start, last)
        rest = [a - b for a, b in zip(everything, total, strict=True)]
        if any(round(x, 9) for x in rest):
            groups.insert(0, ("", rest))
            total = everything
    return groups, total


def _less(v: Sums, w: Sums | None) -> Sums:
    """``v - w``, never below 0 (a copy the ledger lacks: its write was cut short)."""
    if w is None:
        return v
    return [max(0.0, round(a - b, 9)) if j == COST else max(0, int(a - b))
            for j, (a, b) in enumerate(zip(v, w, strict=True))]
