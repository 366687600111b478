"""``RunResult``: what one ``run`` did, for Python callers and ``burnless run --json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from burnless.audit import SKIPPED, AuditReport
from burnless.errors import EXIT_AUDIT, EXIT_FAILED, EXIT_OK
from burnless.vocab import CostSource, Status, weakest_source


def exit_code_for(status: Status, audit: AuditReport) -> int:
    """The CLI's exit code for a finished turn (refusals are exceptions, not results)."""
    if status in ("failed", "partial", "escalate"):
        return EXIT_FAILED
    if audit.verdict == "failed":
        return EXIT_AUDIT
    return EXIT_OK


def total_cost(calls: list[LedgerRecord]) -> tuple[float | None, CostSource]:
    """Sum of the calls' costs; unknown if any call's cost is unknown (never counted as 0)."""
    if any(c.cost_usd is None for c in calls):
        return None, "unknown"
    return sum(c.cost_usd or 0.0 for c in calls), weakest_source([c.cost_source for c in calls])


@dataclass(frozen=True)
class RunResult:
    """What a turn returns to the CLI and the Python API."""
    status: Status
    exit_code: int
    session: str
    tier: str
    model: str | None
    run_id: str
    summary: str = ""
    files: tuple[str, ...] = ()
    audit: AuditReport = SKIPPED
    usage: Tokens = field(default_factory=Tokens)  # all calls of the run
    cost_usd: float | None = 0.0  # all calls of the run; None when any cost is unknown
    cost_source: CostSource = "priced"
    seq: int | None = None
    next: str = ""
    plan: tuple[str, ...] = ()
    route: dict[str, Any] = field(default_factory=dict)
    calls: tuple[LedgerRecord, ...] = ()  # every call of the run, as the ledger has it
    findings: tuple[str, ...] = ()  # problems reading the worker's answer
    warnings: tuple[str, ...] = ()
    duration_s: float = 0.0
    log: str = ""  # the serving call's raw output, relative to the workspace
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "exit_code": self.exit_code,
            "session": self.session,
            "tier": self.tier,
            "model": self.model,
            "run_id": self.run_id,
            "seq": self.seq,
            "summary": self.summary,
            "files": list(self.files),
            "next": self.next,
            "audit": self.audit.to_dict(),
            "usage": self.usage.to_dict(),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
            "cost_source": self.cost_source,
            "plan": list(self.plan),
            "route": self.route,
            "calls": [c.call_dict() for c in self.calls],
            "findings": list(self.findings),
            "warnings": list(self.warnings),
            "duration_s": round(self.duration_s, 3),
            "log": self.log,
            "dry_run": self.dry_run,
        }
