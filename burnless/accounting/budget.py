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
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting import ledger, pricing
from burnless.config import Config, Tier
from burnless.errors import BudgetExceeded
from burnless.storage.atomic import write_atomic
from burnless.storage.locks import file_lock

LOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class Reservation:
    id: str
    session: str
    day: str
    amount: float  # USD reserved (worst case)


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
        # Drop reservations whose process is gone (a crashed run must not block the budget),
        # and damaged ones (a hand-edited file must not crash every run).
        return {k: v for k, v in data.items()
                if _valid(v) and _alive(v.get("pid"), v.get("start"))}

    def save(self, open_: dict[str, dict[str, Any]]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, orjson.dumps(open_))

    def drop(self, res_id: str) -> None:
        open_ = self.load_open()
        if open_.pop(res_id, None) is not None:
            self.save(open_)


class Guard:
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

    def reserve(
        self, *, session: str, tier: Tier, prompt_tokens: int, task_spent: float
    ) -> Reservation | None:
        """Reserve the worst case of a call, or raise BudgetExceeded. None when no limit is set."""
        if not self.active:
            return None
        b = self.limits
        amount = worst_case(tier, prompt_tokens)
        if amount is None and b.any_cost_limit:
            raise BudgetExceeded(
                f"tier {tier.name!r}: no price known for model {tier.model!r}, so the budget "
                f"cannot be enforced; set tiers.{tier.name}.price in {self.cfg.path}"
            )
        amount = amount or 0.0
        day = today()
        from burnless.accounting.index import spend_for  # the index only when a limit is set

        with self._locked():
            open_ = self._load_open()
            spend = spend_for(self.state_dir, session=session, day=day)
            res_session = sum(r["amount"] for r in open_.values() if r["session"] == session)
            # Every open reservation counts against today, whatever day it was made: a call
            # reserved before midnight settles (and its cost lands) after it.
            res_day = sum(r["amount"] for r in open_.values())
            calls_open = sum(1 for r in open_.values() if r["session"] == session)
            self._check(b.max_cost_per_task, "max_cost_per_task", task_spent, 0.0, amount,
                        where=self._whose("max_cost_per_task"))
            self._check(b.max_cost_per_session, "max_cost_per_session",
                        spend.session_cost, res_session, amount, f"session {session!r}",
                        self._whose("max_cost_per_session"))
            if self._user is None or self._whose("max_cost_per_day") == "":
                # The project's own day limit (below the user's, if any): the user's is
                # checked below, across every project, this one included.
                self._check(b.max_cost_per_day, "max_cost_per_day",
                            spend.day_cost, res_day, amount, f"day {day} (UTC)")
            if b.max_calls_per_session is not None:
                used = spend.session_calls + calls_open
                if used + 1 > b.max_calls_per_session:
                    raise BudgetExceeded(
                        f"budget.max_calls_per_session = {b.max_calls_per_session}"
                        f"{self._whose('max_calls_per_session')}: session "
                        f"{session!r} has made {spend.session_calls} calls"
                        + (f" (+{calls_open} in flight)" if calls_open else "")
                        + "; nothing was dispatched"
                    )
            user_open: dict[str, dict[str, Any]] = {}
            if self._user is not None:
                user_open = self._user.load_open()
                user_day = spend_for(self._user.state_dir, session="", day=day).day_cost
                # As above: every open reservation of the user's counts against today.
                self._check(self.user_day, "max_cost_per_day", user_day,
                            sum(r["amount"] for r in user_open.values()), amount,
                            f"day {day} (UTC), across every project,",
                            self._whose("max_cost_per_day"))
            res = Reservation(f"{os.getpid()}-{os.urandom(4).hex()}", session, day, amount)
            entry = {
                "session": session, "day": day, "amount": amount,
                "pid": os.getpid(), "start": _start_ticks(os.getpid()), "created": time.time(),
            }
            open_[res.id] = entry
            self._save(open_)
            if self._user is not None:
                user_open[res.id] = {**entry, "workspace": str(self.cfg.workspace)}
                self._user.save(user_open)
        return res

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The workspace's budget lock, then the user's (always in this order)."""
        with file_lock(self._lock_path, LOCK_TIMEOUT):
            with (file_lock(self._user.lock_path, LOCK_TIMEOUT) if self._user is not None
                  else nullcontext()):
                yield

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
                f"budget.{name} = ${limit:.4f}{where}: {scope} has spent ${spent:.4f}"
                + (f" (+${reserved:.4f} reserved by runs in flight)" if reserved else "")
                + f"; this call reserves up to ${amount:.4f}; nothing was dispatched"
            )

    @contextmanager
    def settling(self, res: Reservation | None) -> Iterator[None]:
        """Hold the budget lock around the ledger write of a reserved call, then drop its
        reservation (the call's cost is in the ledger from then on)."""
        if res is None:
            yield
            return
        with self._locked():
            yield
            open_ = self._load_open()
            open_.pop(res.id, None)
            self._save(open_)
            if self._user is not None:
                self._user.drop(res.id)

    def release(self, res: Reservation | None) -> None:
        if res is None:
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


def _alive(pid: object, start: object = None) -> bool:
    """Whether the run that made a reservation still runs: its pid exists and, where process
    start times are known (Linux), it is the same process (not a later one that reused the pid).
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _stat(pid)
    if stat is None:
        return True
    state, ticks = stat
    if state == "Z":  # killed, not yet reaped by its parent: it will never settle
        return False
    return not isinstance(start, int) or isinstance(start, bool) or ticks == start


def _start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """State and start time (clock ticks since boot, immune to clock changes) of process
    ``pid``, from /proc; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
