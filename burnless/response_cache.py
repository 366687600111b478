"""The response cache (``cache.responses``): exact-match answers for read-only turns.

A turn that only thought (an answer, a plan, a review: no file claimed, nothing changed on disk)
is stored under the hash of everything that determined it: the tier's command or API, its
model, the role and the exact prompt. The same prompt to the same tier within ``cache.ttl``
seconds is answered from the cache: nothing is dispatched, nothing is spent, and the ledger
record says ``cached: true``. Answers are stored redacted, like the run logs.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import orjson

from burnless.config import Tier
from burnless.storage.atomic import write_atomic


def key(tier: Tier, role: str, prompt_text: str) -> str:
    h = hashlib.sha256()
    for part in (tier.command or "", tier.api or "", tier.model or "", role):
        h.update(part.encode("utf-8") + b"\0")
    h.update(prompt_text.encode("utf-8"))
    return h.hexdigest()


class ResponseCache:
    def __init__(self, state_dir: Path, ttl: float) -> None:
        self.dir = state_dir / "cache" / "responses"
        self.ttl = ttl

    def get(self, k: str) -> tuple[str, str | None] | None:
        """The cached answer text and model, if fresh."""
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
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / f"{k}.json",
                     orjson.dumps({"ts": time.time(), "text": text, "model": model}))
