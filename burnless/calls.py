"""One call of a worker: guard it, reserve its budget, dispatch, parse, account, record.

``Calls`` is what the turn pipeline (``agent``) uses for every planner, executor, cascade and
compaction call, and for refusals: each leaves exactly one ledger record (``record`` or
``refuse``), written by ``accounting.ledger``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from burnless.accounting import ledger
from burnless.accounting.budget import Guard, Reservation
from burnless.accounting.ledger import LedgerRecord, Route
from burnless.accounting.pricing import cost_of_call
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.config import Config, Tier
from burnless.envelope import Envelope, Extraction, extract
from burnless.errors import BudgetExceeded, Interrupted, PolicyRefused
from burnless.formats import WorkerOutput
from burnless.prompt import Prompt
from burnless.runs import log_path, new_run_id
from burnless.safety import nesting
from burnless.safety.policy import Policy, allows, refusal
from burnless.turn import Turn
from burnless.vocab import CostSource, RecordStatus, RefusedBy, Role, Verdict
from burnless.workers import Call, Reply, dispatch


class Progress(Protocol):
    """What the CLI shows while a worker runs (nothing of it when not on a TTY)."""

    def start(self, role: str, tier: str) -> None: ...
    def line(self, text: str) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """One dispatched call, parsed and accounted, not yet recorded."""

    run_id: str
    tier: Tier
    reply: Reply
    extraction: Extraction
    tokens: Tokens
    cost_usd: float | None
    cost_source: CostSource
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
        role: Role,
        tier: Tier,
        prompt: Prompt,
        redactions: int,
        route: Route,
        timeout: float | None,
        progress: Progress | None,
        sensitive: Sequence[str],
    ) -> Outcome:
        """Make one call. ``sensitive`` is the sensitivity of what the prompt carries (the
        task's, or for a compaction the folded capsules')."""
        cfg = self.config
        if not allows(tier, sensitive):
            # The last guard: routing, the ladder, the planner and the compactor already keep
            # sensitive work local.
            reason = refusal(tier, sensitive)
            self.refuse(turn, tier.name, role, reason, refused_by="policy", route=route)
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
        try:
            reservation = guard.reserve(
                session=turn.session.id, tier=tier, prompt_tokens=estimate_tokens(prompt.text),
                task_spent=turn.spent,
            )
        except BudgetExceeded as exc:
            self.refuse(turn, tier.name, role, str(exc), refused_by="budget", route=route)
            raise
        run_id = new_run_id()
        log = log_path(cfg.state_dir, run_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        mask = self.policy.mask
        call = Call(
            tier=tier, prompt=prompt, session=turn.session.id, run_id=run_id,
            workspace=cfg.workspace, state_dir=cfg.state_dir,
            timeout=timeout or tier.timeout, log_path=log,
            env=nesting.worker_env(cfg.workspace, turn.session.id),
            redact=mask if cfg.policy.redact_secrets else None,
            on_line=(lambda text: progress.line(mask(text))) if progress else None,
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
        tokens, cost, source = cost_of_call(tier, reply.output, prompt.text)
        out = Outcome(run_id, tier, reply, extract(reply.output.text), tokens, cost, source,
                      redactions, log, guard, reservation)
        if reply.interrupted:
            self.record(turn, out, role, "interrupted", route=route,
                        reason="interrupted; process group killed")
            raise Interrupted(f"interrupted: the {tier.name} worker's process group was killed")
        return out

    def record(
        self,
        turn: Turn,
        out: Outcome,
        role: Role,
        status: RecordStatus,
        *,
        route: Route,
        verdict: Verdict = "skipped",
        seq: int | None = None,
        reason: str = "",
    ) -> LedgerRecord:
        """The ledger record of a call that was made, settling its budget reservation."""
        rec = LedgerRecord(
            run_id=out.run_id, session=turn.session.id, role=role, tier=out.tier.name,
            model=out.model, status=status, tokens=out.tokens, cost_usd=out.cost_usd,
            cost_source=out.cost_source, audit=verdict, exit=out.reply.exit_code,
            seq=seq, duration_s=out.reply.duration_s, route=route, redactions=out.redactions,
            task_id=turn.task.id, reason=reason[:300], cached=out.cached,
        )
        ledger.record_call(self.config.state_dir, rec, out.guard.settling(out.reservation),
                           user_dir=self.config.user_dir)
        turn.calls.append(rec)
        return rec

    def refuse(
        self, turn: Turn, tier: str, role: Role, reason: str, *, refused_by: RefusedBy,
        route: Route | None = None,
    ) -> None:
        """The ledger record of a call that was not made (budget, policy, breaker)."""
        cfg = self.config
        ledger.record_refusal(
            cfg.state_dir, session=turn.session.id, role=role, tier=tier,
            model=cfg.tiers[tier].model if tier in cfg.tiers else None, reason=reason,
            refused_by=refused_by, task_id=turn.task.id, route=route, user_dir=cfg.user_dir,
        )

    # -- the response cache (cache.responses)

    def _cached_reply(self, role: Role, tier: Tier, prompt: Prompt) -> Reply | None:
        cfg = self.config
        if not cfg.cache.responses or role == "compaction":
            return None
        from burnless import response_cache

        hit = response_cache.ResponseCache(cfg.state_dir, cfg.cache.ttl).get(
            response_cache.key(tier, role, prompt.text))
        if hit is None:
            return None
        text, model = hit
        output = WorkerOutput(text=text, format="cache", usage=Tokens(), cost_usd=0.0,
                              model=model, is_error=False)
        return Reply(output=output, exit_code=0, duration_s=0.0)

    def remember(self, role: Role, out: Outcome, prompt: Prompt, read_only: bool) -> None:
        """Store a read-only answer for ``cache.responses``."""
        cfg = self.config
        if not cfg.cache.responses or out.cached or not read_only or out.reply.failed:
            return
        from burnless import response_cache

        response_cache.ResponseCache(cfg.state_dir, cfg.cache.ttl).put(
            response_cache.key(out.tier, role, prompt.text),
            self.policy.mask(out.reply.output.text), out.model)
