"""``BurnlessAgent``, the public entry point, and the turn pipeline it runs.

One ``run`` reads top to bottom:

    check arguments → nesting guard → session lock → prepare (compaction due? route, rungs,
    planner) → check tiers → [compaction] → [planner call] → executor call(s): render prompt →
    call (policy guard, budget, dispatch, parse, account) → audit → ledger → capsule → result

Each step is a module: ``routing`` decides the tier and the rungs, ``safety`` masks and keeps
sensitive work local, ``calls`` makes and records one call (``accounting`` holds the money),
``audit`` checks claims, ``session`` keeps capsules, pins and compaction. Refusals raise typed
exceptions (``errors``); worker and audit failures come back as a ``RunResult`` with its exit
code. Every call, refusal and interruption leaves a ledger record.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from burnless import audit, crashpoints, recovery
from burnless.accounting.budget import Guard
from burnless.accounting.ledger import Route
from burnless.accounting.tokens import Tokens
from burnless.calls import Calls, Outcome, Progress
from burnless.config import command_problem, load_config
from burnless.errors import BurnlessError, PolicyRefused, RecordFailed, SessionBusy, UsageError
from burnless.prompt import Prompt, read_prefix, render_prompt
from burnless.result import RunResult, exit_code_for, total_cost
from burnless.routing import ladder, router
from burnless.routing.breaker import Breaker
from burnless.routing.router import Decision
from burnless.runs import new_task_id, now_iso
from burnless.safety import nesting
from burnless.safety.environment import scrubbed_env
from burnless.safety.policy import Policy, allows
from burnless.session import compaction
from burnless.session.capsule import Capsule, Context, one_line
from burnless.session.compaction import Fold
from burnless.session.context import (
    context_of,
    context_tokens,
    current_epoch,
    held_sensitive,
    needs_plan,
    next_seq,
    plan_epoch,
)
from burnless.session.pins import PinBook
from burnless.session.store import Session, check_session_id
from burnless.settings import Config, Tier
from burnless.turn import Task, Turn
from burnless.vocab import WORKER_ROLE, Role, Status
from burnless.workers import check_available

log = logging.getLogger("burnless")


@dataclass(frozen=True)
class _Prepared:
    """A turn's decisions, before anything is dispatched."""

    capsules: list[Capsule]
    compact: bool  # a compaction is due first (and opens a new epoch)
    decision: Decision
    rungs: list[str]  # tiers to try, in order (open breakers skipped)
    skipped: list[str]  # why rungs were skipped
    planner: str | None  # the planner tier, when it fires this turn


