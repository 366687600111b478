"""The ledger: one JSON line per call, cache hit or refusal, and the only code that writes it.

``.burnless/ledger.jsonl`` is the single source of truth for spend: usage reports, budgets and
metrics are all computed from it. Two functions append to it — ``record_call`` for a call that
was made (or answered from the response cache) and ``record_refusal`` for one that was not —
both through ``jsonl.append`` (one whole line under the file's lock).

While the user's config sets a budget limit (``Config.user_dir``), each record is also
appended, with the ``workspace`` it came from, to ``$BURNLESS_HOME/ledger.jsonl``: the user's
spend across projects, which the user's ``max_cost_per_day`` is checked against. The
workspace's ledger is written first: it stays the truth of its own project.
"""

from __future__ import annotations

import errno
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless.accounting.tokens import Tokens
from burnless.runs import new_run_id, now_iso
from burnless.storage import jsonl
from burnless.vocab import CostSource, RecordStatus, RefusedBy, Role, Verdict

LEDGER_NAME = "ledger.jsonl"


@dataclass(frozen=True)
class Route:
    tier: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class LedgerRecord:
    """One call (or refusal) as the ledger stores it; ``RunResult.calls`` holds these too."""

    run_id: str
    session: str
    role: Role
    tier: str
    model: str | None
    status: RecordStatus
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    cost_source: CostSource = "unknown"
    audit: Verdict = "skipped"
    exit: int | None = None
    seq: int | None = None
    duration_s: float = 0.0
    route: Route | None = None
    redactions: int = 0
    cached: bool = False
    task_id: str = ""  # groups the calls of one `run` invocation
    reason: str = ""  # refusals, timeouts, breaker decisions
    refused_by: RefusedBy | None = None  # for status "refused"
    ts: str = field(default_factory=now_iso)
    v: int = 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": self.v, "ts": self.ts, "run_id": self.run_id, "session": self.session,
            "seq": self.seq, "role": self.role, "tier": self.tier, "model": self.model,
            "status": self.status, "audit": self.audit, "exit": self.exit,
            "tokens": self.tokens.to_dict(),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
            "cost_source": self.cost_source, "duration_s": round(self.duration_s, 3),
            "route": self.route.to_dict() if self.route else None,
            "redactions": self.redactions, "cached": self.cached, "task_id": self.task_id,
        }
        if self.reason:
            d["reason"] = self.reason
        if self.refused_by:
            d["refused_by"] = self.refused_by
        return d

    def call_dict(self) -> dict[str, Any]:
        """The call as ``RunResult.to_dict()`` (``burnless run --json``) lists it."""
        return {
            "role": self.role, "tier": self.tier, "model": self.model, "run_id": self.run_id,
            "status": self.status, "audit": self.audit, "usage": self.tokens.to_dict(),
            "cost_usd": self.cost_usd, "cost_source": self.cost_source,
            "duration_s": round(self.duration_s, 3), "seq": self.seq, "reason": self.reason,
        }


def ledger_path(state_dir: Path) -> Path:
    return state_dir / LEDGER_NAME


def record_call(
    state_dir: Path,
    record: LedgerRecord,
    settling: AbstractContextManager[object] | None = None,
    *,
    user_dir: Path | None = None,
) -> None:
    """Append the record of a call that was made (and its copy to ``user_dir``'s ledger).
    ``settling`` (``budget.Guard.settling``) holds the budget locks and releases the call's
    reservation around the writes, so no other run ever sees the call's cost twice or not at
    all."""
    with settling or nullcontext():
        _append(state_dir, record, user_dir)


def record_refusal(
    state_dir: Path,
    *,
    session: str,
    role: Role,
    tier: str,
    model: str | None,
    reason: str,
    refused_by: RefusedBy,
    task_id: str = "",
    route: Route | None = None,
    user_dir: Path | None = None,
) -> LedgerRecord:
    """Append the record of a call that was not made (a budget, policy or an open breaker)."""
    record = LedgerRecord(
        run_id=new_run_id(), session=session, role=role, tier=tier, model=model,
        status="refused", cost_usd=0.0, cost_source="priced", route=route, task_id=task_id,
        reason=reason[:300], refused_by=refused_by,
    )
    _append(state_dir, record, user_dir)
    return record


def _append(state_dir: Path, record: LedgerRecord, user_dir: Path | None = None) -> None:
    check_writable(state_dir)
    if user_dir is not None:
        check_writable(user_dir)
    line = record.to_dict()
    jsonl.append(ledger_path(state_dir), [line])
    if user_dir is not None:
        jsonl.append(ledger_path(user_dir), [{**line, "workspace": str(state_dir.parent)}])


def check_writable(state_dir: Path) -> None:
    """Refuse a ledger (or its ``.torn`` file) that is a symbolic link: appending, and the
    torn-tail repair that truncates, would act on whatever file the link names (a checked-out
    repository could point it at ``~/.bashrc``)."""
    path = ledger_path(state_dir)
    for p in (path, Path(str(path) + ".torn")):
        if p.is_symlink():
            raise OSError(errno.ELOOP, "the ledger is a symbolic link; burnless writes only "
                          "a regular file there (remove the link)", str(p))


def read(state_dir: Path) -> list[dict[str, Any]]:
    return jsonl.read(ledger_path(state_dir))
