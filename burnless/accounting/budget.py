"""Budget guards: reserve the worst case before a call, settle with the real cost after.

Under one workspace lock (``.burnless/budget.lock``), a reservation checks every configured
limit against settled spend (from the ledger index) plus the open reservations of other runs,
and is recorded in ``.burnless/reservations.json``. ``settling`` holds the same lock while the
ledger appends the call's record and drops the reservation as it lets go, so parallel runs can
never overspend and no run sees a call's cost twice or not at all.

With a shared backend (``state.backend: redis://...``) the same limits are checked against the
team's totals on the server instead, and the reservation is held there: check and hold are one
script (``burnless.state``), settling is part of the script that copies the call's record. A
server that cannot be reached refuses every budgeted call.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from burnless.accounting import ledger, pricing
from burnless.config import Config, Tier
from burnless.errors import BudgetExceeded
from burnless.runs import alive, start_ticks
from burnless.storage.atomic import write_atomic
from burnless.storage.locks import file_lock

if TYPE_CHECKING:
    from burnless.state import SharedState

LOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class Reservation:
    id: str
    session: str  # with a shared backend: the session's key there (Guard.team_sessions)
    day: str
    amount: float  # USD reserved: the most the call may cost (its ceiling)
    tree: str = ""  # the delegation tree's root task, when max_cost_per_task covers one
    handle: str = ""  # the reservation as a shared state server knows it ("": local)


def ceiling(tier: Tier, prompt_tokens: int, remaining: float | None) -> float | None:
    """The most one call of ``tier`` may cost, which its reservation holds (None: no price).

    A tier that makes one model request per call (an API tier, a plain command such as
    ``ollama run``) costs at most its prompt at the full input rate plus its output cap. An
    agent CLI (Claude Code, Codex, Gemini CLI) loops over many requests, so one prompt is not
    its worst case: it may cost ``max_cost_per_call`` when the tier sets it, else whatever the
    budget has left (``remaining``; such calls then run one at a time per budget).
    """
    worst = worst_case(tier, prompt_tokens)
    cap = tier.max_cost_per_call
    if tier.agent_loop:
        if cap is not None:
            return cap
        if worst is None:
            return None
        return worst if remaining is None else max(worst, remaining)
    if worst is None:
        return cap
    return worst if cap is None else min(worst, cap)


def worst_case(tier: Tier, prompt_tokens: int) -> float | None:
    """Prompt tokens at the full input rate + the tier's output cap, in USD (None: no price)."""
    price = pricing.tier_price(tier)
    if price is None:
        return None
    return (prompt_tokens * price.input + tier.max_output_tokens * price.output) / 1e6


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class Guard:
    # With a shared backend: the gateway's sessions are the team's (any gateway may serve
    # one, so their totals are shared), a run's sessions are its workspace's.
    team_sessions = False

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.limits = cfg.budget
        self.state_dir = cfg.state_dir
        self.active = cfg.budget.any_cost_limit or cfg.budget.max_calls_per_session is not None
        self._lock_path = self.state_dir / "budget.lock"
        self._path = self.state_dir / "reservations.json"
        ledger.check_writable(self.state_dir)  # before anything is dispatched
        self.shared: SharedState | None = None
        if cfg.state.shared:
            from burnless.state import shared

            self.shared = shared(cfg)

    def reserve(
        self, *, session: str, tier: Tier, prompt_tokens: int, task_spent: float,
        tree: str = "",
    ) -> Reservation | None:
        """Reserve what a call may cost (``ceiling``), or raise BudgetExceeded. None when no
        limit is set. ``tree`` is the root task of the delegation tree the call belongs to:
        ``max_cost_per_task`` then covers the whole tree (what its root has left), not only
        this run (``task_spent``)."""
        if not self.active:
            return None
        b = self.limits
        if worst_case(tier, prompt_tokens) is None and b.any_cost_limit:
            raise BudgetExceeded(
                f"tier {tier.name!r}: no price known for model {tier.model!r}, so the budget "
                f"cannot be enforced; set tiers.{tier.name}.price in {self.cfg.path}"
            )
        day = today()
        if self.shared is not None:
            return self._reserve_shared(session=session, tier=tier, prompt_tokens=prompt_tokens,
                                        task_spent=task_spent, tree=tree, day=day)
        from burnless.accounting.index import spend_for  # the index only when a limit is set

        with file_lock(self._lock_path, LOCK_TIMEOUT):
            open_ = self._load_open()
            # A dead run's reservation is gone: its call is charged by a `lost` record first.
            ledger.record_orphans(self.state_dir)
            spend = spend_for(self.state_dir, session=session, day=day)
            res_session = sum(r["amount"] for r in open_.values() if r["session"] == session)
            # Every open reservation counts against today, whatever day it was made: a call
            # reserved before midnight settles (and its cost lands) after it.
            res_day = sum(r["amount"] for r in open_.values())
            calls_open = sum(1 for r in open_.values() if r["session"] == session)
            task = (self._tree_spent(tree), sum(r["amount"] for r in open_.values()
                                                if tree and r.get("tree") == tree),
                    f"the task tree {tree}") if tree else (task_spent, 0.0, "this run")
            scopes = [(b.max_cost_per_task, "max_cost_per_task", *task),
                      (b.max_cost_per_session, "max_cost_per_session", spend.session_cost,
                       res_session, f"session {session!r}"),
                      (b.max_cost_per_day, "max_cost_per_day", spend.day_cost, res_day,
                       f"day {day} (UTC)")]
            left = [lim - spent - held for lim, _, spent, held, _ in scopes if lim is not None]
            amount = ceiling(tier, prompt_tokens, min(left) if left else None) or 0.0
            for limit, name, spent, held, scope in scopes:
                self._check(limit, name, spent, held, amount, scope)
            if b.max_calls_per_session is not None:
                used = spend.session_calls + calls_open
                if used + 1 > b.max_calls_per_session:
                    raise self._too_many_calls(session, spend.session_calls, calls_open)
            res = Reservation(f"{os.getpid()}-{os.urandom(4).hex()}", session, day, amount,
                              tree if b.max_cost_per_task is not None else "")
            open_[res.id] = {
                "session": session, "day": day, "amount": amount, "tree": res.tree,
                "pid": os.getpid(), "start": start_ticks(os.getpid()), "created": time.time(),
            }
            self._save(open_)
        return res

    def _too_many_calls(self, session: str, calls: int, calls_open: int) -> BudgetExceeded:
        return BudgetExceeded(
            f"budget.max_calls_per_session = {self.limits.max_calls_per_session}: session "
            f"{session!r} has made {calls} calls"
            + (f" (+{calls_open} in flight)" if calls_open else "")
            + "; nothing was dispatched"
        )

    def _reserve_shared(self, *, session: str, tier: Tier, prompt_tokens: int,
                        task_spent: float, tree: str, day: str) -> Reservation:
        """``reserve`` against the team's totals: the limits are checked and the ceiling held
        in one script on the server. The same scopes as the local check, in the same order."""
        from burnless.state import Denial, Scope, Unreachable

        assert self.shared is not None
        b = self.limits
        key = self.shared.session_key(session, team=self.team_sessions)
        # A dead run's calls are charged first: their `lost` records reach the server (with
        # their cost) as they reach the ledger.
        ledger.record_orphans(self.state_dir)
        tree = tree if b.max_cost_per_task is not None else ""
        scopes = [
            (Scope(b.max_cost_per_task, "tree" if tree else "run", 0.0 if tree else task_spent),
             "max_cost_per_task", f"the task tree {tree}" if tree else "this run"),
            (Scope(b.max_cost_per_session, "session"), "max_cost_per_session",
             f"session {session!r}"),
            (Scope(b.max_cost_per_day, "day"), "max_cost_per_day", f"day {day} (UTC)"),
        ]
        worst = worst_case(tier, prompt_tokens)
        grow = tier.agent_loop and tier.max_cost_per_call is None and worst is not None
        ttl = b.reservation_ttl if b.reservation_ttl is not None else tier.timeout + 60
        try:
            out = self.shared.reserve(
                [s for s, _, _ in scopes], session=key, tree=tree,
                fixed=ceiling(tier, prompt_tokens, None) or 0.0, grow=grow,
                max_calls=b.max_calls_per_session, ttl=ttl, day=day)
        except Unreachable as exc:
            names = [f"budget.{f}" for f in ("max_cost_per_task", "max_cost_per_session",
                                              "max_cost_per_day", "max_calls_per_session")
                     if getattr(b, f) is not None]
            raise BudgetExceeded(
                f"{', '.join(names)} cannot be checked: {exc}; a shared budget is not "
                "enforced by guessing, so nothing was dispatched") from None
        if isinstance(out, Denial):
            if out.scope < 0:
                raise self._too_many_calls(session, out.calls, out.calls_open)
            scope, name, label = scopes[out.scope]
            self._check(scope.limit, name, out.spent, out.held, out.amount, label)
            # Rounding aside, the server's word holds.
            raise BudgetExceeded(f"budget.{name} = ${scope.limit or 0:.4f}: {label} is at its "
                                 "limit; nothing was dispatched")
        return Reservation(out.handle.split("|")[0], key, day, out.amount, tree,
                           handle=out.handle)

    def _tree_path(self, tree: str) -> Path:
        return self.state_dir / "cache" / "trees" / f"{tree}.json"

    def _tree_spent(self, tree: str) -> float:
        """What the calls of a delegation tree have cost so far (settled, under the lock)."""
        try:
            data = orjson.loads(self._tree_path(tree).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return 0.0
        spent = data.get("spent") if isinstance(data, dict) else None
        if isinstance(spent, bool) or not isinstance(spent, (int, float)):
            return 0.0
        return float(spent) if math.isfinite(spent) and spent >= 0 else 0.0

    def add_to_tree(self, res: Reservation | None, cost: float | None) -> None:
        """Count a settled call's cost in its tree (the caller holds the lock: ``settling``)."""
        if res is None or not res.tree or not cost:
            return
        path = self._tree_path(res.tree)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, orjson.dumps({"spent": self._tree_spent(res.tree) + cost}))

    def forget_tree(self, tree: str) -> None:
        """The root run ended: its tree's running total is no longer needed."""
        if self.shared is not None:
            self.shared.forget_tree(tree)
            return
        try:
            os.unlink(self._tree_path(tree))
        except OSError:
            pass

    @staticmethod
    def _check(
        limit: float | None, name: str, spent: float, reserved: float, amount: float,
        scope: str = "this run",
    ) -> None:
        if limit is None:
            return
        if spent + reserved + amount > limit + 1e-12:
            raise BudgetExceeded(
                f"budget.{name} = ${limit:.4f}: {scope} has spent ${spent:.4f}"
                + (f" (+${reserved:.4f} reserved by runs in flight)" if reserved else "")
                + f"; this call reserves up to ${amount:.4f}; nothing was dispatched"
            )

    @contextmanager
    def settling(self, res: Reservation | None, cost: float | None = None) -> Iterator[None]:
        """Hold the budget lock around the ledger write of a reserved call, then drop its
        reservation (the call's cost is in the ledger from then on, and in its tree's
        running total)."""
        if res is None:
            yield
            return
        if self.shared is not None:
            with self.shared.settling(res):
                yield
            return
        with file_lock(self._lock_path, LOCK_TIMEOUT):
            yield
            self.add_to_tree(res, cost)
            open_ = self._load_open()
            open_.pop(res.id, None)
            self._save(open_)

    def release(self, res: Reservation | None) -> None:
        if res is None:
            return
        if self.shared is not None:
            self.shared.release(res)
            return
        with file_lock(self._lock_path, LOCK_TIMEOUT):
            open_ = self._load_open()
            if open_.pop(res.id, None) is not None:
                self._save(open_)

    def _load_open(self) -> dict[str, dict[str, Any]]:
        try:
            data = orjson.loads(self._path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        # Drop reservations whose process is gone (a crashed run must not block the budget;
        # its call is charged by a `lost` record instead, see inflight.py), and damaged ones
        # (a hand-edited file must not crash every run). Callers hold the lock.
        live = {k: v for k, v in data.items()
                if _valid(v) and alive(v.get("pid"), v.get("start"))}
        if len(live) != len(data):
            self._save(live)
        return live

    def _save(self, open_: dict[str, dict[str, Any]]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self._path, orjson.dumps(open_))


def _valid(r: object) -> bool:
    return (isinstance(r, dict) and isinstance(r.get("session"), str)
            and isinstance(r.get("day"), str) and isinstance(r.get("amount"), (int, float))
            and not isinstance(r["amount"], bool) and math.isfinite(r["amount"]))
