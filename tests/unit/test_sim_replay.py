"""burnless.sim.replay: one chat-agent conversation that compacts before it reaches the window."""

from __future__ import annotations

from typing import Any

import pytest

from burnless.accounting.tokens import estimate_tokens
from burnless.sim.billing import PromptCache
from burnless.sim.replay import (
    NEVER,
    Compaction,
    Conversation,
    WindowExceeded,
    request_tokens,
)

MODEL = "claude-sonnet-4-6"
SYSTEM = "s" * 4000  # 1,000 tokens


def _user(tokens: int, tag: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": (tag * 4 * tokens)[: 4 * tokens]}]}


def _answer(tokens: int) -> list[dict[str, Any]]:
    return [{"type": "text", "text": "a" * 4 * tokens}]


SMALL = Compaction(window=12_000, compact_at=10_000, summary_tokens=500, instruction_tokens=100)


def _session(chat: Conversation, turns: int, size: int) -> list[tuple[int, str, int]]:
    """Run ``turns`` one-step turns of ``size`` tokens; (turn, kind, input tokens) per request."""
    out = []
    for n in range(1, turns + 1):
        turn = [_user(size, chr(ord("a") + n % 26))]
        for req in chat.step(turn):
            assert req.input_tokens == request_tokens(req.body)
            out.append((n, req.kind, req.input_tokens))
        chat.end_turn(turn, _answer(100))
    return out


def test_the_transcript_grows_by_each_turn_and_its_answer() -> None:
    chat = Conversation(MODEL, SYSTEM, cached=False, compaction=NEVER)
    sizes = [t for _, _, t in _session(chat, 4, 1000)]
    assert sizes == [1000 + 1000, 1000 + 2 * 1000 + 100, 1000 + 3 * 1000 + 200, 1000 + 4000 + 300]
    assert chat.compactions == 0


def test_compacts_before_a_request_would_reach_the_threshold_and_never_exceeds_the_window() -> None:
    chat = Conversation(MODEL, SYSTEM, cached=True, compaction=SMALL)
    log = _session(chat, 12, 1500)
    steps = [(n, t) for n, kind, t in log if kind == "step"]
    compacts = [(n, t) for n, kind, t in log if kind == "compact"]
    assert len(steps) == 12  # one step per turn, whatever happens
    assert compacts, "a 12 x 1,600-token conversation must compact under a 10,000 threshold"
    assert all(t < SMALL.compact_at for _, t in steps)
    assert all(t <= SMALL.window for _, t in compacts)
    assert chat.compactions == len(compacts)
    for n, size in compacts:
        # The compaction call carries at least the threshold (what the step would have sent) ...
        assert size >= SMALL.compact_at
        # ... and the step after it carries the system, the summary and the current turn only.
        after = next(t for m, k, t in log if m == n and k == "step")
        assert after == 1000 + SMALL.summary_tokens + 1500


def test_the_compaction_request_is_the_conversation_plus_the_instruction() -> None:
    chat = Conversation(MODEL, SYSTEM, cached=True, compaction=SMALL)
    for n in range(1, 6):
        turn = [_user(1800, "xyz"[n % 3])]
        reqs = chat.step(turn)
        chat.end_turn(turn, _answer(200))
    chat2 = Conversation(MODEL, SYSTEM, cached=True, compaction=NEVER)
    for n in range(1, 6):
        turn = [_user(1800, "xyz"[n % 3])]
        plain = chat2.step(turn)[-1]
        chat2.end_turn(turn, _answer(200))
    # Turn 5 would send 1,000 + 4 x 2,000 + 1,800 = 10,800 >= 10,000: it compacts first.
    assert [r.kind for r in reqs] == ["compact", "step"]
    compact, step = reqs
    assert compact.output_tokens == SMALL.summary_tokens
    assert compact.input_tokens == plain.input_tokens + SMALL.instruction_tokens
    assert compact.body["messages"][:-1] == plain.body["messages"][:-1]
    # Breakpoints on the system block and on the last block only (as Claude Code).
    marked = [b for m in compact.body["messages"] for b in m["content"] if "cache_control" in b]
    assert compact.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert marked == [compact.body["messages"][-1]["content"][-1]]
    # After it: the summary opens the current turn, the earlier turns are gone.
    first = step.body["messages"][0]["content"]
    assert len(step.body["messages"]) == 1 and len(first) == 2
    assert estimate_tokens(first[0]["text"]) == SMALL.summary_tokens
    assert step.input_tokens == 1000 + SMALL.summary_tokens + 1800


def test_a_warm_compaction_reads_the_conversation_from_the_cache() -> None:
    cache = PromptCache(clock=lambda: 0.0)
    chat = Conversation(MODEL, SYSTEM, cached=True, compaction=SMALL)
    billed = []
    for n in range(1, 6):
        turn = [_user(1800, "xyz"[n % 3])]
        for req in chat.step(turn):
            billed.append((req.kind, cache.bill(req.body)))
        chat.end_turn(turn, _answer(200))
    (kind, usage), = [(k, u) for k, u in billed if k == "compact"]
    before = billed[-3][1]  # the step before the compaction
    assert usage.cache_read_input_tokens == before.cache_read_input_tokens + (
        before.cache_creation_input_tokens
    )
    # What it writes is only what is new: the answer, this turn and the instruction.
    assert usage.cache_creation_input_tokens == 200 + 1800 + SMALL.instruction_tokens


def test_a_turn_that_cannot_fit_the_window_is_refused_not_sent() -> None:
    chat = Conversation(MODEL, SYSTEM, cached=True, compaction=SMALL)
    with pytest.raises(WindowExceeded, match="12,000-token window"):
        chat.step([_user(11_500, "q")])


def test_uncapped_conversation_sends_what_no_client_could() -> None:
    chat = Conversation(MODEL, SYSTEM, cached=True, compaction=Compaction(compact_at=None))
    (req,) = chat.step([_user(250_000, "q")])
    assert req.input_tokens > 200_000  # counted, not refused: it is the reference, not a client


@pytest.mark.parametrize(
    ("window", "at", "summary"), [(100, 200, 10), (200, 100, 100), (200, 100, 0)]
)
def test_a_compaction_rule_that_cannot_work_is_refused(window: int, at: int, summary: int) -> None:
    with pytest.raises(ValueError, match="summary_tokens < compact_at <= window"):
        Compaction(window=window, compact_at=at, summary_tokens=summary)


def test_tools_are_part_of_every_request() -> None:
    tool = {"name": "Write", "description": "w", "input_schema": {"type": "object"}}
    chat = Conversation(MODEL, SYSTEM, cached=True, tools=[tool])
    (req,) = chat.step([_user(10, "q")])
    assert req.body["tools"] == [tool]
    assert req.input_tokens > 1000 + 10
