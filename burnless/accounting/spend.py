"""Settled spend, computed from the ledger: what budgets check a new call against.

Read through the ledger index (only the bytes appended since the last checkpoint), so a budget
check stays cheap however long the ledger grows. The budget guard calls this under its lock,
after every settled call was appended, so what it returns is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from burnless.accounting.index import (
    CACHED,
    COST,
    DAY,
    RECORDS,
    SESSION,
    STATUS,
    Cells,
    LedgerIndex,
)


@dataclass(frozen=True)
class Spend:
    session_cost: float = 0.0
    session_calls: int = 0
    day_cost: float = 0.0


def spend_for(state_dir: Path, *, session: str, day: str) -> Spend:
    """Cost and calls of ``session`` (all time) and cost of ``day`` (UTC, YYYY-MM-DD).

    Refusals and response-cache hits are not calls and cost nothing; a call of unknown cost
    adds no cost (with a cost limit set, such calls are refused before they are made).
    """
    idx = LedgerIndex.open(state_dir)
    return spend_in(idx.cells, idx.sessions, session=session, day=day)


def spend_in(cells: Cells, sessions: Cells, *, session: str, day: str) -> Spend:
    session_cost = day_cost = 0.0
    calls = 0.0
    for key, sums in sessions.items():
        if key[SESSION] == session and not (key[STATUS] == "refused" or key[CACHED]):
            session_cost += sums[COST]
            calls += sums[RECORDS]
    for key, sums in cells.items():
        if key[DAY] == day and not (key[STATUS] == "refused" or key[CACHED]):
            day_cost += sums[COST]
    return Spend(session_cost, int(calls), day_cost)
