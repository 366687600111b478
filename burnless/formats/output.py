"""The record every output format parses into."""

from __future__ import annotations

from dataclasses import dataclass

from burnless.accounting.tokens import Tokens

CLAUDE_JSON = "claude-json"
CLAUDE_STREAM_JSON = "claude-stream-json"
CODEX_JSONL = "codex-jsonl"
GEMINI_JSON = "gemini-json"
TEXT = "text"

FORMATS: tuple[str, ...] = (CLAUDE_JSON, CLAUDE_STREAM_JSON, CODEX_JSONL, GEMINI_JSON, TEXT)


@dataclass(frozen=True)
class WorkerOutput:
    """What a worker's stdout says, whatever format it came in.

    ``usage`` follows burnless's convention: ``input`` is input billed at the full rate only;
    ``cache_read`` and ``cache_write`` are separate, so the four numbers never overlap.
    ``usage`` is None when the output reports none (plain text, a truncated stream with no
    usage in it): the caller estimates, it is never silently 0.
    """

    text: str
    format: str
    usage: Tokens | None
    cost_usd: float | None
    model: str | None
    is_error: bool
    cache_write_1h: int = 0
    findings: tuple[str, ...] = ()


def text_output(raw: str, findings: tuple[str, ...] = ()) -> WorkerOutput:
    """The fallback: the whole output is the answer, with no usage."""
    return WorkerOutput(
        text=raw,
        format=TEXT,
        usage=None,
        cost_usd=None,
        model=None,
        is_error=False,
        findings=findings,
    )
