"""The team's figures from the copies of ledger records on a shared state server: ``burnless
usage --shared`` and the gateway's ``/metrics`` and ``/stats`` with ``state.backend`` set.

The copies are cells like the local ledger's (``index.tables_of``), so a shared report and a
local one are the same projections; each copy also says which machine and workspace sent it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from burnless.accounting.index import Tables, TablesView, billed, tables_of
from burnless.accounting.metrics import Family, MetricsView, Sample
from burnless.accounting.usage import Report, first_day, from_index
from burnless.state import SharedState, Unreachable


@dataclass
class Origins:
    """Records and billed calls per machine and workspace that sent them."""

    records: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def add(self, origin: str, rec: dict[str, Any]) -> None:
        self.records[origin] = self.records.get(origin, 0) + 1
        if billed(rec.get("status"), rec.get("cached")):
            self.calls[origin] = self.calls.get(origin, 0) + 1
        else:
            self.calls.setdefault(origin, 0)

    def to_dict(self) -> dict[str, Any]:
        return {o: {"records": n, "calls": self.calls.get(o, 0)}
                for o, n in sorted(self.records.items())}


def shared_report(shared: SharedState, *, by: str = "tier", period: str | None = None,
                  since: str | None = None, today: date | None = None
                  ) -> tuple[Report, Origins]:
    """The usage report of the team's records (raises ``Unreachable``)."""
    day = today or datetime.now(timezone.utc).date()
    _, start = first_day(period, since, day)
    tables = Tables()
    origins = Origins()
    for _, batch in shared.records(since_day=start):
        tables.merge(tables_of(r for _, r in batch))
        for origin, rec in batch:
            origins.add(origin, rec)
    rep = from_index(TablesView(tables), by=by, period=period, since=since, today=today)
    return rep, origins


class SharedLive:
    """The gateway's metrics from the server's stream: every machine's records, caught up at
    each scrape (only the entries added since the last one are read). While the server cannot
    be reached, the figures read so far are served and ``burnless_shared_state_up`` is 0."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared
        self.view = MetricsView()
        self.last: str | None = None
        self.records = 0
        self.up = False
        self.origins = Origins()
        self._lock = threading.Lock()

    def families(self) -> list[Family]:
        with self._lock:
            try:
                for last, batch in self.shared.records(after=self.last):
                    self.view.apply(tables_of(r for _, r in batch).cells)
                    for origin, rec in batch:
                        self.origins.add(origin, rec)
                    self.records += len(batch)
                    self.last = last
                self.up = True
            except Unreachable:
                self.up = False
            families = self.view.families()
        return [*families, Family(
            "burnless_shared_state_up",
            "1 when the last scrape read the team's records from the shared state server "
            "(state.backend); 0 when it could not (the figures are those read before).",
            (Sample((), 1.0 if self.up else 0.0),), type="gauge")]

    def stats(self) -> dict[str, Any]:
        families = self.families()
        return {
            # How many machines, not which: a scrape does not learn the team's host names.
            "shared": {"backend": self.shared.shown, "up": self.up, "records": self.records,
                       "origins": len(self.origins.records), "last_id": self.last},
            "metrics": {f.name: f.to_dict() for f in families},
        }
