"""Codex and Gemini CLI outputs captured from the real clients (Codex 0.171.0, Gemini CLI
0.61.0, against ``burnless sim serve``): what each says about usage, errors and billing, and
what a call then costs (``cost_of_call``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnless.accounting.pricing import cost_of_call, cost_usd, price_for
from burnless.accounting.tokens import Tokens
from burnless.formats import parse_output
from burnless.settings import PriceSettings, Tier

FIXTURES = Path(__file__).parent.parent / "fixtures" / "formats"
SENT = "a burnless prompt " * 200  # what an estimate would be made from


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def tier(model: str | None, price: dict[str, float] | None = None) -> Tier:
    return Tier(name="t", command="worker", model=model,
                price=PriceSettings(**price) if price else None)


# --- Codex ---------------------------------------------------------------------------------


def test_codex_cache_writes_are_read_and_priced_at_the_cache_write_rate() -> None:
    out = parse_output(fixture("codex_0.171_cache_write.jsonl"))
    # turn.completed: input 19728 (reads and writes included), cached 9728, cache-write 9929
    assert out.usage == Tokens(input=19728 - 9728 - 9929, output=294, cache_read=9728,
                               cache_write=9929)
    assert out.is_error is False and out.error == ""
    rates = {"input": 2.0, "output": 16.0, "cache_write": 2.5, "cache_read": 0.2}
    tokens, usd, source = cost_of_call(tier("gpt-5.6-codex", rates), out, SENT)
    assert source == "priced" and tokens == out.usage
    # 71 x 2 + 294 x 16 + 9929 x 2.5 + 9728 x 0.2 = 142 + 4704 + 24822.5 + 1945.6
    assert usd == pytest.approx(31614.1 / 1e6)


def test_codex_more_cache_writes_than_uncached_input_are_clamped_and_reported() -> None:
    line = ('{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":60,'
            '"cache_write_input_tokens":50,"output_tokens":3}}\n')
    out = parse_output(line)
    assert out.usage == Tokens(input=0, output=3, cache_read=60, cache_write=40)
    assert "codex reports more cache-write (50) than uncached input (40) tokens" in out.findings


def test_codex_wrong_key_is_not_billed_and_says_why() -> None:
    out = parse_output(fixture("codex_0.171_wrong_key.jsonl"))
    assert out.is_error is True and out.usage is None and out.no_usage == "unbilled"
    assert out.error.startswith("unexpected status 401 Unauthorized: Incorrect API key")
    assert cost_of_call(tier("gpt-5-codex"), out, SENT) == (Tokens(), 0.0, "reported")


def test_codex_missing_key_is_not_billed_and_names_the_variable() -> None:
    out = parse_output(fixture("codex_0.171_missing_key.jsonl"))
    assert out.no_usage == "unbilled"
    assert out.error == "Missing environment variable: `SIM_KEY`."
    assert cost_of_call(tier("gpt-5-codex"), out, SENT) == (Tokens(), 0.0, "reported")


def test_codex_failure_without_usage_is_unknown_not_estimated() -> None:
    # a stream disconnect first: that attempt may have been billed
    out = parse_output(fixture("codex_exec_failed.jsonl"))
    assert out.usage is None and out.no_usage == "unknown"
    assert out.error == "unexpected status 401 Unauthorized: invalid api key"
    assert cost_of_call(tier("gpt-5-codex"), out, SENT) == (Tokens(), None, "unknown")


def test_codex_auth_error_after_the_model_answered_is_unknown() -> None:
    events = fixture("codex_0.171_wrong_key.jsonl").splitlines()
    started = events.index('{"type":"turn.started"}')
    events.insert(started + 1, '{"type":"item.completed","item":{"id":"item_1",'
                               '"type":"command_execution","command":"ls","exit_code":0}}')
    out = parse_output("\n".join(events))
    assert out.no_usage == "unknown"


def test_codex_stream_cut_short_is_unknown() -> None:
    lines = fixture("codex_0.171_cache_write.jsonl").splitlines()[:-1]  # no turn.completed
    out = parse_output("\n".join(lines))
    assert out.usage is None and out.is_error is False and out.no_usage == "unknown"
    assert cost_of_call(tier("gpt-5-codex"), out, SENT) == (Tokens(), None, "unknown")


# --- Gemini CLI ----------------------------------------------------------------------------


def test_gemini_write_turn_usage() -> None:
    out = parse_output(fixture("gemini_0.61_write.json"))
    assert out.format == "gemini-json" and out.model == "gemini-2.5-flash"
    # prompt 23323 with 11612 cached; candidates 177 + thoughts 57
    assert out.usage == Tokens(input=23323 - 11612, output=177 + 57, cache_read=11612)
    assert out.by_model == ()  # one model: priced as before


def test_gemini_wrong_key_on_stderr_is_not_billed() -> None:
    out = parse_output("", stderr=fixture("gemini_0.61_wrong_key.stderr"))
    assert out.format == "gemini-json" and out.is_error is True
    assert out.error == "400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key."
    assert out.text == out.error  # the answer text a capsule shows: readable, not JSON
    assert out.no_usage == "unbilled"
    assert out.findings[0] == "no output on stdout; the error was read from stderr"
    assert cost_of_call(tier("gemini-2.5-flash"), out, SENT) == (Tokens(), 0.0, "reported")


def test_gemini_missing_key_on_stderr_is_not_billed() -> None:
    out = parse_output("", "gemini-json", stderr=fixture("gemini_0.61_missing_key.stderr"))
    assert out.no_usage == "unbilled"
    assert out.error.startswith("When using Gemini API, you must specify the GEMINI_API_KEY")


def test_gemini_untrusted_folder_is_not_billed() -> None:
    out = parse_output("", stderr=fixture("gemini_0.61_untrusted.stderr"))
    assert out.is_error is True and out.no_usage == "unbilled"
    assert out.error.startswith("FatalUntrustedWorkspaceError: Gemini CLI is not running in a "
                                "trusted directory.")
    assert cost_of_call(tier("gemini-2.5-flash"), out, SENT) == (Tokens(), 0.0, "reported")


def test_gemini_other_error_on_stderr_is_unknown() -> None:
    stderr = fixture("gemini_0.61_wrong_key.stderr").replace(
        'API key not valid. Please pass a valid API key.\\",\\"status\\":\\"INVALID_ARGUMENT',
        'Internal error encountered.\\",\\"status\\":\\"INTERNAL').replace(
        '\\"code\\":400', '\\"code\\":500').replace('"code": 400', '"code": 500')
    out = parse_output("", stderr=stderr)
    assert out.error == "500 INTERNAL: Internal error encountered."
    assert out.no_usage == "unknown"
    assert cost_of_call(tier("gemini-2.5-flash"), out, SENT) == (Tokens(), None, "unknown")


def test_gemini_stderr_is_not_read_when_stdout_has_output_or_the_format_is_another() -> None:
    stderr = fixture("gemini_0.61_wrong_key.stderr")
    assert parse_output("plain answer", stderr=stderr).text == "plain answer"
    assert parse_output("", "codex-jsonl", stderr=stderr).format == "text"
    assert parse_output("", stderr="Warning: something\n{not json").format == "text"


def test_gemini_routed_call_is_priced_per_model_and_attributed_to_the_main_model() -> None:
    out = parse_output(fixture("gemini_0.61_routed.json"))
    assert out.model == "gemini-3.1-pro-preview"  # the "main" role, not the busiest router
    assert [m for m, _ in out.by_model] == ["gemini-3.5-flash-lite", "gemini-3.1-pro-preview"]
    # the router's model is not in the price table: the call's cost is unknown, not a guess
    assert price_for("gemini-3.5-flash-lite") is None
    tokens, usd, source = cost_of_call(tier(None), out, SENT)
    assert (usd, source) == (None, "unknown") and tokens == out.usage


def test_gemini_two_models_each_at_its_own_rate() -> None:
    out = parse_output(fixture("gemini_json.json"))
    tokens, usd, source = cost_of_call(tier(None), out, SENT)
    flash_lite, pro = (dict(out.by_model)[m] for m in ("gemini-2.5-flash-lite", "gemini-2.5-pro"))
    expected = cost_usd(flash_lite, price_for("gemini-2.5-flash-lite")) + cost_usd(  # type: ignore[arg-type]
        pro, price_for("gemini-2.5-pro"))  # type: ignore[arg-type]
    assert source == "priced" and usd == pytest.approx(expected)
    # 1234 x 0.10 + 56 x 0.40 at flash-lite's rates, not pro's 1.25 / 10
    assert cost_usd(flash_lite, price_for("gemini-2.5-flash-lite")) == pytest.approx(  # type: ignore[arg-type]
        (1234 * 0.10 + 56 * 0.40) / 1e6)
    assert usd < cost_usd(tokens, price_for("gemini-2.5-pro"))  # type: ignore[arg-type]


def test_a_tier_price_applies_to_its_own_model_only() -> None:
    out = parse_output(fixture("gemini_json.json"))
    pinned = tier("gemini-2.5-pro", {"input": 0, "output": 0, "cache_read": 0})
    _, usd, _ = cost_of_call(pinned, out, SENT)
    flash_lite = dict(out.by_model)["gemini-2.5-flash-lite"]
    assert usd == pytest.approx(cost_usd(flash_lite, price_for("gemini-2.5-flash-lite")))  # type: ignore[arg-type]
    unpinned = tier(None, {"input": 0, "output": 0, "cache_read": 0})
    assert cost_of_call(unpinned, out, SENT)[1] == 0.0


# --- Claude Code keeps its behaviour ---------------------------------------------------------


def test_claude_outputs_keep_reported_and_estimated_costs() -> None:
    out = parse_output(fixture("claude_json_error_max_turns.json"))
    assert out.no_usage == "estimate" and out.by_model == ()
    assert cost_of_call(tier("claude-haiku-4-5"), out, SENT)[1:] == (0.003695, "reported")
    cut = parse_output('{"type":"system","subtype":"init","model":"claude-haiku-4-5"}\n')
    assert cut.usage is None and cut.no_usage == "estimate"
    tokens, usd, source = cost_of_call(tier("claude-haiku-4-5"), cut, SENT)
    assert source == "estimated" and usd is not None and tokens.input > 0
