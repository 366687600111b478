"""Shared state for teams: the one seam between burnless's state and a server.

With ``state.backend: local`` (the default) nothing here is used: budgets, the breaker, gateway
pins and the response cache keep their files under ``.burnless/``, in the modules that own them.
With ``state.backend: redis://...`` each of those modules asks ``shared(cfg)`` for the backend
and calls the operations of ``SharedState`` instead; every ledger record this process appends
is also copied to the server, so ``usage --shared`` and ``/metrics`` see the team.

This module imports nothing heavy: the ``redis`` client is imported by ``redis_store`` only, and
only when a config names a Redis backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from burnless.accounting.budget import Reservation
    from burnless.settings import Config


class Unreachable(Exception):
    """The shared state server could not be used; ``str()`` says why (never a password)."""


@dataclass(frozen=True)
class Scope:
    """One budget limit as the server checks it. ``kind``: what the spend is counted over —
    ``tree`` (a delegation tree), ``session``, ``day`` (UTC, with every open reservation), or
    ``run`` (one run's own calls, whose ``spent`` the caller knows), and for a gateway
    request's virtual key ``keyday`` and ``keymonth`` (UTC)."""

    limit: float | None
    kind: str
    spent: float = 0.0


@dataclass(frozen=True)
class Grant:
    """A reservation the shared state server granted."""
    amount: float  # USD held: the call's ceiling
    handle: str  # the reservation as the server knows it


@dataclass(frozen=True)
class Denial:
    """Why a reservation was refused: the scope (an index into the scopes given, or -1 for
    ``max_calls_per_session``) and its figures."""

    scope: int
    spent: float = 0.0
    held: float = 0.0
    amount: float = 0.0
    calls: int = 0
    calls_open: int = 0


class SharedState(Protocol):
    """What the owning modules ask of a shared backend. Every operation raises
    ``Unreachable`` when the server cannot be used; the owners decide what that means
    (a budget refuses, a breaker, pin or cache falls back to this machine's own state)."""

    shown: str  # the backend, credentials masked, for messages

    # budgets (accounting.budget)
    def session_key(self, session: str, *, team: bool) -> str:
        """How a session's totals are named on the server: a gateway session is the team's
        (any gateway may serve it), a run's session is its workspace's."""
        ...
    def reserve(self, scopes: Sequence[Scope], *, session: str, tree: str, fixed: float,
                grow: bool, max_calls: int | None, ttl: float, day: str, key: str = ""
                ) -> Grant | Denial: ...
    def settling(self, res: Reservation) -> AbstractContextManager[None]: ...
    def release(self, res: Reservation) -> None: ...
    def forget_tree(self, tree: str) -> None: ...
    def key_spend(self, key: str, day: str) -> tuple[float, float]:
        """A virtual key's settled spend (USD) on ``day`` and in its month, the team's."""
        ...

    # the circuit breaker (routing.breaker): ({"streak", "last_failure"} or {}, server time)
    def breaker_state(self, tier: str) -> tuple[dict[str, float], float]: ...
    def breaker_record(self, tier: str, failed: bool) -> None: ...

    # gateway pins (gateway.routing.Sessions)
    def pin_get(self, key: str) -> dict[str, Any] | None: ...
    def pin_put(self, key: str, data: dict[str, Any], ttl: float, max_pins: int) -> None: ...

    # the response cache (response_cache)
    def cache_get(self, key: str) -> dict[str, Any] | None: ...
    def cache_put(self, key: str, data: dict[str, Any], ttl: float) -> None: ...

    # copies of ledger records (accounting.ledger appends, usage --shared, /metrics)
    def copy(self, records: list[dict[str, Any]]) -> None: ...
    def records(self, since_day: str | None = None, after: str | None = None
                ) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...


_backends: dict[tuple[str, str, Path], SharedState] = {}
_lock = threading.Lock()


def shared(cfg: Config) -> SharedState | None:
    """The workspace's shared backend (one per process, backend and workspace), or None when
    its state is local. The first call also makes the ledger copy every record it appends
    from then on: a process calls this before it writes the ledger (a run, the gateway)."""
    st = cfg.state
    if not st.shared:
        return None
    key = (st.backend, st.namespace, cfg.state_dir)
    with _lock:
        found = _backends.get(key)
        if found is None:
            from burnless.state.redis_store import RedisState

            try:
                found = _backends[key] = RedisState(cfg)  # imports the client
            except ImportError as exc:
                from burnless.errors import UsageError

                raise UsageError(f"state.backend is a Redis server ({st.shown}), but the redis "
                                 f"client cannot be imported ({exc}): pip install "
                                 "'burnless[redis]'") from None
            # Every record this workspace's ledger gets from now on is copied to the server.
            from burnless.accounting import ledger

            ledger.COPIES[cfg.state_dir] = found.copy
        return found


def reset() -> None:
    """Forget this process's backends and close their connections (tests; an embedder that
    reloads its configuration). Their reservations expire unless settled first."""
    from burnless.accounting import ledger

    with _lock:
        for (_, _, state_dir), backend in _backends.items():
            ledger.COPIES.pop(state_dir, None)
            backend.close()
        _backends.clear()
