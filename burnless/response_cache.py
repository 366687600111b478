"""The response cache (``cache.responses``): exact-match answers for read-only turns.

A turn that only thought (an answer, a plan, a review: no file claimed, nothing changed on disk)
is stored under the hash of everything that determined it: the tier's command or API, its
model, the role and the exact prompt. The same prompt to the same tier within ``cache.ttl``
seconds is answered from the cache: nothing is dispatched, nothing is spent, and the ledger
record says ``cached: true``. Answers are stored redacted, like the run logs. With a shared
backend (``state.backend``) entries live on the server, for the whole team, expiring after
``cache.ttl`` (and in this directory while the server cannot be reached).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from burnless.settings import Config, Tier
from burnless.storage.atomic import write_atomic

if TYPE_CHECKING:
    from burnless.state import SharedState


def key(tier: Tier, role: str, prompt_text: str) -> str:
    h = hashlib.sha256()
    for part in (tier.command or "", tier.api or "", tier.model or "", role):
        h.update(part.encode("utf-8") + b"\0")
    h.update(prompt_text.encode("utf-8"))
    return h.hexdigest()


class ResponseCache:
    def __init__(self, state_dir: Path, ttl: float, shared: SharedState | None = None) -> None:
        self.dir = state_dir / "cache" / "responses"
        self.ttl = ttl
        self.shared = shared

    @classmethod
    def of(cls, cfg: Config) -> ResponseCache:
        """The workspace's cache: ``cache.ttl``, on its shared backend if it has one."""
        shared = None
        if cfg.state.shared:
            from burnless.state import shared as shared_state

            shared = shared_state(cfg)
        return cls(cfg.state_dir, cfg.cache.ttl, shared)

    def get(self, k: str) -> tuple[str, str | None] | None:
        """The cached answer text and model, if fresh."""
        data: Any = None
        if self.shared is not None:
            from burnless.state import Unreachable

            try:
                data = self.shared.cache_get(k)
                if data is None:
                    return None
            except Unreachable:
                data = None  # this directory, until the server is back
        if data is None:
            try:
                data = orjson.loads((self.dir / f"{k}.json").read_bytes())
            except (OSError, orjson.JSONDecodeError):
                return None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return None
        if time.time() - float(data.get("ts", 0)) > self.ttl:
            return None
        model = data.get("model")
        return data["text"], model if isinstance(model, str) else None

    def put(self, k: str, text: str, model: str | None) -> None:
        if self.shared is not None:
            from burnless.state import Unreachable

            try:
                self.shared.cache_put(k, {"ts": time.time(), "text": text, "model": model},
                                      self.ttl)
                return
            except Unreachable:
                pass
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / f"{k}.json",
                     orjson.dumps({"ts": time.time(), "text": text, "model": model}))
