"""Worker output formats: fixtures from the real tools' shapes, odd inputs, never raising; usage
never double counted, a reported cost taken only when it is a real one, hostile output never
raising or hanging."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnless.accounting.tokens import Tokens
from burnless.formats import FORMATS, WorkerOutput, detect_format, parse_output

FIXTURES = Path(__file__).parent.parent / "fixtures" / "formats"
ANSWER_START = "I added a `refresh()` method to `auth/session.py`."


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def jsonl(*events: dict[str, Any]) -> str:
    return "\n".join(orjson.dumps(e).decode() for e in events) + "\n"


# --- each fixture, read with format: auto ---------------------------------------------------


def test_claude_json_success() -> None:
    out = parse_output(fixture("claude_json_success.json"))
    assert out.format == "claude-json"
    assert out.text.startswith(ANSWER_START) and out.text.endswith("```")
    assert out.usage == Tokens(input=12, output=256, cache_read=10240, cache_write=2048)
    assert out.cache_write_1h == 1024
    assert out.cost_usd == 0.016932
    assert out.model == "claude-sonnet-4-6"
    assert out.is_error is False
    assert out.findings == ()


def test_claude_json_error_subtype_is_an_error_with_the_errors_as_text() -> None:
    out = parse_output(fixture("claude_json_error_max_turns.json"))
    assert out.format == "claude-json"
    assert out.is_error is True
    assert out.text == "Reached maximum number of turns (1)"
    assert out.usage == Tokens(input=20, output=180, cache_read=9000, cache_write=1500)
    assert out.cost_usd == 0.003695
    assert out.model == "claude-haiku-4-5-20251001"
    assert "claude result subtype 'error_max_turns'" in out.findings


def test_a_warning_line_before_the_json_is_tolerated_and_reported() -> None:
    out = parse_output(fixture("claude_json_with_warning.txt"))
    assert out.format == "claude-json"
    assert out.usage == Tokens(input=12, output=256, cache_read=10240, cache_write=2048)
    assert out.findings == ("1 non-JSON line(s) before the JSON output ignored",)


def test_truncated_claude_json_falls_back_to_text_keeping_everything() -> None:
    raw = fixture("claude_json_truncated.txt")
    auto = parse_output(raw)
    assert (auto.format, auto.text, auto.usage, auto.cost_usd) == ("text", raw, None, None)
    assert auto.findings[0].startswith("output starts like JSON but does not parse")
    asked = parse_output(raw, "claude-json")
    assert asked.format == "text" and asked.text == raw
    assert asked.findings == (
        "expected claude-json output, got malformed JSON (unexpected end of data: "
        f"line 1 column {len(raw) + 1} (char {len(raw)}))",
    )


def test_claude_stream_json_takes_the_result_event() -> None:
    out = parse_output(fixture("claude_stream_json.jsonl"))
    assert out.format == "claude-stream-json"
    assert out.text.startswith(ANSWER_START)
    # the result event's totals, not the sum of the per-block assistant events
    assert out.usage == Tokens(input=8, output=205, cache_read=36864, cache_write=4406)
    assert out.cost_usd == 0.0102269
    assert out.model == "claude-haiku-4-5-20251001"  # from the system/init event
    assert out.findings == ()


def test_truncated_claude_stream_counts_each_message_once() -> None:
    out = parse_output(fixture("claude_stream_json_truncated.jsonl"))
    assert out.format == "claude-stream-json"
    # msg_01A appears in two events (text block, tool_use block): counted once, with the larger
    # output_tokens of the two (9 then 120); msg_01B's line is cut short and lost.
    assert out.usage == Tokens(input=3, output=120, cache_read=16384, cache_write=4096)
    assert out.cost_usd is None
    assert out.text == "Let me look at the session module."
    assert out.model == "claude-haiku-4-5-20251001"
    assert out.findings == (
        "the last line is truncated JSON (the stream was cut short)",
        "claude stream has no result event (truncated stream)",
        "usage summed from 1 assistant message(s)",
    )


def test_codex_exec_jsonl() -> None:
    out = parse_output(fixture("codex_exec.jsonl"))
    assert out.format == "codex-jsonl"
    assert out.text.startswith(ANSWER_START)  # the last agent_message, not "Working on it."
    # input_tokens 24763 includes cached 19712: 24763 - 19712 = 5051 at the full rate.
    # output_tokens 1186 already includes the 704 reasoning tokens: not added again.
    assert out.usage == Tokens(input=5051, output=1186, cache_read=19712, cache_write=0)
    assert (out.cost_usd, out.model, out.is_error) == (None, None, False)
    assert out.findings == ()


def test_codex_failed_turn_is_an_error_and_says_why() -> None:
    out = parse_output(fixture("codex_exec_failed.jsonl"))
    assert out.format == "codex-jsonl"
    assert out.is_error is True
    assert out.usage is None
    assert "unexpected status 401 Unauthorized: invalid api key" in out.text
    assert any("codex reported an error" in f and "401" in f for f in out.findings)


def test_codex_retry_notice_followed_by_a_completed_turn_is_not_an_error() -> None:
    out = parse_output(fixture("codex_exec_retry.jsonl"))
    assert out.is_error is False
    assert out.usage == Tokens(input=5051, output=1186, cache_read=19712, cache_write=0)


def test_gemini_json_sums_models_and_maps_fields() -> None:
    out = parse_output(fixture("gemini_json.json"))
    assert out.format == "gemini-json"
    assert out.text.startswith(ANSWER_START)
    # input  = (prompt - cached) per model: (8123 - 5120) + (1234 - 0) = 4237
    # output = candidates + thoughts:        (412 + 856) + (12 + 44)   = 1324
    assert out.usage == Tokens(input=4237, output=1324, cache_read=5120, cache_write=0)
    assert out.model == "gemini-2.5-pro"
    assert out.cost_usd is None and out.is_error is False
    assert out.findings == ("usage of 2 models, priced per model: gemini-2.5-flash-lite, "
                            "gemini-2.5-pro; the answer is gemini-2.5-pro's",)
    assert out.by_model == (
        ("gemini-2.5-flash-lite", Tokens(input=1234, output=56)),
        ("gemini-2.5-pro", Tokens(input=3003, output=1268, cache_read=5120)),
    )


def test_gemini_error_object() -> None:
    out = parse_output(fixture("gemini_json_error.json"))
    assert out.format == "gemini-json"
    assert out.is_error is True
    assert out.text == "Could not load the default credentials."
    assert out.usage is None
    assert out.findings[0] == (
        "gemini reported an error: FatalAuthenticationError: "
        "Could not load the default credentials."
    )


def test_plain_text_is_the_whole_answer_without_usage() -> None:
    raw = fixture("ollama.txt")
    out = parse_output(raw)
    assert out == WorkerOutput(raw, "text", None, None, None, False)


def test_binary_garbage_is_text() -> None:
    raw = (FIXTURES / "garbage.bin").read_bytes()
    out = parse_output(raw)
    assert out.format == "text"
    assert out.text == raw.decode("utf-8", errors="replace")
    assert out.usage is None


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("claude_json_success.json", "claude-json"),
        ("claude_json_error_max_turns.json", "claude-json"),
        ("claude_json_with_warning.txt", "claude-json"),
        ("claude_json_truncated.txt", "text"),
        ("claude_stream_json.jsonl", "claude-stream-json"),
        ("claude_stream_json_truncated.jsonl", "claude-stream-json"),
        ("codex_exec.jsonl", "codex-jsonl"),
        ("codex_exec_failed.jsonl", "codex-jsonl"),
        ("gemini_json.json", "gemini-json"),
        ("gemini_json_error.json", "gemini-json"),
        ("ollama.txt", "text"),
    ],
)
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(fixture(name)) == fmt
    assert parse_output(fixture(name), fmt).format == fmt  # asking for it changes nothing


# --- explicit formats that do not match --------------------------------------------------------


def test_claude_json_requested_on_plain_text() -> None:
    out = parse_output("Sure, here you go.", "claude-json")
    assert (out.format, out.text, out.usage) == ("text", "Sure, here you go.", None)
    assert out.findings == ("expected claude-json output, got plain text",)


def test_claude_json_requested_on_a_stream_reads_the_stream() -> None:
    out = parse_output(fixture("claude_stream_json.jsonl"), "claude-json")
    assert out.format == "claude-stream-json"
    assert out.usage == Tokens(input=8, output=205, cache_read=36864, cache_write=4406)
    assert out.findings == ("expected claude-json output, got claude-stream-json output",)


def test_text_requested_keeps_json_as_the_answer() -> None:
    raw = fixture("claude_json_success.json")
    out = parse_output(raw, "text")
    assert (out.format, out.text, out.usage) == ("text", raw, None)


def test_unknown_format_name_is_reported_not_raised() -> None:
    out = parse_output(fixture("codex_exec.jsonl"), "codex")
    assert out.format == "codex-jsonl"
    assert out.findings[0] == "unknown format 'codex'; read as codex-jsonl"


def test_empty_output() -> None:
    for fmt in ("auto", *FORMATS):
        out = parse_output("", fmt)
        assert out.format == "text" and out.text == "" and out.usage is None
        assert "empty output" in out.findings


def test_bare_envelope_json_is_text_not_a_worker_format() -> None:
    raw = '{"status": "ok", "kind": "thought", "summary": "nothing to do"}'
    assert parse_output(raw) == WorkerOutput(raw, "text", None, None, None, False)


# --- details of each format --------------------------------------------------------------------


def test_claude_model_usage_covering_side_models_wins_over_usage() -> None:
    result = orjson.loads(fixture("claude_json_success.json"))
    result["modelUsage"]["claude-haiku-4-5-20251001"] = {
        "inputTokens": 300,
        "outputTokens": 20,
        "cacheReadInputTokens": 0,
        "cacheCreationInputTokens": 0,
        "costUSD": 0.0004,
    }
    out = parse_output(orjson.dumps(result).decode())
    # 12 + 300 input, 256 + 20 output; the model is the one that cost the most
    assert out.usage == Tokens(input=312, output=276, cache_read=10240, cache_write=2048)
    assert out.model == "claude-sonnet-4-6"
    assert "usage summed from modelUsage, which covers more models than 'usage'" in out.findings


def test_claude_stream_counts_subagent_usage_but_not_its_text() -> None:
    def assistant(mid: str, text: str, out_tokens: int, parent: str | None) -> dict[str, Any]:
        usage = {"input_tokens": 10, "output_tokens": out_tokens, "cache_read_input_tokens": 0}
        message = {"id": mid, "content": [{"type": "text", "text": text}], "usage": usage}
        return {"type": "assistant", "message": message, "parent_tool_use_id": parent}

    raw = jsonl(
        {"type": "system", "subtype": "init", "model": "claude-opus-4-8"},
        assistant("m1", "main answer", 5, None),
        assistant("m2", "sub-agent chatter", 7, "toolu_9"),
    )
    out = parse_output(raw)
    assert out.text == "main answer"
    assert out.usage == Tokens(input=20, output=12)
    assert out.model == "claude-opus-4-8"


def test_claude_stream_1h_cache_writes_are_counted_once_per_message() -> None:
    usage = {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_input_tokens": 500,
        "cache_creation": {"ephemeral_1h_input_tokens": 300, "ephemeral_5m_input_tokens": 200},
    }
    event = {"type": "assistant", "message": {"id": "m1", "content": [], "usage": usage}}
    out = parse_output(jsonl(event, event))
    assert out.usage == Tokens(input=1, output=2, cache_write=500)
    assert out.cache_write_1h == 300


def test_codex_several_turns_take_the_running_total_not_the_sum() -> None:
    def done(i: int, c: int, o: int) -> dict[str, Any]:
        return {
            "type": "turn.completed",
            "usage": {"input_tokens": i, "cached_input_tokens": c, "output_tokens": o},
        }

    raw = jsonl({"type": "thread.started", "thread_id": "t"}, done(100, 0, 10), done(250, 90, 30))
    out = parse_output(raw)
    assert out.usage == Tokens(input=160, output=30, cache_read=90)
    assert out.findings[0].startswith("2 turn.completed events: usage taken from the last")


def test_codex_more_cached_than_input_is_clamped_and_reported() -> None:
    raw = jsonl(
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 5, "cached_input_tokens": 9, "output_tokens": 1},
        },
    )
    out = parse_output(raw)
    assert out.usage == Tokens(input=0, output=1, cache_read=5)
    assert "codex reports more cached (9) than input (5) tokens" in out.findings


def test_codex_with_a_warning_line_and_a_malformed_line() -> None:
    raw = (
        "WARNING: proceeding, even though we could not update PATH\n"
        + jsonl(
            {"type": "thread.started", "thread_id": "t"},
            {
                "type": "item.completed",
                "item": {"id": "i", "type": "agent_message", "text": "done"},
            },
        )
        + '{"type": "turn.completed", "usage": \n'
        + jsonl(
            {
                "type": "turn.completed",
                "usage": {"input_tokens": 1, "cached_input_tokens": 0, "output_tokens": 2},
            }
        )
    )
    out = parse_output(raw)
    assert out.format == "codex-jsonl"
    assert out.text == "done"
    assert out.usage == Tokens(input=1, output=2)
    assert out.findings == ("1 malformed JSON line(s) skipped", "1 non-JSON line(s) ignored")


def test_gemini_tool_prompt_tokens_are_input() -> None:
    stats = {
        "models": {
            "gemini-2.5-flash": {
                "tokens": {"prompt": 100, "candidates": 5, "cached": 40, "thoughts": 3, "tool": 7}
            }
        }
    }
    out = parse_output(orjson.dumps({"response": "ok", "stats": stats}).decode())
    # input = 100 - 40 + 7 = 67; output = 5 + 3 = 8
    assert out.usage == Tokens(input=67, output=8, cache_read=40)
    assert out.findings == ()


def test_odd_numbers_in_usage_are_not_trusted() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "x",
        "usage": {
            "input_tokens": -5,
            "output_tokens": "12",
            "cache_read_input_tokens": True,
            "cache_creation_input_tokens": 3.0,
        },
        "total_cost_usd": -1,
    }
    out = parse_output(orjson.dumps(result).decode())
    assert out.usage == Tokens(input=0, output=0, cache_read=0, cache_write=3)
    assert out.cost_usd is None


# --- never raises ------------------------------------------------------------------------------

FORMAT_CHOICES = ("auto", *FORMATS, "bogus")
EVENT_TYPES = [
    "result",
    "system",
    "assistant",
    "user",
    "thread.started",
    "turn.completed",
    "turn.failed",
    "item.completed",
    "error",
    None,
]
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "result",
                    "usage",
                    "input_tokens",
                    "message",
                    "item",
                    "stats",
                    "models",
                    "tokens",
                    "response",
                    "error",
                    "subtype",
                    "modelUsage",
                    "content",
                    "text",
                    "is_error",
                    "total_cost_usd",
                    "x",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=20,
)
event = st.builds(
    lambda t, body: {**body, "type": t} if t is not None and isinstance(body, dict) else body,
    st.sampled_from(EVENT_TYPES),
    json_value,
)


def check(out: WorkerOutput) -> None:
    assert isinstance(out, WorkerOutput)
    assert out.format in FORMATS
    assert isinstance(out.text, str)
    assert all(isinstance(f, str) for f in out.findings)
    if out.usage is not None:
        assert min(out.usage.to_dict().values()) >= 0
    assert out.cost_usd is None or out.cost_usd >= 0
    assert 0 <= out.cache_write_1h


@settings(max_examples=150, deadline=None)
@given(raw=st.text() | st.binary(), fmt=st.sampled_from(FORMAT_CHOICES))
def test_never_raises_on_arbitrary_text(raw: str | bytes, fmt: str) -> None:
    check(parse_output(raw, fmt))
    assert detect_format(raw if isinstance(raw, str) else raw.decode("utf-8", "replace")) in FORMATS


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(event, max_size=6),
    noise=st.lists(st.text(max_size=15), max_size=2),
    fmt=st.sampled_from(FORMAT_CHOICES),
)
def test_never_raises_on_json_shaped_nonsense(
    events: list[Any], noise: list[str], fmt: str
) -> None:
    lines = [orjson.dumps(e, option=orjson.OPT_NON_STR_KEYS).decode() for e in events]
    check(parse_output("\n".join([*noise, *lines]), fmt))
    if events:
        check(parse_output(lines[0], fmt))


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.iterdir() if p.suffix != ".md")),
    cut=st.integers(min_value=0, max_value=4000),
    junk=st.text(max_size=5),
    fmt=st.sampled_from(FORMAT_CHOICES),
)
def test_never_raises_on_cut_and_spliced_fixtures(name: str, cut: int, junk: str, fmt: str) -> None:
    raw = (FIXTURES / name).read_bytes().decode("utf-8", "replace")
    cut = min(cut, len(raw))
    check(parse_output(raw[:cut], fmt))
    check(parse_output(raw[:cut] + junk + raw[cut:], fmt))


# --- a few MB stays fast -----------------------------------------------------------------------


def test_large_outputs_parse_fast() -> None:
    command = {
        "type": "item.completed",
        "item": {
            "id": "i",
            "type": "command_execution",
            "command": "bash -lc 'pytest -q'",
            "aggregated_output": "." * 400,
            "exit_code": 0,
            "status": "completed",
        },
    }
    line = orjson.dumps(command).decode()
    codex = (
        "\n".join([line] * (4_000_000 // len(line)))
        + "\n"
        + jsonl(
            {"type": "item.completed", "item": {"id": "z", "type": "agent_message", "text": "end"}},
            {
                "type": "turn.completed",
                "usage": {"input_tokens": 9, "cached_input_tokens": 0, "output_tokens": 1},
            },
        )
    )
    text = ("All good, the refactor is done.\n" * 130_000)[:4_000_000]
    big_result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "y" * 4_000_000,
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    claude = orjson.dumps(big_result).decode()
    for raw, fmt in ((codex, "codex-jsonl"), (text, "text"), (claude, "claude-json")):
        # CPU time, not wall time: other tests running in parallel must not fail this one.
        start = time.process_time()
        out = parse_output(raw)
        elapsed = time.process_time() - start
        assert out.format == fmt
        assert elapsed < 2.0, f"{fmt}: {len(raw) / 1e6:.1f} MB took {elapsed:.2f} s of CPU"
    assert parse_output(codex).text == "end"


def test_lone_surrogates_are_replaced_so_the_json_still_parses() -> None:
    raw = '{"type":"result","subtype":"success","is_error":false,"result":"caf\udce9"}'
    out = parse_output(raw)
    assert out.format == "claude-json"
    assert out.text == "caf\ufffd\ufffd\ufffd"


# Real output of Claude Code 2.1.197, captured offline against `burnless sim serve`
# (`claude -p --output-format json|stream-json --verbose --model claude-haiku-4-5
# --allowedTools Write`, one Write tool call and the final answer: two model turns).
REAL = Path(__file__).parent.parent / "fixtures" / "formats"


def test_real_claude_code_json_output() -> None:
    out = parse_output((REAL / "claude_json_real_2.1.197.json").read_text())
    assert out.format == "claude-json" and not out.is_error and out.findings == ()
    assert out.usage == Tokens(input=0, output=178, cache_read=28601, cache_write=28696)
    assert out.cost_usd == 0.0396201 and out.model == "claude-haiku-4-5"
    assert '"path":"notes/a.txt"' in out.text


def test_real_claude_code_stream_json_output() -> None:
    out = parse_output((REAL / "claude_stream_json_real_2.1.197.jsonl").read_text())
    assert out.format == "claude-stream-json" and not out.is_error and out.findings == ()
    assert out.usage == Tokens(input=0, output=153, cache_read=55519, cache_write=1778)
    assert out.cost_usd == 0.0085394 and out.model == "claude-haiku-4-5"
    assert '"path":"notes/b.txt"' in out.text


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


def test_codex_more_cached_than_input_is_clamped_and_reported_once() -> None:
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
