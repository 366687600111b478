"""What the simulator's API dialects share: the answer record, errors, SSE framing, limits.

Each dialect (``messages_api``, ``openai_api``, ``gemini_api``) turns a parsed request body into
an ``Answer`` (pure, no I/O); ``burnless.sim.server`` does the HTTP.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from burnless.accounting.tokens import estimate_tokens
from burnless.sim.billing import block_text
from burnless.sim.dialogue import Turn

CHUNK = 48  # characters per streamed text delta
# Models that think before answering: their answers carry reasoning ("thinking") tokens.
_REASONING = re.compile(r"^(?:gpt-5|o[1-9]|codex|gemini-(?:2\.5|[3-9]))", re.IGNORECASE)


class ApiError(Exception):
    """A request the API refuses: the status and the message of its error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


@dataclass(frozen=True)
class Answer:
    """What to send back: a JSON body, or (``events``) an SSE stream; ``usage`` is logged."""

    status: int
    payload: Any
    usage: Mapping[str, Any] | None = None
    events: tuple[bytes, ...] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def sse(data: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    """One server-sent event: ``event: NAME`` (if given) and ``data: JSON`` (or a raw str)."""
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    head = b"event: " + event.encode() + b"\n" if event else b""
    end = b"\r\n\r\n" if crlf else b"\n\n"
    return head + b"data: " + payload + end


def chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def limited(turn: Turn, max_tokens: int) -> tuple[Turn, int]:
    """Cut the answer at ``max_tokens`` (stop_reason ``max_tokens``), as the APIs do."""
    tokens = sum(estimate_tokens(block_text(b)) for b in turn.content)
    if tokens <= max_tokens:
        return turn, tokens
    text = "".join(str(b.get("text", "")) for b in turn.content if b.get("type") == "text")
    cut = text.encode("utf-8")[: max_tokens * 4].decode("utf-8", "ignore")
    content = ({"type": "text", "text": cut},) if cut else ()
    return Turn(content, "max_tokens"), estimate_tokens(cut)


def reasoning_tokens(model: str, seed_text: str) -> int:
    """The reasoning tokens a thinking model (gpt-5*, o-series, codex, Gemini 2.5+) spends on
    an answer: 8 to 64, from a hash of the request; 0 for other models."""
    if not _REASONING.match(model):
        return 0
    digest = hashlib.sha256(seed_text.encode("utf-8", "replace")).digest()
    return 8 + digest[0] % 57


def text_of(turn: Turn) -> str:
    return "".join(str(b.get("text", "")) for b in turn.content if b.get("type") == "text")


def tool_uses(turn: Turn) -> list[dict[str, Any]]:
    return [b for b in turn.content if b.get("type") == "tool_use"]


def stable_id(prefix: str, body: Any, size: int = 24) -> str:
    return prefix + hashlib.sha256(orjson.dumps(body)).hexdigest()[:size]
