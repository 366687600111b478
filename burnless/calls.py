"""One call of a worker: guard it, reserve its budget, dispatch, parse, account, record.

``Calls`` is what the turn pipeline (``agent``) uses for every planner, executor, cascade and
compaction call, and for refusals: each leaves exactly one ledger record (``record`` or
``refuse``), written by ``accounting.ledger``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from burnless.accounting import ledger
from burnless.accounting.budget import Guard, Reservation, worst_case
from burnless.accounting.inflight import Journal
from burnless.accounting.ledger import LedgerRecord, Route
from burnless.accounting.pricing import cost_of_call
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.envelope import Envelope, Extraction, extract
from burnless.errors import BudgetExceeded, Interrupted, PolicyRefused, RecordFailed, UsageError
from burnless.formats import WorkerOutput
from burnless.prompt import Prompt
from burnless.runs import log_path, new_run_id
from burnless.safety import nesting
from burnless.safety.policy import Policy, allows, refusal
from burnless.session.capsule import Capsule
from burnless.settings import Config, Tier
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
    journal: Journal | None  # None for a response-cache hit: nothing was dispatched
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
                           "priced", redactions, log, guard, None, None, cached=True)
        prompt_tokens = estimate_tokens(prompt.text)
        try:
            reservation = guard.reserve(
                session=turn.session.id, tier=tier, prompt_tokens=prompt_tokens,
                task_spent=turn.spent, tree=turn.task.tree_id,
            )
        except BudgetExceeded as exc:
            self.refuse(turn, tier.name, role, str(exc), refused_by="budget", route=route)
            raise
        run_id = new_run_id()
        log = log_path(cfg.state_dir, run_id)
        try:
            # Nothing is dispatched that could not be recorded: the ledger takes an append,
            # and the call's journal keeps it in view if this process dies (inflight.py).
            ledger.check_writable(cfg.state_dir, probe=True)
            journal = Journal.open(
                cfg.state_dir, run_id=run_id, session=turn.session.id, role=role,
                tier=tier.name, model=tier.model, task_id=turn.task.id,
                prompt_tokens=prompt_tokens,
                worst_case=reservation.amount if reservation else worst_case(tier, prompt_tokens),
                tree=reservation.tree if reservation else "",
            )
            log.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            guard.release(reservation)
            raise UsageError(f"cannot {_doing(exc)}: {exc.strerror or exc} "
                             f"({exc.filename or cfg.state_dir}); nothing was dispatched") from None
        mask = self.policy.mask
        call = Call(
            tier=tier, prompt=prompt, session=turn.session.id, run_id=run_id,
            workspace=cfg.workspace, state_dir=cfg.state_dir,
            timeout=timeout or tier.timeout, log_path=log,
            env=nesting.worker_env(cfg.workspace, turn.session.id, run_id=run_id,
                                   root_run_id=turn.task.tree.root_run_id or run_id,
                                   tree_id=turn.task.tree_id),
            redact=mask if cfg.policy.redact_secrets else None,
            on_line=(lambda text: progress.line(mask(text))) if progress else None,
            max_cost=reservation.amount if reservation else tier.max_cost_per_call,
        )
        if progress:
            progress.start(role, tier.name)
        try:
            reply = dispatch(call)
        except UsageError:
            # Refused before anything started (a prompt too long for one argument): nothing
            # was dispatched, so there is nothing for a later run to charge.
            journal.close()
            guard.release(reservation)
            raise
        except BaseException:
            # What the worker did or cost is unknown: its journal stays, and the next run
            # records it as lost at its worst case (the reservation goes with this process).
            guard.release(reservation)
            raise
        finally:
            if progress:
                progress.stop()
        tokens, cost, source = cost_of_call(tier, reply.output, prompt.text)
        out = Outcome(run_id, tier, reply, extract(reply.output.text), tokens, cost, source,
                      redactions, log, guard, reservation, journal)
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
        capsule: Capsule | None = None,
        reason: str = "",
    ) -> LedgerRecord:
        """The ledger record of a call that was made, settling its budget reservation. With
        the turn's ``capsule``, the caller appends it and then calls ``written(out)``."""
        rec = LedgerRecord(
            run_id=out.run_id, session=turn.session.id, role=role, tier=out.tier.name,
            model=out.model, status=status, tokens=out.tokens, cost_usd=out.cost_usd,
            cost_source=out.cost_source, audit=verdict, exit=out.reply.exit_code,
            seq=capsule.seq if capsule else None, duration_s=out.reply.duration_s, route=route,
            redactions=out.redactions, task_id=turn.task.id, reason=reason[:300],
            cached=out.cached, **_tree_fields(turn),
        )
        try:
            ledger.record_call(self.config.state_dir, rec,
                               out.guard.settling(out.reservation, out.cost_usd),
                               journal=out.journal,
                               capsule=capsule.to_dict() if capsule else None,
                               user_dir=self.config.user_dir,
                               tier_settings=out.tier)
        except OSError as exc:
            kept = f"; it is kept in {out.journal.path} and a later run will record it" \
                if out.journal else ""
            raise RecordFailed(
                f"the {role} call {out.run_id} on {out.tier.name} was made, but its ledger "
                f"record could not be written: {exc.strerror or exc} "
                f"({exc.filename or ledger.ledger_path(self.config.state_dir)}){kept}"
            ) from None
        turn.calls.append(rec)
        if capsule is None:
            self.written(out)
        return rec

    @staticmethod
    def written(out: Outcome) -> None:
        """The call's record and capsule are on disk: its journal is done."""
        if out.journal is not None:
            out.journal.close()

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
            **_tree_fields(turn), tier_settings=cfg.tiers.get(tier),
        )

    # -- the response cache (cache.responses)

    def _cached_reply(self, role: Role, tier: Tier, prompt: Prompt) -> Reply | None:
        cfg = self.config
        if not cfg.cache.responses or role == "compaction":
            return None
        from burnless import response_cache

        hit = response_cache.ResponseCache.of(cfg).get(
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

        response_cache.ResponseCache.of(cfg).put(
            response_cache.key(out.tier, role, prompt.text),
            self.policy.mask(out.reply.output.text), out.model)


def _doing(exc: OSError) -> str:
    name = str(exc.filename or "")
    if name.endswith(ledger.LEDGER_NAME):
        return "append to the ledger"
    return "write the call's journal" if "/inflight" in name else "prepare the call"


def _tree_fields(turn: Turn) -> dict[str, Any]:
    """A nested run's place in its delegation tree, for its ledger records."""
    t = turn.task.tree
    if t.parent_run_id is None:
        return {}
    return {"parent_run_id": t.parent_run_id, "root_run_id": t.root_run_id,
            "depth": nesting.depth()}
