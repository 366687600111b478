"""The words burnless records, one spelling each: roles, statuses, verdicts, cost sources.

They are ``Literal`` types (checked by mypy, free at run time) with a tuple of the valid values
for the places that validate input. The files on disk spell a role two more ways, fixed by the
formats users read: a capsule says ``plan``/``exec``/``compact`` and the protocol header says
``planner``/``executor``/``compactor``; ``CAPSULE_ROLE`` and ``WORKER_ROLE`` convert at those
edges, so code passes a ``Role`` and nothing else.
"""

from __future__ import annotations

from typing import Final, Literal

Role = Literal["planning", "execution", "compaction"]
ROLES: Final[tuple[Role, ...]] = ("planning", "execution", "compaction")

CapsuleRole = Literal["plan", "exec", "compact"]
CAPSULE_ROLE: Final[dict[Role, CapsuleRole]] = {
    "planning": "plan", "execution": "exec", "compaction": "compact"}

WorkerRole = Literal["planner", "executor", "compactor"]
WORKER_ROLE: Final[dict[Role, WorkerRole]] = {
    "planning": "planner", "execution": "executor", "compaction": "compactor"}

# What a worker's turn came to (the envelope's status, or what the call itself says).
Status = Literal["ok", "partial", "failed", "escalate"]
STATUSES: Final[tuple[Status, ...]] = ("ok", "partial", "failed", "escalate")

# What a ledger record says of a call: a turn status, or why there was no complete turn.
RecordStatus = Literal["ok", "partial", "failed", "escalate", "refused", "interrupted", "lost"]

Verdict = Literal["passed", "failed", "skipped"]

CostSource = Literal["reported", "priced", "estimated", "unknown"]
COST_SOURCES: Final[tuple[CostSource, ...]] = ("reported", "priced", "estimated", "unknown")

RefusedBy = Literal["budget", "policy", "breaker"]


def weakest_source(sources: list[CostSource]) -> CostSource:
    """The least certain of several cost sources (a sum is only as sure as its weakest part)."""
    return min(sources, key=COST_SOURCES[::-1].index) if sources else "priced"
