"""One call of a worker: guard the budget, dispatch, parse, account, record in the ledger.

``Calls`` is what the turn pipeline (``agent.py``) uses for every planner, executor, cascade
and compaction call, and for refusals: each leaves exactly one ledger record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from burnless import audit as audit_mod
from burnless.accounting.budget import Guard, Reservation
from burnless.accounting.cost import account
from burnless.accounting.ledger import LedgerRecord, Route, log_path, new_run_id
from burnless.accounting.ledger import append as ledger_append
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.config import Config, Tier
from burnless.envelope import Envelope, Extraction, extract
from burnless.errors import BudgetExceeded, Interrupted, PolicyRefused
from burnless.formats import WorkerOutput
from burnless.prompt import Prompt
from burnless.result import CallRecord
from burnless.safety.policy import Policy
from burnless.session.capsule import Capsule
from burnless.session.store import Session, SessionMeta
from burnless.workers import Call, Reply, dispatch


class Progress(Protocol):
    """What the CLI shows while a worker runs (nothing of it when not on a TTY)."""

    def start(self, role: str, tier: str) -> None: ...
    def line(self, text: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Turn:
    """Mutable state of one ``run`` invocation."""

    session: Session
    task: str  # as given (may hold secrets; never stored)
    stored_task: str  # redacted: what capsules, ledger and logs may hold
    task_id: str
    labels: tuple[str, ...]
    sensitive: tuple[str, ...]
    meta: SessionMeta
    meta_dirty: bool = False
    calls: list[CallRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    spent: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """One dispatched call, parsed and accounted."""

    run_id: str
    tier: Tier
    reply: Reply
    extraction: Extraction
    tokens: Tokens
    cost_usd: float | None
    cost_source: str
    redactions: int
    log: Path
    guard: Guard
    reservation: Reservation | None
    cached: bool = False  # answered from the response cache: nothing dispatched

    @property
    def envelope(self) -> Envelope | None:
        return self.extraction.envelope

    @property
    def model(self) -> str | None:
        return self.reply.output.model or self.tier.model


class Calls:
    def __init__(self, cfg: Config, policy: Policy) -> None:
        self.config = cfg
        self.policy = policy

    def call(
        self,
        turn: Turn,
        role: str,
        tier: Tier,
        prompt: Prompt,
        redactions: int,
        route_rec: Route,
        timeout: float | None,
        progress: Progress | None,
    ) -> Outcome:
        cfg = self.config
        if turn.sensitive and not tier.local and role != "compaction":
            # The last guard: routing and planning already keep sensitive work local. (The
            # compactor never sees the task, only capsules, which carry their own flag.)
            reason = (f"sensitive work ({'; '.join(turn.sensitive)}) may not go to tier "
                      f"{tier.name!r}, which is not local; nothing was sent")
            self.refusal(turn, tier.name, role, reason, refused_by="policy", route_rec=route_rec)
            raise PolicyRefused(reason)
        guard = Guard(cfg)
        cached = self._cached_reply(role, tier, prompt)
        if cached is not None:
            run_id = new_run_id()
            log = log_path(cfg.state_dir, run_id)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(cached.output.text, encoding="utf-8")
            return Outcome(run_id, tier, cached, extract(cached.output.text), Tokens(), 0.0,
                            "priced", redactions, log, guard, None, cached=True)
        prompt_tokens = estimate_tokens(prompt.text)
        try:
            reservation = guard.reserve(
                session=turn.session.id, tier=tier, prompt_tokens=prompt_tokens,
                task_spent=turn.spent,
            )
        except BudgetExceeded as exc:
            self.refusal(turn, tier.name, role, str(exc), refused_by="budget",
                          route_rec=route_rec)
            raise
        run_id = new_run_id()
        log = log_path(cfg.state_dir, run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        call = Call(
            tier=tier, prompt=prompt, session=turn.session.id, run_id=run_id,
            workspace=cfg.workspace, state_dir=cfg.state_dir,
            timeout=timeout or tier.timeout, log_path=log,
            env=self.policy.worker_env(turn.session.id),
            redact=self.policy.mask if cfg.policy.redact_secrets else None,
            on_line=(lambda text: progress.line(self.policy.mask(text))) if progress else None,
        )
        if progress:
            progress.start(role, tier.name)
        try:
            reply = dispatch(call)
        except BaseException:
            guard.release(reservation)
            raise
        finally:
            if progress:
                progress.stop()
        extraction = extract(reply.output.text)
        tokens, cost, source = account(tier, reply.output, prompt.text)
        out = Outcome(run_id, tier, reply, extraction, tokens, cost, source, redactions, log,
                       guard, reservation)
        if reply.interrupted:
            self.record(turn, out, role, "interrupted", audit_mod.SKIPPED, None, route_rec,
                         reason="interrupted; process group killed")
            raise Interrupted(f"interrupted: the {tier.name} worker's process group was killed")
        return out

    def _cached_reply(self, role: str, tier: Tier, prompt: Prompt) -> Reply | None:
        cfg = self.config
        if not cfg.cache.responses or role == "compaction":
            return None
        from burnless import response_cache as responses

        hit = responses.ResponseCache(cfg.state_dir, cfg.cache.ttl).get(
            responses.key(tier, role, prompt.text))
        if hit is None:
            return None
        text, model = hit
        output = WorkerOutput(text=text, format="cache", usage=Tokens(), cost_usd=0.0,
                              model=model, is_error=False)
        return Reply(output=output, exit_code=0, duration_s=0.0)

    def remember(self, role: str, out: Outcome, prompt: Prompt, read_only: bool) -> None:
        """Store a read-only answer for ``cache.responses``."""
        cfg = self.config
        if not cfg.cache.responses or out.cached or not read_only or out.reply.failed:
            return
        from burnless import response_cache as responses

        responses.ResponseCache(cfg.state_dir, cfg.cache.ttl).put(
            responses.key(out.tier, role, prompt.text), self.policy.mask(out.reply.output.text),
            out.model)

    def record(
        self,
        turn: Turn,
        out: Outcome,
        role: str,
        status: str,
        report: audit_mod.AuditReport,
        capsule: Capsule | None,
        route_rec: Route,
        reason: str = "",
    ) -> None:
        rec = LedgerRecord(
            run_id=out.run_id, session=turn.session.id, role=role, tier=out.tier.name,
            model=out.model, status=status, tokens=out.tokens, cost_usd=out.cost_usd,
            cost_source=out.cost_source, audit=report.verdict, exit=out.reply.exit_code,
            seq=capsule.seq if capsule else None, duration_s=out.reply.duration_s,
            route=route_rec, redactions=out.redactions, task_id=turn.task_id,
            reason=reason[:300], cached=out.cached,
        )
        out.guard.settle(out.reservation, rec)
        turn.spent += out.cost_usd or 0.0
        turn.calls.append(CallRecord(
            role=role, tier=out.tier.name, model=out.model, run_id=out.run_id, status=status,
            audit=report.verdict, usage=out.tokens, cost_usd=out.cost_usd,
            cost_source=out.cost_source, duration_s=out.reply.duration_s,
            seq=capsule.seq if capsule else None, reason=reason[:300],
        ))

    def refusal(
        self, turn: Turn, tier: str, role: str, reason: str, *, refused_by: str,
        route_rec: Route | None = None,
    ) -> None:
        """A ledger record for a call that was not made (budget, policy, breaker)."""
        ledger_append(self.config.state_dir, LedgerRecord(
            run_id=new_run_id(), session=turn.session.id, role=role, tier=tier,
            model=self.config.tiers[tier].model if tier in self.config.tiers else None,
            status="refused", cost_usd=0.0, cost_source="priced", route=route_rec,
            task_id=turn.task_id, reason=reason[:300], refused_by=refused_by,
        ))
