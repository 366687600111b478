"""The attributes of a call's span (GenAI semantic conventions), from a ledger record and its
tier: pure functions, no SDK needed."""

from __future__ import annotations

import pytest

from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.telemetry import attributes, provider
from burnless.accounting.tokens import Tokens
from burnless.settings import Tier


@pytest.mark.parametrize("tier, expected", [
    (Tier(name="a", api="anthropic", model="m"), "anthropic"),
    (Tier(name="o", api="openai", model="m", base_url="http://127.0.0.1:11434/v1"), "openai"),
    (Tier(name="c", command="claude -p --output-format json"), "anthropic"),
    (Tier(name="x", command="/usr/local/bin/codex exec --json"), "openai"),
    (Tier(name="g", command="gemini -p"), "gcp.gemini"),
    (Tier(name="w", command="python3 wrap.py", format="claude-stream-json"), "anthropic"),
    (Tier(name="l", command="ollama run qwen3"), "ollama"),
    (None, "_OTHER"),
])
def test_provider(tier: Tier | None, expected: str) -> None:
    assert provider(tier) == expected


def test_attributes_follow_the_conventions() -> None:
    rec = LedgerRecord(run_id="r-1", session="s", role="planning", tier="gold", model=None,
                       status="ok", tokens=Tokens(input=10, output=7, cache_read=300,
                                                  cache_write=40),
                       cost_usd=None, cost_source="unknown", key="alice", client="cc")
    a = attributes(rec, Tier(name="gold", command="claude -p", model="claude-opus-4-8"))
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.request.model"] == "claude-opus-4-8"  # the tier's, the record has none
    assert a["gen_ai.usage.input_tokens"] == 350 and a["gen_ai.usage.output_tokens"] == 7
    assert "burnless.cost_usd" not in a  # unknown is not 0
    assert a["burnless.key"] == "alice" and a["burnless.client"] == "cc"
    assert "burnless.refused_by" not in a and "burnless.task_id" not in a
    a = attributes(rec, Tier(name="gold", api="anthropic", model="claude-opus-4-8"))
    assert a["gen_ai.operation.name"] == "chat"
