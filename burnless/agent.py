"""The turn pipeline and ``BurnlessAgent``, the public entry point.

One ``run`` reads top to bottom:

    config → nesting guard → session lock → compaction → route → check tiers →
    [planner call] → executor call(s): guard budget → render prompt → dispatch → parse →
    audit → capsule → ledger → result

Every call, refusal and interruption leaves a ledger record. Refusals raise typed exceptions
(``errors.py``); worker and audit failures come back as a ``RunResult`` with its exit code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from burnless import audit as audit_mod
from burnless import crashpoints as faults
from burnless.accounting.ledger import Route, new_task_id, now_iso
from burnless.accounting.tokens import Tokens
from burnless.calls import Calls, Outcome, Progress, Turn
from burnless.config import Config, Tier, check_available, command_problem, load_config
from burnless.errors import PolicyRefused, SessionBusy, UsageError
from burnless.prompt import Prompt, read_prefix, render_prompt
from burnless.result import RunResult, exit_code_for, total_cost
from burnless.routing import router as routing
from burnless.routing.breaker import Breaker
from burnless.routing.router import Decision
from burnless.safety.policy import Policy
from burnless.safety.secrets import MASK_PATTERN
from burnless.session.capsule import Capsule, Context, one_line
from burnless.session.store import (
    Pin,
    Session,
    SessionMeta,
    check_session_id,
    compact_capsule,
    context_of,
    context_tokens,
    current_epoch,
    digest,
    needs_plan,
    next_seq,
    plan_fold,
)


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
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config or load_config(config_path, cwd=Path(cwd) if cwd else None)
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
        """Run one turn of ``task`` in a session and return what happened."""
        started = time.monotonic()
        cfg = self.config
        session = Session(cfg.state_dir, self._session_id(session_id))
        task = (task or "").strip()
        if not task:
            raise UsageError("the task is empty")
        if tier is not None:
            cfg.tier(tier)
        if timeout is not None and not 0 < timeout < math.inf:  # also refuses NaN
            raise UsageError("--timeout must be a positive, finite number of seconds")
        if "\x00" in task or not _is_utf8(task):
            raise UsageError("the task must be UTF-8 text with no NUL byte")
        for cmd in verify:
            problem = command_problem(cmd)
            if problem:
                raise UsageError(f"verify command {cmd!r:.80} {problem}")
        labels = tuple(labels)
        redacted = self._redact(task)
        turn = Turn(
            session=session,
            task=task,
            stored_task=redacted[0],
            task_id=new_task_id(),
            labels=labels,
            sensitive=self.policy.sensitivity(task, labels),
            meta=SessionMeta(session.id),
        )
        self._guard_nesting(turn)
        with session.lock(cfg.session.lock_timeout):
            return self._locked_run(
                turn, tier=tier, cascade=cascade, plan=plan, verify=tuple(verify),
                timeout=timeout, repin=repin, dry_run=dry_run, progress=progress,
                started=started,
            )

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
        session = Session(cfg.state_dir, self._session_id(session_id))
        meta = session.meta()
        sensitive = self.policy.sensitivity(task, tuple(labels))
        return routing.route(
            cfg, self.policy.mask_if_secret(task), labels=tuple(labels), tier=tier,
            pinned=meta.executor if cfg.routing.pin else None,
            sensitive=sensitive + _held_sensitive(context_of(session.capsules())),
            cascade=cascade,
        )

    def next_prompt(self, session_id: str, task: str = "<task>") -> Prompt:
        """Exactly what the next turn of the session would send first (no call is made).

        When a compaction is due it is applied in memory first; with ``compaction.tier`` the
        real digest is written by that tier, so the digest shown is the deterministic one.
        """
        cfg = self.config
        session = Session(cfg.state_dir, check_session_id(session_id))
        turn = Turn(session, task, self._redact(task)[0], new_task_id(), (),
                     self.policy.sensitivity(task, ()), session.meta())
        prep = self._prepare(turn, tier=None, cascade=False, plan=True)
        capsules = prep.capsules
        folded = self._folded(turn, capsules, summarize=False) if prep.compact else None
        if folded is not None:
            capsules = [*capsules, folded]
        role = "planner" if prep.planner else "executor"
        tier_name = prep.planner or (prep.rungs[0] if prep.rungs else prep.decision.tier)
        return self._render(role, context_of(capsules), task, cfg.tiers[tier_name].local)[0]

    def compact(self, session_id: str) -> Capsule | None:
        """Fold the session's older capsules now. None when there is nothing to fold."""
        cfg = self.config
        session = Session(cfg.state_dir, check_session_id(session_id))
        turn = Turn(session, "", "", new_task_id(), (), (), session.meta())
        with session.lock(cfg.session.lock_timeout):
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
        session = turn.session
        turn.meta = session.meta()
        if repin and (turn.meta.pins or turn.meta.executor):
            turn.meta.pins.clear()
            turn.meta.executor = None
            turn.meta_dirty = True
            turn.warnings.append(f"session {session.id!r}: pins reset to the current config")
        if not turn.meta.created:
            turn.meta.created = now_iso()
            turn.meta_dirty = True
        try:
            prep = self._prepare(turn, tier=tier, cascade=cascade, plan=plan)
        except PolicyRefused as exc:
            self.calls.refusal(turn, tier or cfg.executor or next(iter(cfg.tiers)), "execution",
                               str(exc), refused_by="policy")
            raise
        decision, rungs, skipped, planner = prep.decision, prep.rungs, prep.skipped, prep.planner
        if not rungs:
            reason = "; ".join(skipped) + "; no higher rung on routing.ladder"
            self.calls.refusal(turn, decision.tier, "execution", reason, refused_by="breaker")
            return self._failure(turn, decision.tier, reason, started)
        compactor = [cfg.compaction.tier] if prep.compact and cfg.compaction.tier else []
        check_available(cfg, ([planner] if planner else []) + rungs + compactor)

        if dry_run:
            return self._dry_run(turn, prep, started)
        capsules = self._compact(turn, prep.capsules) if prep.compact else prep.capsules

        try:
            plan_steps: tuple[str, ...] = ()
            if planner:
                capsules, plan_steps = self._plan(turn, planner, capsules, timeout, progress)
            if turn.meta.executor is None and cfg.routing.pin:
                turn.meta.executor = cfg.executor
                turn.meta_dirty = True
            return self._execute(
                turn, decision, rungs, skipped, capsules, plan_steps, verify=verify,
                timeout=timeout, progress=progress, started=started,
            )
        finally:
            if turn.meta_dirty:
                session.save_meta(turn.meta)

    def _prepare(self, turn: Turn, *, tier: str | None, cascade: bool, plan: bool) -> _Prepared:
        """Everything the turn will do, decided before anything is dispatched."""
        cfg = self.config
        capsules = turn.session.capsules()
        ctx = context_of(capsules)
        for reason in _held_sensitive(ctx):
            if reason not in turn.sensitive:
                turn.sensitive = (*turn.sensitive, reason)
        compact = (context_tokens(ctx) > cfg.compaction.max_context_tokens
                   and plan_fold(ctx, cfg.compaction.keep_recent) is not None)
        decision = routing.route(  # on the stored task: a reason may quote what a rule matched
            cfg, turn.stored_task, labels=turn.labels, tier=tier,
            pinned=turn.meta.executor if cfg.routing.pin else None,
            sensitive=turn.sensitive, cascade=cascade,
        )
        rungs, skipped = self._rungs(decision, explicit=tier is not None)
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
        if turn.sensitive and not cfg.tiers[cfg.planner].local:
            turn.warnings.append(
                f"planner skipped: the work is sensitive and tier {cfg.planner!r} is not local"
            )
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
        prompt, redactions = self._render(
            "planner", context_of(capsules), turn.task, tier.local
        )
        route_rec = Route(planner, ("planner",))
        out = self.calls.call(turn, "planning", tier, prompt, redactions, route_rec, timeout,
                              progress)
        env = out.envelope
        seq = next_seq(capsules)
        ok = not out.reply.failed and env is not None and env.status == "ok"
        steps = env.plan if env and env.plan else ((env.summary,) if env and env.summary else ())
        steps = tuple(self._redact_text(step) for step in steps)  # a plan may quote a file
        status = "ok" if ok and steps else ("failed" if not ok else "partial")
        capsule = None
        if status == "ok":
            capsule = Capsule.make(
                seq=seq, epoch=current_epoch(capsules), role="plan", tier=planner,
                model=out.model or "", task=turn.stored_task, status="ok", audit="skipped",
                summary=self._redact_text(env.summary) if env else "", plan=steps,
                run_id=out.run_id, ts=now_iso(), sensitive=bool(turn.sensitive),
            )
        else:
            why = out.reply.error or "no plan in the planner's envelope"
            turn.warnings.append(f"planner {planner} gave no plan ({why}); executing without one")
        self.calls.record(turn, out, "planning", status, audit_mod.SKIPPED, capsule, route_rec,
                          reason=out.reply.error)
        self.calls.remember("planning", out, prompt, read_only=status == "ok")
        if capsule is not None:
            turn.session.append(capsule)
            capsules = [*capsules, capsule]
        return capsules, (steps if capsule else ())

    def _rungs(self, decision: Decision, *, explicit: bool) -> tuple[list[str], list[str]]:
        """The tiers to try in order, skipping open breakers (never against --tier)."""
        planned = list(decision.ladder) if decision.cascade else [decision.tier]
        if explicit:
            return planned, []
        breaker = Breaker(self.config)
        rungs: list[str] = []
        skipped: list[str] = []
        for rung in planned:
            why = breaker.open_reason(rung)
            if why:
                skipped.append(why)
            else:
                rungs.append(rung)
        nxt = self._next_rung(decision.tier) if not rungs and not decision.cascade else None
        while nxt is not None:
            why = breaker.open_reason(nxt)
            if decision.sensitive and not self.config.tiers[nxt].local:
                why = f"{nxt} skipped: the work is sensitive and {nxt} is not local"
            if why is None:
                rungs.append(nxt)
                skipped.append(f"{nxt} serves instead (next rung up routing.ladder)")
                break
            skipped.append(why)
            nxt = self._next_rung(nxt)
        if decision.sensitive and not rungs:
            raise PolicyRefused(
                "sensitive work may only go to a tier with local: true, and no local tier can "
                f"serve now ({'; '.join(skipped)}); nothing was sent"
            )
        return rungs, skipped

    def _execute(
        self,
        turn: Turn,
        decision: Decision,
        rungs: Sequence[str],
        skipped: list[str],
        capsules: list[Capsule],
        plan_steps: tuple[str, ...],
        *,
        verify: tuple[str, ...],
        timeout: float | None,
        progress: Progress | None,
        started: float,
    ) -> RunResult:
        cfg = self.config
        breaker = Breaker(cfg)
        last: tuple[Outcome, str, audit_mod.AuditReport, Capsule] | None = None
        reasons = list(decision.reasons)
        for i, rung in enumerate(rungs):
            route_rec = Route(rung, tuple(reasons + skipped + ([f"cascade rung {i + 1}"]
                                                               if decision.cascade else [])))
            tier = self._pinned_tier(turn, rung)
            prompt, redactions = self._render(
                "executor", context_of(capsules), turn.task, tier.local
            )
            before = audit_mod.snapshot(cfg.workspace, cfg.audit.ignore)
            out = self.calls.call(turn, "execution", tier, prompt, redactions, route_rec,
                             timeout, progress)
            try:
                status = self._status(out)
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
                self.calls.record(turn, out, "execution", "interrupted" if stopped else "failed",
                                  audit_mod.SKIPPED, None, route_rec,
                                  reason=self._redact_text(why))
                raise
            # Ledger first: a crash between the two loses a capsule (the session goes on
            # without it), never the record of money spent.
            self.calls.record(turn, out, "execution", status, report, capsule, route_rec,
                              reason=out.reply.error)
            faults.point("after-ledger")
            turn.session.append(capsule)
            faults.point("after-capsule")
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
                turn.warnings.append(f"cascade: {rung} did not succeed ({status}, audit "
                                     f"{report.verdict}); trying {rungs[i + 1]}")
        assert last is not None, "at least one rung runs"
        out, status, report, capsule = last
        cost, source = total_cost(turn.calls)
        env = out.envelope
        findings = [self._redact_text(f) for f in (*out.extraction.findings,
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
            usage=sum((c.usage for c in turn.calls), Tokens()),
            cost_usd=cost,
            cost_source=source,
            plan=plan_steps,
            route={**decision.to_dict(), "tier": out.tier.name, "skipped": skipped},
            calls=tuple(turn.calls),
            findings=tuple(findings),
            warnings=tuple(turn.warnings),
            duration_s=time.monotonic() - started,
            log=str(out.log.relative_to(self.config.workspace)),
        )

    def _next_rung(self, tier: str) -> str | None:
        ladder = self.config.routing.ladder
        if tier in ladder and ladder.index(tier) + 1 < len(ladder):
            return ladder[ladder.index(tier) + 1]
        return None

    def _failure(self, turn: Turn, tier: str, why: str, started: float) -> RunResult:
        return RunResult(
            status="failed", exit_code=1, session=turn.session.id, tier=tier,
            model=self.config.tiers[tier].model, run_id="", summary=why,
            warnings=tuple(turn.warnings), calls=tuple(turn.calls),
            duration_s=time.monotonic() - started,
        )

    # ------------------------------------------------------------------ one call

    # ------------------------------------------------------------------ steps

    def _status(self, out: Outcome) -> str:
        return out.reply.turn_status(out.envelope)

    def _audit(
        self,
        out: Outcome,
        before: audit_mod.Snapshot,
        status: str,
        verify: tuple[str, ...],
        tier: Tier,
    ) -> audit_mod.AuditReport:
        cfg = self.config
        env = out.envelope
        claims = env.files if env else ()
        commands = (cfg.audit.verify + verify) if status in ("ok", "partial") else ()

        def run_verify(cmd: str) -> tuple[int | None, str]:
            from burnless.workers.command import run_verify_command

            redact = self._redact_text if cfg.policy.redact_secrets else None
            return run_verify_command(cmd, cfg.workspace, tier, out.log, redact)

        report = audit_mod.audit(
            before, claims, ignore=cfg.audit.ignore, strict=cfg.audit.strict,
            verify=commands, run_verify=run_verify,
        )
        if not cfg.policy.redact_secrets or not report.findings:
            return report
        # A finding names a verify command or a claimed path, which may hold a secret.
        mask = self.policy.mask_if_secret
        return dataclasses.replace(report, findings=tuple(
            dataclasses.replace(f, path=mask(f.path), detail=mask(f.detail))
            for f in report.findings))

    def _exec_capsule(
        self,
        turn: Turn,
        out: Outcome,
        status: str,
        report: audit_mod.AuditReport,
        capsules: list[Capsule],
    ) -> Capsule:
        env = out.envelope
        summary = (env.summary if env and env.summary
                   else _last_line(out.extraction.prose, self._redact_text)) or out.reply.error
        notes = report.notes()
        if out.reply.error:
            notes.insert(0, out.reply.error)
        if not env and out.extraction.findings:
            notes.append(out.extraction.findings[0])
        return Capsule.make(
            seq=next_seq(capsules), epoch=current_epoch(capsules), role="exec",
            tier=out.tier.name, model=out.model or "", task=turn.stored_task, status=status,
            audit=report.verdict, summary=self._redact_text(summary),
            files=tuple(c.path for c in env.files) if env else (),
            next=self._redact_text(env.next) if env else "",
            notes=tuple(self._redact_text(n) for n in notes), run_id=out.run_id, ts=now_iso(),
            sensitive=bool(turn.sensitive),
        )

    def _compact(self, turn: Turn, capsules: list[Capsule]) -> list[Capsule]:
        """Fold the older capsules into a digest capsule, appended: a new epoch begins."""
        capsule = self._folded(turn, capsules, summarize=True)
        if capsule is None:
            return capsules
        turn.session.append(capsule)
        return [*capsules, capsule]

    def _folded(self, turn: Turn, capsules: list[Capsule], *, summarize: bool
                ) -> Capsule | None:
        """The compact capsule that would fold ``capsules`` (None: nothing to fold)."""
        cfg = self.config
        ctx = context_of(capsules)
        fold = plan_fold(ctx, cfg.compaction.keep_recent)
        if fold is None:
            return None
        text = digest(capsules, fold)
        tier_name = cfg.compaction.tier or ""
        if (tier_name and summarize and not cfg.tiers[tier_name].local
                and any(c.sensitive for c in fold.folded)):
            turn.warnings.append(f"compaction tier {tier_name} skipped: the folded turns hold "
                                 "sensitive work and it is not local; used the deterministic "
                                 "digest")
            tier_name = ""
        if tier_name and summarize:
            text = self._summarize(turn, tier_name, Context(ctx.plan, ctx.capsules), text)
        return compact_capsule(capsules, fold, text, tier=tier_name, ts=now_iso())

    def _summarize(self, turn: Turn, tier_name: str, ctx: Context, fallback: str) -> str:
        check_available(self.config, [tier_name])
        tier = self._pinned_tier(turn, tier_name)
        task = "Write the digest of the session log above."
        prompt, redactions = self._render("compactor", ctx, task, tier.local)
        out = self.calls.call(turn, "compaction", tier, prompt, redactions,
                         Route(tier_name, ("compaction.tier",)), None, None)
        env = out.envelope
        text = (env.summary if env and env.summary else out.extraction.prose).strip()
        ok = not out.reply.failed and bool(text)
        self.calls.record(turn, out, "compaction", "ok" if ok else "failed", audit_mod.SKIPPED,
                          None, Route(tier_name, ("compaction.tier",)), reason=out.reply.error)
        if not ok:
            turn.warnings.append(
                f"compaction tier {tier_name} failed; used the deterministic digest")
            return fallback
        return self._redact_text(text)

    def _dry_run(self, turn: Turn, prep: _Prepared, started: float) -> RunResult:
        tier = self._pinned_tier(turn, prep.rungs[0])
        prompt, _ = self._render("executor", context_of(prep.capsules), turn.task, tier.local)
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

    # ------------------------------------------------------------------ helpers

    def _session_id(self, session_id: str | None) -> str:
        if session_id is None:
            session_id = os.environ.get("BURNLESS_SESSION") or "default"
        return check_session_id(session_id)

    def _pinned_tier(self, turn: Turn, name: str) -> Tier:
        """The tier as the session pinned it (command and model), recording a first use."""
        tier = self.config.tier(name)
        if not self.config.routing.pin:
            return tier
        # session.json is state on disk: a secret in a command is pinned masked.
        command = self.policy.mask_if_secret(tier.command) if tier.command else tier.command
        current = Pin(command, tier.model, tier.api)
        pin = turn.meta.pins.get(name)
        if pin is None:
            turn.meta.pins[name] = current
            turn.meta_dirty = True
            return tier
        if pin != current and pin.command and _MASKED.search(pin.command):
            turn.warnings.append(
                f"session {turn.session.id!r}: tier {name} was pinned to a command that held a "
                "secret, which cannot be restored; the current config is used")
            turn.meta.pins[name] = current
            turn.meta_dirty = True
            return tier
        if pin != current:
            what = pin.command or f"api {pin.api}"
            turn.warnings.append(
                f"session {turn.session.id!r}: tier {name} is pinned to {what!r} "
                f"(model {pin.model}); the config changed; run with --repin to adopt it"
            )
            return dataclasses.replace(tier, command=pin.command, model=pin.model, api=pin.api)
        return tier

    def _render(self, role: str, ctx: Context, task: str, local: bool) -> tuple[Prompt, int]:
        """The prompt for a tier; non-local tiers see secrets masked. Returns (prompt, masks)."""
        prefix = self._prefix_md()
        if local or not self.config.policy.redact_secrets:
            return render_prompt(role, prefix, ctx, task), 0
        red_prefix, n1 = self._redact(prefix)
        red_task, n2 = self._redact(task)
        return render_prompt(role, red_prefix, ctx, red_task), n1 + n2

    def _prefix_md(self) -> str:
        try:
            return read_prefix(self.config.state_dir)
        except (OSError, UnicodeDecodeError) as exc:
            path = self.config.state_dir / "prefix.md"
            raise UsageError(f"{path}: cannot read the project prefix: {exc}") from None

    def _redact(self, text: str) -> tuple[str, int]:
        return self.policy.redact(text)

    def _redact_text(self, text: str) -> str:
        return self.policy.mask(text)

    def _guard_nesting(self, turn: Turn) -> None:
        reason = self.policy.depth_refusal()
        if reason:
            cfg = self.config
            self.calls.refusal(turn, cfg.executor or next(iter(cfg.tiers)), "execution", reason,
                               refused_by="policy")
            raise PolicyRefused(reason)
        if self.policy.is_calling_session(turn.session.id):
            raise SessionBusy(
                f"session {turn.session.id!r} is running the turn that called this one; a nested "
                "run on the same session would wait on its own lock. Use another --session"
            )


_MASKED = re.compile(MASK_PATTERN)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")  # undecodable argv bytes arrive as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _held_sensitive(ctx: Context) -> tuple[str, ...]:
    """Why the session itself is sensitive: a capsule its prompts render came from sensitive
    work (a digest that folded one inherits the flag), so every prompt would carry it."""
    held = [c.seq for c in (*([ctx.plan] if ctx.plan else []), *ctx.capsules) if c.sensitive]
    if not held:
        return ()
    return (f"the session holds sensitive work (capsule {', '.join(map(str, held[:5]))}); "
            "start another session for work that may leave this machine",)


def _last_line(text: str, mask: Callable[[str], str]) -> str:
    """The answer's last line, masked whole before it is cut (a cut secret is not found)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return one_line(mask(lines[-1]), 320) if lines else ""


__all__ = ["BurnlessAgent", "Progress"]
