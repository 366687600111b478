"""Circuit breaker: skip a tier that keeps failing, for every run and gateway request.

A tier that exits non-zero or times out ``routing.breaker.failures`` times in a row, across all
runs and sessions of the workspace, is skipped for ``routing.breaker.cooldown`` seconds. State is
a small JSON file (``.burnless/breaker.json``) updated under a lock after every call; with a
shared backend (``state.backend``) it is on the server, for every machine of the team (and this
file again while the server cannot be reached).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from burnless.settings import Config
from burnless.storage.atomic import write_atomic
from burnless.storage.locks import file_lock

if TYPE_CHECKING:
    from burnless.state import SharedState


class Breaker:
    def __init__(self, cfg: Config) -> None:
        self.failures = cfg.routing.breaker.failures
        self.cooldown = cfg.routing.breaker.cooldown
        self._path = cfg.state_dir / "breaker.json"
        self._lock_path = cfg.state_dir / "breaker.lock"
        self._shared: SharedState | None = None
        if cfg.state.shared:
            from burnless.state import shared

            self._shared = shared(cfg)

    @property
    def shared(self) -> bool:
        """Its state is on a server (each call is a round trip)."""
        return self._shared is not None

    def _state(self, tier: str) -> tuple[dict[str, Any] | None, float | None]:
        """The tier's state, and the clock it is measured by (None: this machine's)."""
        if self._shared is not None:
            from burnless.state import Unreachable

            try:
                state, now = self._shared.breaker_state(tier)
                return state or None, now
            except Unreachable:
                pass  # this machine's own record, until the server is back
        return self._load().get(tier), None

    def _load(self) -> dict[str, dict[str, Any]]:
        """Each tier's ``{"streak": int, "last_failure": float}``; a damaged entry is dropped."""
        try:
            data = orjson.loads(self._path.read_bytes())
        except (FileNotFoundError, IsADirectoryError, orjson.JSONDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)
                and _number(v.get("streak", 0)) and _number(v.get("last_failure", 0.0))}

    def open_reason(self, tier: str, now: float | None = None) -> str | None:
        """Why the tier's breaker is open, or None when the tier may be called."""
        if self.failures <= 0:
            return None
        state, clock = self._state(tier)
        if state is None:
            return None
        streak = int(state.get("streak", 0))
        last = float(state.get("last_failure", 0.0))
        now = (clock or time.time()) if now is None else now
        if streak >= self.failures and now - last < self.cooldown:
            until = time.strftime("%H:%M:%S", time.gmtime(last + self.cooldown))
            return (f"breaker open on {tier}: {streak} failures in a row, "
                    f"skipped until {until} UTC")
        return None

    def streak(self, tier: str) -> int:
        """The tier's failures in a row (0: a success has nothing to reset)."""
        return int(self._load().get(tier, {}).get("streak", 0))

    def record(self, tier: str, failed: bool) -> None:
        if self._shared is not None:
            from burnless.state import Unreachable

            try:
                self._shared.breaker_record(tier, failed)
                return
            except Unreachable:
                pass
        if not failed and not self._load().get(tier, {}).get("streak"):
            return  # the usual success: nothing to reset, so no lock and no write
        with file_lock(self._lock_path, 60):
            data = self._load()
            state = data.get(tier, {})
            if failed:
                state = {"streak": int(state.get("streak", 0)) + 1, "last_failure": time.time()}
            else:
                state = {"streak": 0, "last_failure": float(state.get("last_failure", 0.0))}
            if data.get(tier) == state:
                return
            data[tier] = state
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self._path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))


def _number(value: object) -> bool:
    """A count or a timestamp as the breaker writes them (not a hand-edited 1e300)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= 1e11)
