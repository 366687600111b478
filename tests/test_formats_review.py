"""Adversarial review of worker-output parsing and pricing: usage never double counted, a
reported cost taken only when it is a real one, hostile output never raising or hanging."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
import pytest

from burnless.accounting.pricing import canonical_model, cost_usd, price_for
from burnless.accounting.tokens import Tokens
from burnless.envelope import extract
from burnless.formats import parse_output

USAGE = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 20,
}


def result(**fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "done",
        "usage": dict(USAGE),
    }
    obj.update(fields)
    return obj


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def jsonl(*events: dict[str, Any]) -> str:
    return "\n".join(dumps(e) for e in events) + "\n"


def model_entry(i: int, o: int, cr: int, cw: int, cost: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "inputTokens": i,
        "outputTokens": o,
        "cacheReadInputTokens": cr,
        "cacheCreationInputTokens": cw,
    }
    if cost is not None:
        entry["costUSD"] = cost
    return entry


# --- usage normalisation ---------------------------------------------------------------------


def test_claude_usage_is_taken_as_is_no_overlap() -> None:
    out = parse_output(dumps(result(total_cost_usd=0.01)))
    assert out.usage == Tokens(input=10, output=5, cache_read=100, cache_write=20)


def test_codex_cached_tokens_are_subtracted_from_input() -> None:
    usage = {"input_tokens": 1000, "cached_input_tokens": 800, "output_tokens": 50}
    out = parse_output(jsonl({"type": "turn.completed", "usage": usage}))
    assert out.usage == Tokens(input=200, output=50, cache_read=800, cache_write=0)


def test_codex_more_cached_than_input_is_clamped_and_reported() -> None:
    usage = {"input_tokens": 100, "cached_input_tokens": 500, "output_tokens": 1}
    out = parse_output(jsonl({"type": "turn.completed", "usage": usage}))
    assert out.usage == Tokens(input=0, output=1, cache_read=100)
    assert any("more cached" in f for f in out.findings)


def test_codex_running_total_is_not_summed() -> None:
    first = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 10}
    last = {"input_tokens": 300, "cached_input_tokens": 100, "output_tokens": 30}
    out = parse_output(
        jsonl({"type": "turn.completed", "usage": first}, {"type": "turn.completed", "usage": last})
    )
    assert out.usage == Tokens(input=200, output=30, cache_read=100)


def test_gemini_cached_inside_prompt_and_thoughts_as_output() -> None:
    stats = {
        "models": {
            "gemini-2.5-pro": {
                "tokens": {
                    "prompt": 1000,
                    "cached": 600,
                    "candidates": 40,
                    "thoughts": 60,
                    "tool": 5,
                }
            }
        }
    }
    out = parse_output(dumps({"response": "hi", "stats": stats}))
    assert out.usage == Tokens(input=405, output=100, cache_read=600, cache_write=0)
    assert out.model == "gemini-2.5-pro"


def test_claude_model_usage_with_a_haiku_side_model_is_summed() -> None:
    obj = result(
        total_cost_usd=0.0123,
        modelUsage={
            "claude-sonnet-4-6": model_entry(10, 5, 100, 20, 0.012),
            "claude-haiku-4-5": model_entry(50, 10, 0, 0, 0.0003),
        },
    )
    out = parse_output(dumps(obj))
    assert out.usage == Tokens(input=60, output=15, cache_read=100, cache_write=20)
    assert out.cost_usd == 0.0123
    assert out.model == "claude-sonnet-4-6"


def test_claude_model_usage_costs_are_summed_when_no_total_is_reported() -> None:
    # BUG fixed: without total_cost_usd, haiku's tokens were priced as sonnet's
    obj = result(
        modelUsage={
            "claude-sonnet-4-6": model_entry(10, 5, 100, 20, 0.012),
            "claude-haiku-4-5": model_entry(50, 10, 0, 0, 0.0003),
        },
    )
    out = parse_output(dumps(obj))
    assert out.cost_usd == pytest.approx(0.0123)


def test_claude_model_usage_without_every_cost_is_not_summed() -> None:
    obj = result(
        modelUsage={
            "claude-sonnet-4-6": model_entry(10, 5, 100, 20, 0.012),
            "claude-haiku-4-5": model_entry(50, 10, 0, 0, None),
        },
    )
    assert parse_output(dumps(obj)).cost_usd is None


def test_stream_json_takes_the_last_result_not_the_sum() -> None:
    # Claude Code's result totals are cumulative for the process: summing would double count
    first = result(total_cost_usd=0.01, usage=dict(USAGE))
    last = result(
        total_cost_usd=0.03,
        usage={
            "input_tokens": 30,
            "output_tokens": 15,
            "cache_read_input_tokens": 300,
            "cache_creation_input_tokens": 60,
        },
    )
    out = parse_output(jsonl({"type": "system", "subtype": "init", "model": "m"}, first, last))
    assert out.cost_usd == 0.03
    assert out.usage == Tokens(input=30, output=15, cache_read=300, cache_write=60)


def assistant(mid: str, usage: dict[str, Any], text: str = "x", parent: str | None = None) -> Any:
    return {
        "type": "assistant",
        "parent_tool_use_id": parent,
        "message": {
            "id": mid,
            "model": "claude-haiku-4-5",
            "usage": usage,
            "content": [{"type": "text", "text": text}],
        },
    }


def test_stream_repeated_message_ids_count_once_and_sub_agents_count() -> None:
    events = [
        {"type": "system", "subtype": "init", "model": "claude-haiku-4-5"},
        assistant("m1", {"input_tokens": 10, "output_tokens": 1}),
        assistant("m1", {"input_tokens": 10, "output_tokens": 7}),
        assistant("m2", {"input_tokens": 3, "output_tokens": 2}, parent="toolu_1"),
    ]
    out = parse_output(jsonl(*events))
    assert out.usage == Tokens(input=13, output=9)
    assert out.cost_usd is None


def test_stream_result_without_usage_falls_back_to_the_messages() -> None:
    # BUG fixed: a result with usage null gave no usage at all (then estimated from bytes)
    events = [
        assistant("m1", {"input_tokens": 10, "output_tokens": 7}),
        result(usage=None),
    ]
    out = parse_output(jsonl(*events))
    assert out.usage == Tokens(input=10, output=7)


# --- reported cost ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, "0.5", None, True, [], {}])
def test_a_bad_reported_cost_is_not_taken(bad: Any) -> None:
    out = parse_output(dumps(result(total_cost_usd=bad)))
    assert out.cost_usd is None
    assert out.usage == Tokens(input=10, output=5, cache_read=100, cache_write=20)


def test_a_reported_cost_of_zero_with_usage_is_not_a_cost() -> None:
    # BUG fixed: Claude Code reports 0 for a model it cannot price; that is unknown, not free
    out = parse_output(dumps(result(total_cost_usd=0)))
    assert out.cost_usd is None
    assert any("cost of 0" in f for f in out.findings)


def test_a_reported_cost_of_zero_with_no_tokens_stays_zero() -> None:
    zero = dict.fromkeys(USAGE, 0)
    assert parse_output(dumps(result(total_cost_usd=0, usage=zero))).cost_usd == 0.0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400", "-1e400"])
def test_non_finite_cost_keeps_the_usage(literal: str) -> None:
    # BUG fixed: a NaN/1e400 in the object made orjson refuse it: usage and format were lost
    raw = dumps(result()).replace('"result":"done"', f'"result":"done","total_cost_usd":{literal}')
    out = parse_output(raw)
    assert out.format == "claude-json"
    assert out.cost_usd is None
    assert out.usage == Tokens(input=10, output=5, cache_read=100, cache_write=20)


@pytest.mark.parametrize("usage", [{}, {"input_tokens": "12"}, None, [], "x"])
def test_an_empty_or_garbage_usage_is_no_usage_not_zero(usage: Any) -> None:
    # BUG fixed: usage {} read as zero tokens, then priced at $0 instead of estimated
    out = parse_output(dumps(result(usage=usage)))
    assert out.usage is None


def test_codex_empty_usage_is_no_usage() -> None:
    out = parse_output(jsonl({"type": "turn.completed", "usage": {}}))
    assert out.usage is None


def test_gemini_garbage_tokens_are_no_usage() -> None:
    stats = {"models": {"gemini-2.5-pro": {"tokens": {"prompt": None}}}}
    assert parse_output(dumps({"response": "hi", "stats": stats})).usage is None


# --- hostile output ---------------------------------------------------------------------------


def test_bom_crlf_and_ansi_around_the_json() -> None:
    body = dumps(result(total_cost_usd=0.01))
    for raw in (
        "\ufeff" + body + "\r\n",
        "warning: x\r\n" + body + "\r\n",
        "\x1b[33mwarning\x1b[0m\n" + body,
        "\x1b[0m" + body + "\x1b[0m\n",  # BUG fixed: colour codes around the object
        "\x1b]0;title\x07" + body,
    ):
        out = parse_output(raw)
        assert out.format == "claude-json", repr(raw[:20])
        assert out.cost_usd == 0.01


def test_crlf_jsonl_stream() -> None:
    raw = jsonl(
        assistant("m1", {"input_tokens": 4, "output_tokens": 2}), result(total_cost_usd=0.5)
    )
    out = parse_output(raw.replace("\n", "\r\n"))
    assert out.format == "claude-stream-json"
    assert out.cost_usd == 0.5


def test_partial_json_lines_do_not_raise() -> None:
    raw = jsonl(assistant("m1", {"input_tokens": 4, "output_tokens": 2})) + '{"type": "resu'
    out = parse_output(raw)
    assert out.usage == Tokens(input=4, output=2)
    assert any("truncated" in f for f in out.findings)


@pytest.mark.parametrize(
    "raw",
    [
        "null",
        "[]",
        '{"type": "result", "subtype": null, "usage": null, "modelUsage": null, "result": null}',
        '{"type": "result", "is_error": true, "modelUsage": {"m": null}}',
        '{"response": null, "stats": {"models": {"g": null}}}',
        '{"response": "x", "stats": {"models": [1, 2]}}',
        '{"type": "turn.completed", "usage": null}',
        '{"type": "item.completed", "item": null}',
        '{"type": "assistant", "message": null}',
        '{"type": "assistant", "message": {"content": null, "usage": null}}',
        "[" * 200_000,
        '{"a":' * 200_000 + "1" + "}" * 200_000,
        "warn\n" + '{"a":' * 200_000 + "1" + "}" * 200_000,
        "\x00\x01\x02{\xff}",
    ],
)
def test_odd_shapes_never_raise(raw: str) -> None:
    out = parse_output(raw)
    assert isinstance(out.text, str)


def test_surrogates_and_invalid_utf8_bytes() -> None:
    assert parse_output(b"\xff\xfe\n" + dumps(result()).encode()).usage is not None
    assert parse_output("\udcff" + dumps(result())).format in ("claude-json", "text")


def test_large_binary_output_is_linear() -> None:
    # BUG fixed: 16 candidate spans were each re-joined and re-parsed (50 MB: ~15 s).
    # The bounds in this file are CPU time: a parallel or busy run must not fail them.
    raw = os.urandom(8_000_000)
    start = time.process_time()
    out = parse_output(raw)
    assert out.format == "text"
    assert time.process_time() - start < 2.5


def test_large_output_of_brace_lines_is_linear() -> None:
    raw = ("{" + "x" * 60 + "}\n") * 100_000  # 6 MB, every line a candidate
    start = time.process_time()
    assert parse_output(raw).format == "text"
    assert time.process_time() - start < 2.5


def test_large_answer_with_the_result_after_noise() -> None:
    noise = "progress line\n" * 200_000
    out = parse_output(noise + dumps(result(total_cost_usd=0.2)) + "\nbye\n")
    assert out.format == "claude-json"
    assert out.cost_usd == 0.2
    assert "200000 non-JSON line(s) before the JSON output ignored" in out.findings
    assert "1 non-JSON line(s) after the JSON output ignored" in out.findings


# --- envelope extraction (burnless/envelope.py) -----------------------------------------------


ENV_OK = '{"status": "ok", "kind": "thought", "summary": "first"}'
ENV_FAILED = '{"status": "failed", "kind": "thought", "summary": "second"}'


def test_envelope_in_a_fence_followed_by_prose() -> None:
    ex = extract(f"Done.\n```json\n{ENV_OK}\n```\nThanks!")
    assert ex.envelope is not None and ex.envelope.status == "ok"
    assert ex.prose == "Done.\n\nThanks!"


def test_two_envelopes_the_last_counts() -> None:
    ex = extract(f"{ENV_OK}\nthen I changed my mind\n{ENV_FAILED}")
    assert ex.envelope is not None and ex.envelope.summary == "second"


def test_envelope_extraction_on_hostile_text_is_fast() -> None:
    for text in (
        "{" * 2_000_000,
        '{"status":' * 300_000,
        "```json\n{\n" * 200_000,
        os.urandom(4_000_000).decode("utf-8", "replace"),
    ):
        start = time.process_time()
        ex = extract(text)
        assert ex.envelope is None
        assert time.process_time() - start < 1.0


# --- pricing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("CLAUDE-SONNET-4-5", "claude-sonnet-4-5"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("openai/gpt-5", "gpt-5"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        # not resolved on purpose: no guess
        ("claude-sonnet-4-5-latest", None),
        ("sonnet", None),
        ("opus-4", None),
        ("claude-sonnet-4-5[1m]", None),  # 1M-context tier bills higher
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", None),  # Bedrock regional premium
        ("", None),
        (None, None),
    ],
)
def test_alias_resolution(given: str | None, expected: str | None) -> None:
    assert canonical_model(given) == expected


def test_unknown_model_has_no_price_never_zero() -> None:
    assert price_for("mystery-model-9") is None
    assert price_for("mystery-model-9", {"input": 1.0}) is None


def test_one_hour_cache_writes_cost_twice_input() -> None:
    price = price_for("claude-sonnet-4-5")
    assert price is not None
    tokens = Tokens(cache_write=2_000_000)
    assert cost_usd(tokens, price, cache_write_1h=1_000_000) == pytest.approx(3.75 + 6.0)
    assert cost_usd(tokens, price, cache_write_1h=-5) == pytest.approx(7.5)


@pytest.mark.parametrize(
    ("model", "rates"),
    [  # per REAL-CLIENTS.md (Claude Code's own table): input, output, cache write, cache read
        ("claude-haiku-4-5", (1.0, 5.0, 1.25, 0.10)),
        ("claude-sonnet-4-5", (3.0, 15.0, 3.75, 0.30)),
        ("claude-opus-4-8", (5.0, 25.0, 6.25, 0.50)),
    ],
)
def test_prices_match_the_observed_client_table(
    model: str, rates: tuple[float, float, float, float]
) -> None:
    price = price_for(model)
    assert price is not None
    assert (price.input, price.output, price.cache_write, price.cache_read) == rates
    assert price.cache_write_1h == 2 * price.input
