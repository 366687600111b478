"""Budget guards: reserve the worst case before a call, settle with the real cost after.

Under one workspace lock (``.burnless/budget.lock``), a reservation checks every configured
limit against settled spend (from the ledger index) plus the open reservations of other runs,
and is recorded in ``.burnless/reservations.json``. ``settling`` holds the same lock while the
ledger appends the call's record and drops the reservation as it lets go, so parallel runs can
never overspend and no run sees a call's cost twice or not at all.

The user's limits (``$BURNLESS_HOME/config.yaml``) bound every project's: the project's checks
use the lower of the two (``Config.budget``), and the user's ``max_cost_per_day`` is checked
against the spend of every project, recorded in ``$BURNLESS_HOME/ledger.jsonl``, under
``$BURNLESS_HOME/budget.lock`` with its own reservations file. Both locks are always taken in
the same order, the workspace's first, so runs in different projects never deadlock.

What a reservation holds is what the call may cost (``ceiling``), and ``max_cost_per_task``
covers a whole delegation tree: a run started from inside a worker reserves from what the
tree under its top-level run has left (its settled spend is kept per tree, under the lock).

A gateway request that carries a virtual key (``gateway.keys``) is checked against that key's
own limits too (``KeyLimits``), in the same reservation under the same lock: its reservations
are tagged with the key's name, its settled spend is read from the ledger's ``key`` field.

With a shared backend (``state.backend: redis://...``) the same limits are checked against the
team's totals on the server instead, and the reservation is held there: check and hold are one
script (``burnless.state``), settling is part of the script that copies the call's record. A
server that cannot be reached refuses every budgeted call. The user's day limit across projects
stays the person's: it is checked against ``$BURNLESS_HOME``'s ledger and reservations, also
with a shared backend (``Guard._reserve_shared``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from burnless.accounting import ledger, pricing
from burnless.errors import BudgetExceeded
from burnless.runs import alive, start_ticks
from burnless.settings import Config, Tier
from burnless.storage.atomic import open_regular, write_atomic
from burnless.storage.locks import file_lock

if TYPE_CHECKING:
    from burnless.state import SharedState

LOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class Reservation:
    """What one call holds of the budget until its record settles it."""
    id: str
    session: str  # with a shared backend: the session's key there (Guard.team_sessions)
    day: str
    amount: float  # USD reserved: the most the call may cost (its ceiling)
    tree: str = ""  # the delegation tree's root task, when max_cost_per_task covers one
    key: str = ""  # the gateway virtual key whose limits it counts against
    handle: str = ""  # the reservation as a shared state server knows it ("": local)


@dataclass(frozen=True)
class KeyLimits:
    """A gateway virtual key's own limits, checked with the workspace's (never instead)."""

    name: str
    max_cost_per_day: float | None = None
    max_cost_per_month: float | None = None  # the calendar month (UTC)

    @property
    def limited(self) -> bool:
        return self.max_cost_per_day is not None or self.max_cost_per_month is not None


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
    # One request: its worst case is what it may cost (``Guard.reserve`` refuses a call whose
    # worst case passes max_cost_per_call; nothing could stop it half-way).
    return worst


def worst_case(tier: Tier, prompt_tokens: int) -> float | None:
    """Prompt tokens at the full input rate + the tier's output cap, in USD (None: no price)."""
    price = pricing.tier_price(tier)
    if price is None:
        return None
    return (prompt_tokens * price.input + tier.max_output_tokens * price.output) / 1e6


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class _Scope:
    """Where one set of reservations lives: a workspace's ``.burnless``, or the user's home."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.lock_path = state_dir / "budget.lock"
        self.path = state_dir / "reservations.json"

    def load_open(self) -> dict[str, dict[str, Any]]:
        try:
            data = orjson.loads(self.path.read_bytes())
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
            self.save(live)
        return live

    def save(self, open_: dict[str, dict[str, Any]]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, orjson.dumps(open_))

    def drop(self, res_id: str) -> None:
        open_ = self.load_open()
        if open_.pop(res_id, None) is not None:
            self.save(open_)


def locked(state_dir: Path) -> AbstractContextManager[None]:
    """The workspace's budget lock: reservations, settling, and recording what dead runs
    left in flight all happen under it."""
    return file_lock(state_dir / "budget.lock", LOCK_TIMEOUT)


def record_orphans(
    state_dir: Path, user_dir: Path | None = None
) -> list[ledger.LedgerRecord]:
    """Record the calls dead runs left in flight (``ledger.record_orphans``; copied to
    ``user_dir``'s ledger too), each counted in its delegation tree's running total too. The
    caller holds ``locked(state_dir)``."""
    done = ledger.record_orphans(state_dir, user_dir)
    for rec, tree in done:
        if tree and rec.cost_usd:
            add_to_tree(state_dir, tree, rec.cost_usd)
    return [rec for rec, _ in done]


def _tree_path(state_dir: Path, tree: str) -> Path:
    return state_dir / "cache" / "trees" / f"{tree}.json"


def tree_spent(state_dir: Path, tree: str) -> float:
    """What the calls of a delegation tree have cost so far (settled, under the lock)."""
    try:
        with open_regular(_tree_path(state_dir, tree)) as f:
            data = orjson.loads(f.read(4096))
    except (OSError, orjson.JSONDecodeError):
        return 0.0
    spent = data.get("spent") if isinstance(data, dict) else None
    if isinstance(spent, bool) or not isinstance(spent, (int, float)):
        return 0.0
    return float(spent) if math.isfinite(spent) and spent >= 0 else 0.0


def add_to_tree(state_dir: Path, tree: str, cost: float) -> None:
    """Count a call's cost in its tree's running total (the caller holds the lock)."""
    path = _tree_path(state_dir, tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps({"spent": tree_spent(state_dir, tree) + cost}))


class Guard:
    # With a shared backend: the gateway's sessions are the team's (any gateway may serve
    # one, so their totals are shared), a run's sessions are its workspace's.
    team_sessions = False

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.limits = cfg.budget
        self.state_dir = cfg.state_dir
        self.active = cfg.budget.any_cost_limit or cfg.budget.max_calls_per_session is not None
        self._scope = _Scope(self.state_dir)
        self._lock_path = self._scope.lock_path
        self._path = self._scope.path
        # The user's scope, when $BURNLESS_HOME/config.yaml limits the day across projects.
        self.user_day = cfg.user_budget.max_cost_per_day
        self._user = _Scope(cfg.user_dir) if (
            cfg.user_dir is not None and self.user_day is not None) else None
        ledger.check_writable(self.state_dir)  # before anything is dispatched
        if cfg.user_dir is not None:  # the user's copy of the ledger
            ledger.check_writable(cfg.user_dir)
        self.shared: SharedState | None = None
        if cfg.state.shared:
            from burnless.state import shared

            self.shared = shared(cfg)

    def reserve(
        self, *, session: str, tier: Tier, prompt_tokens: int, task_spent: float,
        tree: str = "", key: KeyLimits | None = None,
    ) -> Reservation | None:
        """Reserve what a call may cost (``ceiling``), or raise BudgetExceeded. None when no
        limit is set. ``tree`` is the root task of the delegation tree the call belongs to:
        ``max_cost_per_task`` then covers the whole tree (what its root has left), not only
        this run (``task_spent``). ``key``: the gateway virtual key the request carries, whose
        limits are checked as well."""
        self._check_call_cap(tier, prompt_tokens)
        keyed = key is not None and key.limited
        if not self.active and not keyed:
            return None
        b = self.limits
        if worst_case(tier, prompt_tokens) is None and (b.any_cost_limit or keyed):
            raise BudgetExceeded(
                f"tier {tier.name!r}: no price known for model {tier.model!r}, so the budget "
                f"cannot be enforced; set tiers.{tier.name}.price in {self.cfg.path}"
            )
        key_name = key.name if key is not None and keyed else ""
        day = today()
        if self.shared is not None:
            return self._reserve_shared(session=session, tier=tier, prompt_tokens=prompt_tokens,
                                        task_spent=task_spent, tree=tree, day=day,
                                        key=key if key_name else None)
        from burnless.accounting.index import spend_for  # the index only when a limit is set

        with self._locked():
            open_ = self._load_open()
            # A dead run's reservation is gone: its call is charged by a `lost` record first.
            record_orphans(self.state_dir, self.cfg.user_dir)
            spend = spend_for(self.state_dir, session=session, day=day, key=key_name)
            res_session = sum(r["amount"] for r in open_.values() if r["session"] == session)
            # Every open reservation counts against today, whatever day it was made: a call
            # reserved before midnight settles (and its cost lands) after it.
            res_day = sum(r["amount"] for r in open_.values())
            calls_open = sum(1 for r in open_.values() if r["session"] == session)
            user_open: dict[str, dict[str, Any]] = {}
            user_day = 0.0
            if self._user is not None:
                user_open = self._user.load_open()
                user_day = spend_for(self._user.state_dir, session="", day=day).day_cost
            task = (self._tree_spent(tree), sum(r["amount"] for r in open_.values()
                                                if tree and r.get("tree") == tree),
                    f"the task tree {tree}") if tree else (task_spent, 0.0, "this run")
            # (limit, name, spent, reserved, scope, where the limit comes from)
            scopes: list[tuple[float | None, str, float, float, str, str]] = [
                (b.max_cost_per_task, "budget.max_cost_per_task", *task,
                 self._whose("max_cost_per_task")),
                (b.max_cost_per_session, "budget.max_cost_per_session", spend.session_cost,
                 res_session, f"session {session!r}", self._whose("max_cost_per_session")),
            ]
            if self._user is None or self._whose("max_cost_per_day") == "":
                # The project's own day limit (below the user's, if any): the user's is
                # checked below, across every project, this one included.
                scopes.append((b.max_cost_per_day, "budget.max_cost_per_day", spend.day_cost,
                               res_day, f"day {day} (UTC)", ""))
            if self._user is not None:
                # As above: every open reservation of the user's counts against today.
                scopes.append((self.user_day, "budget.max_cost_per_day", user_day,
                               sum(r["amount"] for r in user_open.values()),
                               f"day {day} (UTC), across every project,",
                               self._whose("max_cost_per_day")))
            if key is not None and key_name:
                # Every open reservation of the key counts against its day and its month.
                res_key = sum(r["amount"] for r in open_.values() if r.get("key") == key_name)
                scopes += [(key.max_cost_per_day, f"key {key_name!r}: max_cost_per_day",
                            spend.key_day_cost, res_key, f"day {day} (UTC)", ""),
                           (key.max_cost_per_month, f"key {key_name!r}: max_cost_per_month",
                            spend.key_month_cost, res_key, f"month {day[:7]} (UTC)", "")]
            left = [lim - spent - held for lim, _, spent, held, _, _ in scopes
                    if lim is not None]
            amount = ceiling(tier, prompt_tokens, min(left) if left else None) or 0.0
            try:
                for limit, name, spent, held, scope, where in scopes:
                    self._check(limit, name, spent, held, amount, scope, where)
            except BudgetExceeded as exc:
                # An agent CLI's call with no max_cost_per_call holds all the budget had left:
                # a call it delegates (a burnless run from inside it) can never fit. Say so.
                holders = sorted({str(r.get("uncapped")) for r in open_.values()
                                  if r.get("uncapped")})
                if not holders:
                    raise
                names = ", ".join(f"tiers.{t}.max_cost_per_call" for t in holders)
                raise BudgetExceeded(
                    f"{exc}. A call in flight on an agent CLI with no max_cost_per_call "
                    f"reserves all the budget has left, so nothing can run beside it, not "
                    f"even the calls it delegates: set {names}") from None
            if b.max_calls_per_session is not None:
                used = spend.session_calls + calls_open
                if used + 1 > b.max_calls_per_session:
                    raise self._too_many_calls(session, spend.session_calls, calls_open)
            res = Reservation(f"{os.getpid()}-{os.urandom(4).hex()}", session, day, amount,
                              tree if b.max_cost_per_task is not None else "", key_name)
            entry = self._held(res, session)
            if tier.agent_loop and tier.max_cost_per_call is None:
                entry["uncapped"] = tier.name
            open_[res.id] = entry
            self._save(open_)
            if self._user is not None:
                user_open[res.id] = {**entry, "workspace": str(self.cfg.workspace)}
                self._user.save(user_open)
        return res

    def _too_many_calls(self, session: str, calls: int, calls_open: int) -> BudgetExceeded:
        return BudgetExceeded(
            f"budget.max_calls_per_session = {self.limits.max_calls_per_session}"
            f"{self._whose('max_calls_per_session')}: session "
            f"{session!r} has made {calls} calls"
            + (f" (+{calls_open} in flight)" if calls_open else "")
            + "; nothing was dispatched"
        )

    def _reserve_shared(self, *, session: str, tier: Tier, prompt_tokens: int,
                        task_spent: float, tree: str, day: str, key: KeyLimits | None
                        ) -> Reservation:
        """``reserve`` against the team's totals: the limits are checked and the ceiling held
        in one script on the server. The same scopes as the local check, in the same order.

        The user's day limit across projects is the person's, not the team's: it is checked
        against the user's own ledger and reservations under ``$BURNLESS_HOME`` (under its
        lock, held until the server has answered, so two projects of the user cannot both
        take the last of it), passed to the script as a scope whose spend the caller knows,
        and held in the user's reservations once the server grants the call."""
        from burnless.state import Denial, Scope, Unreachable

        assert self.shared is not None
        b = self.limits
        skey = self.shared.session_key(session, team=self.team_sessions)
        # A dead run's calls are charged first: their `lost` records reach the server (with
        # their cost) as they reach the ledger.
        with self._locked():
            record_orphans(self.state_dir, self.cfg.user_dir)
        tree = tree if b.max_cost_per_task is not None else ""
        # The team's day limit is the project's own: the user's (when it is the lower one)
        # bounds the user's spend across projects, not the team's.
        team_day = self.cfg.project_budget.max_cost_per_day if self._user is not None else (
            b.max_cost_per_day)
        # (the server's scope, the limit's name, what it covers, where the limit comes from)
        scopes = [
            (Scope(b.max_cost_per_task, "tree" if tree else "run", 0.0 if tree else task_spent),
             "budget.max_cost_per_task", f"the task tree {tree}" if tree else "this run",
             self._whose("max_cost_per_task")),
            (Scope(b.max_cost_per_session, "session"), "budget.max_cost_per_session",
             f"session {session!r}", self._whose("max_cost_per_session")),
            (Scope(team_day, "day"), "budget.max_cost_per_day", f"day {day} (UTC)", ""),
        ]
        if key is not None:  # the key's own totals, across every gateway of the team
            scopes += [
                (Scope(key.max_cost_per_day, "keyday"), f"key {key.name!r}: max_cost_per_day",
                 f"day {day} (UTC)", ""),
                (Scope(key.max_cost_per_month, "keymonth"),
                 f"key {key.name!r}: max_cost_per_month", f"month {day[:7]} (UTC)", ""),
            ]
        worst = worst_case(tier, prompt_tokens)
        grow = tier.agent_loop and tier.max_cost_per_call is None and worst is not None
        ttl = b.reservation_ttl if b.reservation_ttl is not None else tier.timeout + 60
        user = self._user
        with self._user_locked():
            user_open: dict[str, dict[str, Any]] = {}
            user_spent = user_held = 0.0
            if user is not None:
                from burnless.accounting.index import spend_for

                user_open = user.load_open()
                user_spent = spend_for(user.state_dir, session="", day=day).day_cost
                user_held = sum(r["amount"] for r in user_open.values())
                scopes.append((Scope(self.user_day, "run", user_spent + user_held),
                               "budget.max_cost_per_day", f"day {day} (UTC), across every "
                               "project,", self._whose("max_cost_per_day")))
            try:
                out = self.shared.reserve(
                    [s for s, _, _, _ in scopes], session=skey, tree=tree,
                    fixed=ceiling(tier, prompt_tokens, None) or 0.0, grow=grow,
                    max_calls=b.max_calls_per_session, ttl=ttl, day=day,
                    key=key.name if key is not None else "")
            except Unreachable as exc:
                names = [name for s, name, _, _ in scopes if s.limit is not None]
                if b.max_calls_per_session is not None:
                    names.append("budget.max_calls_per_session")
                raise BudgetExceeded(
                    f"{', '.join(dict.fromkeys(names))} cannot be checked: {exc}; a shared "
                    "budget is not enforced by guessing, so nothing was dispatched") from None
            if isinstance(out, Denial):
                if out.scope < 0:
                    raise self._too_many_calls(session, out.calls, out.calls_open)
                scope, name, label, where = scopes[out.scope]
                mine = user is not None and out.scope == len(scopes) - 1  # the user's scope
                spent, held = (user_spent, user_held) if mine else (out.spent, out.held)
                self._check(scope.limit, name, spent, held, out.amount, label, where)
                # Rounding aside, the server's word holds.
                raise BudgetExceeded(f"{name} = ${scope.limit or 0:.4f}{where}: {label} is at "
                                     "its limit; nothing was dispatched")
            res = Reservation(out.handle.split("|")[0], skey, day, out.amount, tree,
                              key.name if key is not None else "", handle=out.handle)
            if user is not None:
                user_open[res.id] = {**self._held(res, session),
                                     "workspace": str(self.cfg.workspace)}
                user.save(user_open)
        return res

    def _check_call_cap(self, tier: Tier, prompt_tokens: int) -> None:
        """max_cost_per_call where it can be enforced before the call: a tier that makes one
        request, whose worst case is a true bound. (An agent CLI's call reserves the cap, and
        a stream-json one is stopped once its reported usage passes it.)"""
        cap = tier.max_cost_per_call
        if cap is None or tier.agent_loop:
            return
        worst = worst_case(tier, prompt_tokens)
        where = f"tiers.{tier.name}.max_cost_per_call = ${cap:.4f}"
        if worst is None:
            raise BudgetExceeded(
                f"{where}: no price known for model {tier.model!r}, so it cannot be enforced; "
                f"set tiers.{tier.name}.price in {self.cfg.path}; nothing was dispatched")
        if worst > cap + 1e-12:
            raise BudgetExceeded(
                f"{where}: this call may cost up to ${worst:.4f} (its {prompt_tokens:,}-token "
                f"prompt at the input rate, max_output_tokens = {tier.max_output_tokens:,} at "
                "the output rate); nothing was dispatched. Lower max_output_tokens or raise "
                "the cap")

    def _tree_spent(self, tree: str) -> float:
        return tree_spent(self.state_dir, tree)

    def add_to_tree(self, res: Reservation | None, cost: float | None) -> None:
        """Count a settled call's cost in its tree (the caller holds the lock: ``settling``)."""
        if res is None or not res.tree or not cost:
            return
        add_to_tree(self.state_dir, res.tree, cost)

    def forget_tree(self, tree: str) -> None:
        """The root run ended: its tree's running total is no longer needed."""
        if self.shared is not None:
            self.shared.forget_tree(tree)
            return
        try:
            os.unlink(_tree_path(self.state_dir, tree))
        except OSError:
            pass

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The workspace's budget lock, then the user's (always in this order)."""
        with file_lock(self._lock_path, LOCK_TIMEOUT), self._user_locked():
            yield

    def _user_locked(self) -> AbstractContextManager[object]:
        """The user's budget lock, when a user limit is in force."""
        return (file_lock(self._user.lock_path, LOCK_TIMEOUT) if self._user is not None
                else nullcontext())

    @staticmethod
    def _held(res: Reservation, session: str) -> dict[str, Any]:
        """An open reservation as a reservations file keeps it, with the process holding it
        (a dead process's is dropped when the file is read)."""
        return {"session": session, "day": res.day, "amount": res.amount, "tree": res.tree,
                "key": res.key, "pid": os.getpid(), "start": start_ticks(os.getpid()),
                "created": time.time()}

    def _whose(self, name: str) -> str:
        """" in <user config>" when the limit ``name`` in force is the user's, else ""."""
        mine, theirs = getattr(self.limits, name), getattr(self.cfg.user_budget, name)
        if theirs is None or mine != theirs or self.cfg.user_dir is None:
            return ""
        return f" in {self.cfg.user_dir / 'config.yaml'}"

    @property
    def user_dir(self) -> Path | None:
        """Where the user's spend across projects is recorded (None: no user limit)."""
        return None if self._user is None else self._user.state_dir

    @staticmethod
    def _check(
        limit: float | None, name: str, spent: float, reserved: float, amount: float,
        scope: str = "this run", where: str = "",
    ) -> None:
        if limit is None:
            return
        if spent + reserved + amount > limit + 1e-12:
            raise BudgetExceeded(
                f"{name} = ${limit:.4f}{where}: {scope} has spent ${spent:.4f}"
                + (f" (+${reserved:.4f} reserved by runs in flight)" if reserved else "")
                + f"; this call reserves up to ${amount:.4f}; nothing was dispatched"
            )

    @contextmanager
    def settling(self, res: Reservation | None, cost: float | None = None) -> Iterator[None]:
        """Hold the budget lock around the ledger write of a reserved call, then drop its
        reservation (the call's cost is in the ledger from then on, and in its tree's
        running total)."""
        if res is not None and self.shared is not None:
            # The user's lock around the record and the drop of the user's hold: a concurrent
            # check sees the call held or spent, never neither.
            with self._user_locked():
                with self.shared.settling(res):
                    yield
                if self._user is not None:
                    self._user.drop(res.id)
            return
        with self.settling_all([(res, cost)]):
            yield

    @contextmanager
    def settling_all(self, calls: Sequence[tuple[Reservation | None, float | None]]
                     ) -> Iterator[None]:
        """``settling`` for several calls at once (one lock, one write of the open
        reservations): the gateway records its calls in batches. A shared backend settles
        one call per ledger write (``settling``): the gateway does not batch then."""
        held = [(res, cost) for res, cost in calls if res is not None]
        if not held:
            yield
            return
        if self.shared is not None:
            raise ValueError("settling_all: a shared backend settles one call at a time")
        with self._locked():
            yield
            for res, cost in held:
                self.add_to_tree(res, cost)
            open_ = self._load_open()
            for res, _ in held:
                open_.pop(res.id, None)
            self._save(open_)
            if self._user is not None:
                for res, _ in held:
                    self._user.drop(res.id)

    def release(self, res: Reservation | None) -> None:
        if res is None:
            return
        if self.shared is not None:
            self.shared.release(res)
            if self._user is not None:
                with self._user_locked():
                    self._user.drop(res.id)
            return
        with self._locked():
            self._scope.drop(res.id)
            if self._user is not None:
                self._user.drop(res.id)

    def _load_open(self) -> dict[str, dict[str, Any]]:
        return self._scope.load_open()

    def _save(self, open_: dict[str, dict[str, Any]]) -> None:
        self._scope.save(open_)


def _valid(r: object) -> bool:
    return (isinstance(r, dict) and isinstance(r.get("session"), str)
            and isinstance(r.get("day"), str) and isinstance(r.get("amount"), (int, float))
            and not isinstance(r["amount"], bool) and math.isfinite(r["amount"]))
