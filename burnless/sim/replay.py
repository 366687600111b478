"""One chat-agent conversation on one model: the baseline burnless is measured against.

A chat agent (Claude Code, ``claude --continue``) keeps one conversation: every request is the
system prompt, the whole transcript of the earlier turns and the current turn so far. It does
not let that grow past the model's context window. When the conversation approaches the
window it *compacts*: one more request, the conversation so far plus a summarisation
instruction, whose answer (a summary) replaces the transcript; the work goes on from the
summary. Claude Code documents this ("Claude Code compacts automatically as you approach the
limit", code.claude.com/docs/en/context-window) and that the compaction request carries the
whole history and reads it from the prompt cache while the cache is warm
(code.claude.com/docs/en/prompt-caching). The rule modelled here, with its numbers, is written
out in ``docs/economics.md``.

This module builds the requests; the caller bills them (``burnless.sim.billing.PromptCache``)
on its own clock. Everything it produces is simulated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from burnless.sim.billing import split_blocks

CONTEXT_WINDOW = 200_000  # Claude's standard window; 1M is an opt-in beta, not the default
COMPACT_AT = 160_000  # 80% of the window: compact before a request would reach this
SUMMARY_TOKENS = 4_000  # what the compaction answers, and what the next request carries
INSTRUCTION_TOKENS = 1_000  # the summarisation instruction (Claude Code's is ~4 KB of text)
EPHEMERAL = {"type": "ephemeral"}

Message = dict[str, Any]  # {"role": "user" | "assistant", "content": [block, ...]}


class WindowExceeded(ValueError):
    """A request the real API would refuse: more input tokens than the context window."""


@dataclass(frozen=True)
class Compaction:
    """When and how the conversation compacts. ``compact_at=None``: never (not a real client:
    its requests grow past the window, which the API refuses; kept to show what capping and
    compacting change)."""

    window: int = CONTEXT_WINDOW
    compact_at: int | None = COMPACT_AT
    summary_tokens: int = SUMMARY_TOKENS
    instruction_tokens: int = INSTRUCTION_TOKENS

    def __post_init__(self) -> None:
        if self.compact_at is not None and not (
            0 < self.summary_tokens < self.compact_at <= self.window
        ):
            raise ValueError("need 0 < summary_tokens < compact_at <= window")


NEVER = Compaction(compact_at=None)


@dataclass(frozen=True)
class Request:
    """One request of the conversation. ``output_tokens`` is set for a compaction (its summary);
    a step's output is the caller's (the same answer whatever the strategy)."""

    kind: Literal["step", "compact"]
    body: dict[str, Any]
    input_tokens: int  # as the simulator counts them (``split_blocks``)
    output_tokens: int | None = None


def request_tokens(body: Mapping[str, Any]) -> int:
    """The request's input tokens, counted as the simulator bills them."""
    return sum(b.tokens for b in split_blocks(body))


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _sized(lead: str, tokens: int) -> str:
    """ASCII text of exactly ``4 * tokens`` bytes (``estimate_tokens`` gives ``tokens``)."""
    size = 4 * tokens
    body = (lead + " ") * (size // (len(lead) + 1) + 1)
    return body[:size]


INSTRUCTION_LEAD = (
    "Your task is to create a detailed summary of the conversation so far: the user's requests, "
    "the files read and changed, the decisions, the errors and the pending work. (simulated)"
)


class Conversation:
    """The transcript of one conversation, and the requests each model step sends.

    Per model step of a turn, ``step(turn)`` gives the requests sent: a compaction first when
    the step's request would reach ``compact_at`` input tokens (and there are earlier turns to
    fold), then the step itself. After a compaction the transcript of the earlier turns is gone;
    the summary opens the current turn's first user message, and the current turn's own
    messages stay (Claude Code re-attaches the files it read last, see docs/economics.md).
    ``end_turn`` appends the turn and its answer to the transcript.
    """

    def __init__(
        self,
        model: str,
        system: str,
        *,
        cached: bool,
        compaction: Compaction = Compaction(),  # noqa: B008 - frozen, shared safely
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int = 8192,
    ) -> None:
        self.model = model
        self.system = system
        self.cached = cached
        self.compaction = compaction
        self.tools = [dict(t) for t in tools]
        self.max_tokens = max_tokens
        self.history: list[Message] = []  # the earlier turns since the last compaction
        self.compactions = 0
        self._summary: str | None = None  # opens the current turn after a compaction
        self._instruction = _sized(INSTRUCTION_LEAD, compaction.instruction_tokens)

    def step(self, turn: Sequence[Message]) -> list[Request]:
        """The requests one model step sends; ``turn`` is the current turn's messages so far
        (a user message first, a user message last)."""
        body = self._body(self._messages(turn))
        size = request_tokens(body)
        out: list[Request] = []
        limit = self.compaction.compact_at
        if limit is not None and size >= limit and self.history:
            msgs = self._messages(turn)
            last = msgs[-1]
            msgs[-1] = {**last, "content": [*last["content"], _text(self._instruction)]}
            compact = self._body(msgs)
            compact_size = self._checked(request_tokens(compact))
            self.compactions += 1
            out.append(Request("compact", compact, compact_size, self.compaction.summary_tokens))
            self.history = []
            self._summary = _sized(
                f"Summary {self.compactions} of the conversation so far (simulated).",
                self.compaction.summary_tokens,
            )
            body = self._body(self._messages(turn))
            size = request_tokens(body)
        if limit is not None:
            self._checked(size)
        out.append(Request("step", body, size))
        return out

    def end_turn(self, turn: Sequence[Message], answer: Sequence[Mapping[str, Any]]) -> None:
        """The turn is over: its messages and the final answer join the transcript."""
        self.history = [
            *self._messages(turn),
            {"role": "assistant", "content": [dict(b) for b in answer]},
        ]
        self._summary = None

    def _checked(self, size: int) -> int:
        if size > self.compaction.window:
            raise WindowExceeded(
                f"a request of {size:,} input tokens does not fit the {self.compaction.window:,}"
                "-token window, even after compacting"
            )
        return size

    def _messages(self, turn: Sequence[Message]) -> list[Message]:
        opened = [dict(m) for m in turn]
        if self._summary is not None and opened:
            first = opened[0]
            opened[0] = {**first, "content": [_text(self._summary), *first["content"]]}
        return [*self.history, *opened]

    def _body(self, messages: list[Message]) -> dict[str, Any]:
        """Cached: breakpoints on the system block and on the last block (as Claude Code)."""
        system = _text(self.system)
        if self.cached and messages:
            system = {**system, "cache_control": EPHEMERAL}
            last = messages[-1]
            blocks = [dict(b) for b in last["content"]]
            blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
            messages = [*messages[:-1], {**last, "content": blocks}]
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": [system],
            "messages": messages,
        }
        if self.tools:
            body["tools"] = self.tools
        return body
