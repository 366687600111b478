"""The record every output format parses into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from burnless.accounting.tokens import Tokens

CLAUDE_JSON = "claude-json"
CLAUDE_STREAM_JSON = "claude-stream-json"
CODEX_JSONL = "codex-jsonl"
GEMINI_JSON = "gemini-json"
TEXT = "text"

FORMATS: tuple[str, ...] = (CLAUDE_JSON, CLAUDE_STREAM_JSON, CODEX_JSONL, GEMINI_JSON, TEXT)

# What ``usage is None`` means. "estimate": the output carries no usage at all (plain text, a
# Claude stream cut short): the caller estimates from bytes. "unbilled": the worker says the
# call failed before anything was billed (every request refused for its key, or the key
# missing so nothing was sent): zero tokens, $0. "unknown": the worker failed without saying
# what was billed before the failure (an agent CLI adds ~10k tokens of its own per request, so
# an estimate from burnless's prompt would look like spend and be wrong either way).
NoUsage = Literal["estimate", "unbilled", "unknown"]


# A model name a worker reports goes into the ledger, capsules and /metrics labels, so it is
# bounded and checked where it is read: at most 128 characters of letters, digits and
# ``. _ : / @ + -`` (every provider id fits: ``claude-sonnet-4-6``, ``anthropic/claude-opus-4.8``,
# ``gpt-5.1-codex@2025-11-13``, ``models/gemini-2.5-pro``, ``qwen2.5-coder:7b``). Anything else is
# dropped with a finding, and the tier's configured model stands in (the ledger, pricing and
# metrics all read ``output.model or tier.model``).
MAX_MODEL_NAME = 128
_MODEL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/@+-"
)


def valid_model_name(name: str) -> bool:
    return 0 < len(name) <= MAX_MODEL_NAME and _MODEL_CHARS.issuperset(name)


def _shown(name: str) -> str:
    """A bounded, printable glimpse of a rejected name (never the whole of it)."""
    head = "".join(c if c in _MODEL_CHARS else "?" for c in name[:32])
    return f"{head!r}{'...' if len(name) > 32 else ''} ({len(name)} characters)"


@dataclass(frozen=True)
class WorkerOutput:
    """What a worker's stdout says, whatever format it came in.

    ``usage`` follows burnless's convention: ``input`` is input billed at the full rate only;
    ``cache_read`` and ``cache_write`` are separate, so the four numbers never overlap.
    ``usage`` is None when the output reports none; ``no_usage`` says what that means (the
    caller estimates, records $0, or records the cost as unknown): it is never silently 0.
    ``model`` is a valid model name (``valid_model_name``) or None. ``error`` is the failure
    the worker itself reported (an API error, a missing key), which says more than its last
    stderr line. ``by_model`` splits ``usage`` per model when the worker used several (a
    routing call to a small model), so each is priced at its own rate.
    """

    text: str
    format: str
    usage: Tokens | None
    cost_usd: float | None
    model: str | None
    is_error: bool
    cache_write_1h: int = 0
    findings: tuple[str, ...] = ()
    error: str = ""
    no_usage: NoUsage = "estimate"
    by_model: tuple[tuple[str, Tokens], ...] = ()

    def __post_init__(self) -> None:
        # Every parser (and every worker kind) builds this record: checking the model here
        # leaves no path by which an unbounded name reaches the ledger. (object.__setattr__:
        # the record is frozen, this runs while it is being built.)
        model = self.model.strip() if self.model is not None else None
        if model is not None and not valid_model_name(model):
            note = (f"the worker reported an invalid model name {_shown(model)}; "
                    "the tier's model is used instead") if model else None
            object.__setattr__(self, "findings", (*self.findings, note) if note else self.findings)
            model = None
        if model != self.model:
            object.__setattr__(self, "model", model)


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