class BurnlessAgent:
    """Run tasks through burnless from Python.

    >>> agent = BurnlessAgent()                       # finds .burnless/config.yaml
    >>> result = agent.run("Refactor auth", session_id="auth")
    >>> result.ok, result.tier, result.cost_usd

    ``config_path`` only chooses the configuration; the workspace (where workers run and
    state is written) is ``workspace``, else the project ``cwd`` (default: the process's cwd)
    is in — see ``burnless.config``.
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        workspace: str | os.PathLike[str] | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config or load_config(config_path, cwd=Path(cwd) if cwd else None,
                                             workspace=workspace)
        self.policy = Policy(self.config)
        self.calls = Calls(self.config, self.policy)

    # ------------------------------------------------------------------ public

    def run(
        self,
        task: str,
        session_id: str | None = None,
        *,
        tier: str | None = None,
        cascade: bool = False,
        plan: bool = True,
        labels: Sequence[str] = (),
        verify: Sequence[str] = (),
        timeout: float | None = None,
        repin: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> RunResult:
        """Run one turn of ``task`` in a session and return what happened.

        ``labels`` and ``verify`` are lists of strings (a bare string is refused rather than
        read as its characters); a wrong type of any argument is a ``UsageError`` naming it.
        """
        started = time.monotonic()
        cfg = self.config
        task = _task_text(task)
        size = len(task.encode("utf-8"))
        if size > cfg.policy.max_task_bytes:
            raise UsageError(
                f"the task is {size:,} bytes, above policy.max_task_bytes "
                f"({cfg.policy.max_task_bytes:,}); every call would send it (and bill it): put "
                "the material in a file the worker reads, or raise the limit in the config")
        labels, verify = _strings("labels", labels), _strings("verify", verify)
        for name, flag in (("cascade", cascade), ("plan", plan), ("repin", repin),
                           ("dry_run", dry_run)):
            if not isinstance(flag, bool):
                raise UsageError(f"{name} must be True or False, not {flag!r:.40}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or not 0 < timeout < math.inf):  # also refuses NaN
            raise UsageError(f"timeout must be a positive, finite number of seconds, not "
                             f"{timeout!r:.40}")
        if progress is not None and not all(callable(getattr(progress, m, None))
                                            for m in ("start", "line", "stop")):
            raise UsageError("progress must have start, line and stop methods (or be None)")
        if tier is not None:
            cfg.tier(_text("tier", tier))
        session = Session(cfg.state_dir, self._session_id(session_id))
        for cmd in verify:
            problem = command_problem(cmd)
            if problem:
                raise UsageError(f"verify command {cmd!r:.80} {problem}")
        if cfg.policy.redact_secrets:
            self.policy.redactor()  # a damaged redact.key stops the run before anything is sent
        turn = Turn(session, self._task(task, labels), PinBook(session, session.meta()))
        self._guard_nesting(turn)
        if cfg.state.shared:  # every record from here on (recovered ones too) is copied there
            from burnless.state import shared

            shared(cfg)
        with session.lock(cfg.session.lock_timeout):
            # Calls a killed run left in flight reach the ledger (and their capsules this
            # session) before anything else is decided: no seq is reused, no spend unseen.
            turn.warnings.extend(recovery.sweep(cfg.state_dir, session, cfg.user_dir))
            turn.pins = PinBook.load(session)  # as the last run under the lock left them
            try:
                return self._locked_run(
                    turn, tier=tier, cascade=cascade, plan=plan, verify=verify,
                    timeout=timeout, repin=repin, dry_run=dry_run, progress=progress,
                    started=started,
                )
            finally:
                if turn.task.tree.tree is None and cfg.budget.max_cost_per_task is not None:
                    Guard(cfg).forget_tree(turn.task.id)  # the root ran: its tree is done

    def route(
        self,
        task: str,
        session_id: str | None = None,
        *,
        labels: Sequence[str] = (),
        tier: str | None = None,
        cascade: bool = False,
    ) -> Decision:
        """The routing decision for a task, with every reason; nothing is run or checked."""
        cfg = self.config
        task, labels = _task_text(task), _strings("labels", labels)
        session = Session(cfg.state_dir, self._session_id(session_id))
        meta = session.meta()
        sensitive = self.policy.sensitivity(task, labels)
        return router.route(
            cfg, self.policy.mask(task), labels=labels, tier=tier,
            pinned=meta.executor if cfg.routing.pin else None,
            sensitive=sensitive + held_sensitive(context_of(session.capsules()), session.id),
            cascade=cascade,
        )

    def next_prompt(self, session_id: str, task: str = "<task>") -> Prompt:
        """Exactly what the next turn of the session would send first (no call is made).

        When a compaction is due it is applied in memory first; with ``compaction.tier`` the
        real digest is written by that tier, so the digest shown is the deterministic one.
        """
        cfg = self.config
        session = Session(cfg.state_dir, _session_arg(session_id))
        turn = Turn(session, self._task(_task_text(task), ()), PinBook.load(session))
        prep = self._prepare(turn, tier=None, cascade=False, plan=True)
        capsules = prep.capsules
        if prep.compact:
            folded = compaction.fold(capsules, cfg.compaction.keep_recent, ts=now_iso())
            capsules = [*capsules, folded] if folded is not None else capsules
        role: Role = "planning" if prep.planner else "execution"
        tier_name = prep.planner or (prep.rungs[0] if prep.rungs else prep.decision.tier)
        return self._render(role, context_of(capsules), task, cfg.tiers[tier_name].local)[0]

    def compact(self, session_id: str) -> Capsule | None:
        """Fold the session's older capsules now. None when there is nothing to fold."""
        cfg = self.config
        session = Session(cfg.state_dir, _session_arg(session_id))
        with session.lock(cfg.session.lock_timeout):
            # A turn a killed run left unwritten is restored first: folded with the others,
            # not appended later to an epoch that no prompt shows any more.
            for said in recovery.sweep(cfg.state_dir, session, cfg.user_dir):
                log.warning("%s", said)
            turn = Turn(session, Task("", "", new_task_id()), PinBook.load(session))
            capsules = session.capsules()
            if not capsules:
                return None
            before = len(capsules)
            capsules = self._compact(turn, capsules)
            return capsules[-1] if len(capsules) > before else None

    # ------------------------------------------------------------------ the turn

    def _locked_run(
        self,
        turn: Turn,
        *,
        tier: str | None,
        cascade: bool,
        plan: bool,
        verify: tuple[str, ...],
        timeout: float | None,
        repin: bool,
        dry_run: bool,
        progress: Progress | None,
        started: float,
    ) -> RunResult:
        cfg = self.config
        if repin and turn.pins.reset():
            turn.warn(f"session {turn.session.id!r}: pins reset to the current config")
        turn.pins.stamp_created(now_iso())
        try:
            prep = self._prepare(turn, tier=tier, cascade=cascade, plan=plan)
        except PolicyRefused as exc:
            self.calls.refuse(turn, tier or self._default_tier(), "execution", str(exc),
                              refused_by="policy")
            raise
        if not prep.rungs:
            reason = "; ".join(prep.skipped) + "; no higher rung on routing.ladder"
            self.calls.refuse(turn, prep.decision.tier, "execution", reason, refused_by="breaker")
            return self._failure(turn, prep.decision.tier, reason, started)
        compactor = [cfg.compaction.tier] if prep.compact and cfg.compaction.tier else []
        check_available(cfg, ([prep.planner] if prep.planner else []) + prep.rungs + compactor)
        if dry_run:
            return self._dry_run(turn, prep, started)

        capsules = self._compact(turn, prep.capsules) if prep.compact else prep.capsules
        try:
            plan_steps: tuple[str, ...] = ()
            if prep.planner:
                capsules, plan_steps = self._plan(turn, prep.planner, capsules, timeout,
                                                  progress)
            if cfg.routing.pin:
                turn.pins.pin_executor(cfg.executor)
            return self._execute(turn, prep, capsules, plan_steps, verify=verify,
                                 timeout=timeout, progress=progress, started=started)
        finally:
            turn.pins.save()

    def _prepare(self, turn: Turn, *, tier: str | None, cascade: bool, plan: bool) -> _Prepared:
        """Everything the turn will do, decided before anything is dispatched."""
        cfg = self.config
        capsules = turn.session.capsules()
        ctx = context_of(capsules)
        held = [r for r in held_sensitive(ctx, turn.session.id) if r not in turn.task.sensitive]
        if held:
            turn.task = dataclasses.replace(turn.task, sensitive=(*turn.task.sensitive, *held))
        compact = (context_tokens(ctx) > cfg.compaction.max_context_tokens
                   and compaction.plan_fold(ctx, cfg.compaction.keep_recent) is not None)
        decision = router.route(  # on the stored task: a reason may quote what a rule matched
            cfg, turn.task.stored, labels=turn.task.labels, tier=tier,
            pinned=turn.pins.executor if cfg.routing.pin else None,
            sensitive=turn.task.sensitive, cascade=cascade,
        )
        rungs, skipped = ladder.rungs(cfg, decision, turn.task.sensitive,
                                      explicit=tier is not None)
        epoch_start = compact or needs_plan(capsules)  # a compaction opens a new epoch
        planner = self._planner_for(turn, epoch_start, plan, rungs)
        return _Prepared(capsules, compact, decision, rungs, skipped, planner)

    def _planner_for(
        self, turn: Turn, epoch_start: bool, plan: bool, rungs: list[str]
    ) -> str | None:
        cfg = self.config
        if not (plan and cfg.planner and epoch_start):
            return None
        if rungs and cfg.tiers[rungs[0]].deterministic:
            return None  # a tier-0 script reads no plan: do not pay a frontier model for one
        if not allows(cfg.tiers[cfg.planner], turn.task.sensitive):
            turn.warn(f"planner skipped: the work is sensitive and tier {cfg.planner!r} is "
                      "not local")
            return None
        return cfg.planner

    def _plan(
        self,
        turn: Turn,
        planner: str,
        capsules: list[Capsule],
        timeout: float | None,
        progress: Progress | None,
    ) -> tuple[list[Capsule], tuple[str, ...]]:
        tier = self._pinned_tier(turn, planner)
        prompt, redactions = self._render("planning", context_of(capsules), turn.task.text,
                                          tier.local)
        route = Route(planner, ("planner",))
        out = self.calls.call(turn, "planning", tier, prompt, redactions, route, timeout,
                              progress, turn.task.sensitive)
        env = out.envelope
        ok = not out.reply.failed and env is not None and env.status == "ok"
        steps = env.plan if env and env.plan else ((env.summary,) if env and env.summary else ())
        steps = tuple(self.policy.mask(step) for step in steps)  # a plan may quote a file
        status: Status = "ok" if ok and steps else ("failed" if not ok else "partial")
        capsule = None
        cause = "" if status == "ok" else self._cause(out)
        if status == "ok":
            capsule = Capsule.make(
                seq=next_seq(capsules), epoch=plan_epoch(capsules), role="plan",
                tier=planner, model=out.model or "", task=turn.task.stored, status="ok",
                audit="skipped", summary=self.policy.mask(env.summary) if env else "",
                plan=steps, run_id=out.run_id, ts=now_iso(), sensitive=bool(turn.task.sensitive),
            )
        elif status == "failed":
            # Kept (never rendered) so that the next turn knows to plan again: see
            # session/context.py. An empty plan ("partial") is an answer, not retried.
            capsule = Capsule.make(
                seq=next_seq(capsules), epoch=current_epoch(capsules), role="plan",
                tier=planner, model=out.model or "", task=turn.task.stored, status="failed",
                audit="skipped", summary=cause, notes=(cause,), run_id=out.run_id,
                ts=now_iso(), sensitive=bool(turn.task.sensitive),
            )
        if status != "ok":
            log = out.log.relative_to(self.config.workspace)
            retry = "; the next turn plans again" if status == "failed" else ""
            turn.warn(f"planner {planner} {status}: {cause}; executing without a plan "
                      f"(run {out.run_id}, log {log}){retry}")
        self.calls.record(turn, out, "planning", status, route=route, capsule=capsule,
                          reason=cause)
        self.calls.remember("planning", out, prompt, read_only=status == "ok")
        if capsule is None:
            return capsules, ()
        self._append(turn, out, capsule)
        if status != "ok":
            return [*capsules, capsule], ()
        return [*capsules, capsule], steps

    def _cause(self, out: Outcome) -> str:
        """Why a call gave no usable answer, in one masked line: the call's error (exit code,
        the last line of stderr, a timeout), then what the worker said (an error result's text,
        a non-ok envelope's summary)."""
        parts = [out.reply.error] if out.reply.error else []
        env = out.envelope
        if env is not None and env.status != "ok":
            parts.append(f"status {env.status}" + (f": {env.summary}" if env.summary else ""))
        elif env is None:
            said = _last_line(out.reply.output.text or out.extraction.prose, self.policy.mask)
            parts.append(said or "no answer")
        elif not env.plan and not env.summary:
            parts.append("no plan in the envelope")
        return one_line(self.policy.mask("; ".join(parts)), 300)

    def _execute(
        self,
        turn: Turn,
        prep: _Prepared,
        capsules: list[Capsule],
        plan_steps: tuple[str, ...],
        *,
        verify: tuple[str, ...],
        timeout: float | None,
        progress: Progress | None,
        started: float,
    ) -> RunResult:
        cfg = self.config
        decision, rungs, skipped = prep.decision, prep.rungs, prep.skipped
        breaker = Breaker(cfg)
        last: tuple[Outcome, Status, audit.AuditReport, Capsule] | None = None
        for i, rung in enumerate(rungs):
            route = Route(rung, (*decision.reasons, *skipped,
                                 *([f"cascade rung {i + 1}"] if decision.cascade else [])))
            tier = self._pinned_tier(turn, rung)
            prompt, redactions = self._render("execution", context_of(capsules),
                                              turn.task.text, tier.local)
            before = audit.snapshot(cfg.workspace, cfg.audit.ignore)
            out = self.calls.call(turn, "execution", tier, prompt, redactions, route, timeout,
                                  progress, turn.task.sensitive)
            try:
                status = out.reply.turn_status(out.envelope)
                report = self._audit(out, before, status, verify, tier)
                env = out.envelope
                self.calls.remember("execution", out, prompt, read_only=status == "ok" and (
                    env is None or (env.kind == "thought" and not env.files))
                    and not report.changed)
                capsule = self._exec_capsule(turn, out, status, report, capsules)
            except BaseException as exc:
                # The call is paid for: its record lands even when the audit (a verify command
                # interrupted by Ctrl-C) or anything after the call fails.
                stopped = isinstance(exc, KeyboardInterrupt)
                why = "interrupted after the call" if stopped else f"failed after the call: {exc}"
                self.calls.record(turn, out, "execution",
                                  "interrupted" if stopped else "failed", route=route,
                                  reason=self.policy.mask(why))
                raise
            # Ledger first: a crash between the two loses a capsule (the session goes on
            # without it), never the record of money spent.
            self.calls.record(turn, out, "execution", status, route=route,
                              verdict=report.verdict, capsule=capsule, reason=out.reply.error)
            crashpoints.point("after-ledger")
            self._append(turn, out, capsule)
            crashpoints.point("after-capsule")
            capsules = [*capsules, capsule]
            if not out.cached:
                breaker.record(rung, failed=out.reply.exit_code != 0 or out.reply.timed_out)
            last = (out, status, report, capsule)
            if status == "ok" and report.verdict != "failed":
                break
            if not decision.cascade:
                break
            skipped.append(f"{rung}: {status}" + (", audit failed" if report.verdict == "failed"
                                                  else ""))
            if i + 1 < len(rungs):
                turn.warn(f"cascade: {rung} did not succeed ({status}, audit "
                          f"{report.verdict}); trying {rungs[i + 1]}")
        assert last is not None, "at least one rung runs"
        out, status, report, capsule = last
        cost, source = total_cost(turn.calls)
        env = out.envelope
        findings = [self.policy.mask(f) for f in (*out.extraction.findings,
                                                  *out.reply.output.findings)]
        return RunResult(
            status=status,
            exit_code=exit_code_for(status, report),
            session=turn.session.id,
            tier=out.tier.name,
            model=out.model,
            run_id=out.run_id,
            seq=capsule.seq,
            summary=capsule.summary,
            files=tuple(c.path for c in env.files) if env else (),
            next=capsule.next,
            audit=report,
            usage=sum((c.tokens for c in turn.calls), Tokens()),
            cost_usd=cost,
            cost_source=source,
            plan=plan_steps,
            route={**decision.to_dict(), "tier": out.tier.name, "skipped": skipped},
            calls=tuple(turn.calls),
            findings=tuple(findings),
            warnings=tuple(turn.warnings),
            duration_s=time.monotonic() - started,
            log=str(out.log.relative_to(cfg.workspace)),
        )

    # ------------------------------------------------------------------ steps

    def _audit(
        self,
        out: Outcome,
        before: audit.Snapshot,
        status: Status,
        verify: tuple[str, ...],
        tier: Tier,
    ) -> audit.AuditReport:
        cfg = self.config
        env = out.envelope
        commands = (cfg.audit.verify + verify) if status in ("ok", "partial") else ()
        run_verify = functools.partial(
            audit.run_verify, workspace=cfg.workspace, env=scrubbed_env(tier),
            timeout=tier.timeout, log_path=out.log,
            mask=self.policy.mask if cfg.policy.redact_secrets else None,
        )
        report = audit.audit(
            before, env.files if env else (), ignore=cfg.audit.ignore, strict=cfg.audit.strict,
            verify=commands, run_verify=run_verify,
        )
        # A finding names a verify command or a claimed path, which may hold a secret.
        mask = self.policy.mask
        return dataclasses.replace(report, findings=tuple(
            dataclasses.replace(f, path=mask(f.path), detail=mask(f.detail))
            for f in report.findings))

    def _exec_capsule(
        self,
        turn: Turn,
        out: Outcome,
        status: Status,
        report: audit.AuditReport,
        capsules: list[Capsule],
    ) -> Capsule:
        env = out.envelope
        mask = self.policy.mask
        summary = (env.summary if env and env.summary
                   else _last_line(out.extraction.prose, mask)) or out.reply.error
        notes = report.notes()
        if out.reply.error:
            notes.insert(0, out.reply.error)
        if not env and out.extraction.findings:
            notes.append(out.extraction.findings[0])
        return Capsule.make(
            seq=next_seq(capsules), epoch=current_epoch(capsules), role="exec",
            tier=out.tier.name, model=out.model or "", task=turn.task.stored, status=status,
            audit=report.verdict, summary=mask(summary),
            files=tuple(c.path for c in env.files) if env else (),
            next=mask(env.next) if env else "",
            notes=tuple(mask(n) for n in notes), run_id=out.run_id, ts=now_iso(),
            sensitive=bool(turn.task.sensitive),
        )

    def _append(self, turn: Turn, out: Outcome, capsule: Capsule) -> None:
        """Append the call's capsule (its ledger record is written), then close its journal."""
        try:
            turn.session.append(capsule)
        except BurnlessError as exc:
            kept = (f"; it is kept in {out.journal.path} and the session's next turn restores "
                    "it") if out.journal else ""
            raise RecordFailed(f"{exc}{kept}") from None
        self.calls.written(out)

    def _compact(self, turn: Turn, capsules: list[Capsule]) -> list[Capsule]:
        """Fold the older capsules into a digest capsule, appended: a new epoch begins."""
        summarize = (functools.partial(self._summarize, turn)
                     if self.config.compaction.tier else None)
        capsule = compaction.fold(capsules, self.config.compaction.keep_recent, ts=now_iso(),
                                  summarize=summarize)
        if capsule is None:
            return capsules
        turn.session.append(capsule)
        return [*capsules, capsule]

    def _summarize(self, turn: Turn, ctx: Context, fold: Fold, fallback: str) -> tuple[str, str]:
        """The digest written by ``compaction.tier`` (or ``fallback`` and "" when it cannot)."""
        name = self.config.compaction.tier
        assert name is not None
        sensitive = compaction.fold_sensitivity(fold)
        if not allows(self.config.tiers[name], sensitive):
            turn.warn(f"compaction tier {name} skipped: the folded turns hold sensitive work "
                      "and it is not local; used the deterministic digest")
            return fallback, ""
        check_available(self.config, [name])
        tier = self._pinned_tier(turn, name)
        task = "Write the digest of the session log above."
        prompt, redactions = self._render("compaction", ctx, task, tier.local)
        route = Route(name, ("compaction.tier",))
        out = self.calls.call(turn, "compaction", tier, prompt, redactions, route, None, None,
                              sensitive)
        env = out.envelope
        text = (env.summary if env and env.summary else out.extraction.prose).strip()
        ok = not out.reply.failed and bool(text)
        self.calls.record(turn, out, "compaction", "ok" if ok else "failed", route=route,
                          reason=out.reply.error)
        if not ok:
            turn.warn(f"compaction tier {name} failed; used the deterministic digest")
            return fallback, name
        return self.policy.mask(text), name

    def _dry_run(self, turn: Turn, prep: _Prepared, started: float) -> RunResult:
        tier = self._pinned_tier(turn, prep.rungs[0])
        prompt, _ = self._render("execution", context_of(prep.capsules), turn.task.text,
                                 tier.local)
        size = len(prompt.text.encode("utf-8"))
        steps = ([f"compaction first ({self.config.compaction.tier or 'deterministic'})"]
                 if prep.compact else []) + ([f"planning on {prep.planner}"]
                                             if prep.planner else [])
        summary = f"dry run: would send {size} bytes to {tier.name}" + (
            f" after {' and '.join(steps)}" if steps else "")
        return RunResult(
            status="ok", exit_code=0, session=turn.session.id, tier=tier.name, model=tier.model,
            run_id="", summary=summary, route=prep.decision.to_dict(),
            warnings=tuple(turn.warnings), duration_s=time.monotonic() - started, dry_run=True,
        )

    def _failure(self, turn: Turn, tier: str, why: str, started: float) -> RunResult:
        return RunResult(
            status="failed", exit_code=1, session=turn.session.id, tier=tier,
            model=self.config.tiers[tier].model, run_id="", summary=why,
            warnings=tuple(turn.warnings), calls=tuple(turn.calls),
            duration_s=time.monotonic() - started,
        )

    # ------------------------------------------------------------------ helpers

    def _task(self, text: str, labels: tuple[str, ...]) -> Task:
        return Task(text=text, stored=self.policy.mask(text), id=new_task_id(), labels=labels,
                    sensitive=self.policy.sensitivity(text, labels), tree=nesting.tree())

    def _session_id(self, session_id: str | None) -> str:
        if session_id is None:
            session_id = os.environ.get("BURNLESS_SESSION") or "default"
        return _session_arg(session_id)

    def _default_tier(self) -> str:
        return self.config.executor or next(iter(self.config.tiers))

    def _pinned_tier(self, turn: Turn, name: str) -> Tier:
        """The tier as the session pinned it (command and model), recording a first use."""
        tier, warning = turn.pins.tier(self.config, name, self.policy.mask)
        if warning:
            turn.warn(warning)
        return tier

    def _render(self, role: Role, ctx: Context, task: str, local: bool) -> tuple[Prompt, int]:
        """The prompt for a tier; non-local tiers see secrets masked. Returns (prompt, masks)."""
        prefix = self._prefix_md()
        header = WORKER_ROLE[role]
        if local or not self.config.policy.redact_secrets:
            return render_prompt(header, prefix, ctx, task), 0
        red_prefix, n1 = self.policy.mask_counted(prefix)
        red_task, n2 = self.policy.mask_counted(task)
        return render_prompt(header, red_prefix, ctx, red_task), n1 + n2

    def _prefix_md(self) -> str:
        try:
            return read_prefix(self.config.state_dir)
        except (OSError, UnicodeDecodeError) as exc:
            path = self.config.state_dir / "prefix.md"
            raise UsageError(f"{path}: cannot read the project prefix: {exc}") from None

    def _guard_nesting(self, turn: Turn) -> None:
        cfg = self.config
        reason = nesting.depth_refusal(cfg.policy.max_depth)
        if reason:
            self.calls.refuse(turn, self._default_tier(), "execution", reason,
                              refused_by="policy")
            raise PolicyRefused(reason)
        if nesting.is_calling_session(cfg.workspace, turn.session.id):
            raise SessionBusy(
                f"session {turn.session.id!r} is running the turn that called this one; a nested "
                "run on the same session would wait on its own lock. Use another --session"
            )


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _task_text(task: object) -> str:
    """The task, stripped: UTF-8 text with no NUL byte, not empty."""
    text = _text("task", task).strip()
    if not text:
        raise UsageError("the task is empty")
    try:
        text.encode("utf-8")  # undecodable argv bytes arrive as lone surrogates
    except UnicodeEncodeError:
        raise UsageError("the task must be UTF-8 text with no NUL byte") from None
    if "\x00" in text:
        raise UsageError("the task must be UTF-8 text with no NUL byte")
    return text


def _strings(name: str, values: object) -> tuple[str, ...]:
    """A list (or tuple) of strings; a bare string is refused, not split into characters."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise UsageError(f"{name} must be a list of strings, not {type(values).__name__} "
                         f"(for one item: [{values!r:.40}])")
    for v in values:
        if not isinstance(v, str):
            raise UsageError(f"{name} must be a list of strings; it holds a "
                             f"{type(v).__name__}: {v!r:.40}")
    return tuple(values)


def _session_arg(session_id: object) -> str:
    if not isinstance(session_id, str):
        raise UsageError(f"session_id must be a string, not {type(session_id).__name__}")
    return check_session_id(session_id)


def _last_line(text: str, mask: Callable[[str], str]) -> str:
    """The answer's last line, masked whole before it is cut (a cut secret is not found)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return one_line(mask(lines[-1]), 320) if lines else ""


__all__ = ["BurnlessAgent", "Progress"]
