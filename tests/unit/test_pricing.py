"""The price table: alias resolution (and what is not resolved on purpose), overrides, and costs
computed by hand; an unknown model has no price, never a zero one."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pytest

from burnless.accounting import pricing
from burnless.accounting.pricing import Price, canonical_model, cost_usd, price_for
from burnless.accounting.tokens import Tokens
from burnless.formats import parse_output

TABLE = orjson.loads((Path(pricing.__file__).parents[1] / "data" / "prices.json").read_bytes())
FIXTURES = Path(__file__).parent.parent / "fixtures" / "formats"


def price(model: str | None) -> Price:
    found = price_for(model)
    assert found is not None, model
    return found


def usage_of(fixture: str) -> tuple[Tokens, str | None, int, float | None]:
    out = parse_output((FIXTURES / fixture).read_text())
    assert out.usage is not None
    return out.usage, out.model, out.cache_write_1h, out.cost_usd


# --- aliases -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("opus-4.8", "claude-opus-4-8"),
        ("opus-4-8", "claude-opus-4-8"),
        ("claude-opus-4.8", "claude-opus-4-8"),
        ("Claude-Opus-4-8", "claude-opus-4-8"),
        ("  claude-opus-4-8 ", "claude-opus-4-8"),
        ("claude-opus-4-8-20261001", "claude-opus-4-8"),  # dated snapshot
        ("anthropic/claude-opus-4-8", "claude-opus-4-8"),
        ("anthropic/opus-4.8", "claude-opus-4-8"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),  # Vertex-style snapshot
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("opus-4.0", "claude-opus-4"),
        ("sonnet-4.6", "claude-sonnet-4-6"),
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("haiku-4.5", "claude-haiku-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("haiku-3.5", "claude-3-5-haiku"),
        ("gpt-5", "gpt-5"),
        ("openai/gpt-5", "gpt-5"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("gpt-5-codex", "gpt-5-codex"),
        ("gpt-5.1-codex", "gpt-5.1-codex"),
        ("gpt-5-1-codex", "gpt-5.1-codex"),
        ("gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # exact id wins over the date strip
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("o3", "o3"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gemini-2.5-pro", "gemini-2.5-pro"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("google/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2-5-flash", "gemini-2.5-flash"),
        # ambiguous or unknown: no price, never a guess
        ("opus", None),
        ("sonnet", None),
        ("haiku", None),
        ("claude", None),
        ("opus-4", None),
        ("gpt", None),
        ("gemini", None),
        ("claude-opus-4-9", None),
        ("llama3.1:8b", None),
        ("claude-opus-4-8-2026", None),  # not a date suffix
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_canonical_model(given: str | None, expected: str | None) -> None:
    assert canonical_model(given) == expected
    assert (price_for(given) is None) == (expected is None)


def test_seed_config_models_all_have_prices() -> None:
    # SPEC section 4: the seed example's tiers
    for model in ("opus-4.8", "sonnet-4.6", "haiku-4.5"):
        assert price_for(model) is not None


# --- the table itself --------------------------------------------------------------------------


def test_every_entry_has_all_five_rates_and_the_date_parses() -> None:
    assert date.fromisoformat(TABLE["as_of"]) <= date(2026, 11, 28)
    assert pricing.PRICES_AS_OF == TABLE["as_of"] == pricing.prices_as_of()
    assert all(s.startswith("https://") for s in TABLE["sources"]) and TABLE["sources"]
    assert len(TABLE["models"]) >= 30
    for model_id, entry in TABLE["models"].items():
        for rate in pricing.RATES:
            value = entry[rate]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), model_id
            assert math.isfinite(value) and value >= 0, model_id
        assert entry["cache_read"] <= entry["input"] <= entry["output"], model_id
        assert entry["provider"] in ("anthropic", "openai", "google"), model_id
        assert canonical_model(model_id) == model_id
        for alias in entry["aliases"]:
            assert canonical_model(alias) == model_id, alias


def test_cache_write_rates_follow_each_providers_rules() -> None:
    for model_id, e in TABLE["models"].items():
        if model_id == "claude-3-haiku":
            # published rounded: $0.30 write for $0.25 input (not 0.3125)
            assert (e["cache_write"], e["cache_write_1h"]) == (0.30, 0.50)
        elif e["provider"] == "anthropic":
            # 5-minute write 1.25x input, 1-hour write 2x input
            assert e["cache_write"] == pytest.approx(1.25 * e["input"]), model_id
            assert e["cache_write_1h"] == pytest.approx(2 * e["input"]), model_id
        else:
            # OpenAI and Google: no write surcharge
            assert e["cache_write"] == e["cache_write_1h"] == e["input"], model_id


def test_known_figures_from_real_clients() -> None:
    # /work/shared/REAL-CLIENTS.md: Claude Code's own table
    assert price_for("claude-haiku-4-5") == Price(1.0, 5.0, 1.25, 2.0, 0.10)
    assert price_for("claude-sonnet-4-5") == Price(3.0, 15.0, 3.75, 6.0, 0.30)
    assert price_for("claude-opus-4-8") == Price(5.0, 25.0, 6.25, 10.0, 0.50)


def test_a_broken_table_is_refused() -> None:
    good = {"input": 1, "output": 2, "cache_write": 1, "cache_write_1h": 1, "cache_read": 0.1}
    with pytest.raises(ValueError, match="names both"):
        pricing._build(
            {
                "as_of": "2026-01-01",
                "models": {
                    "a-1": {**good, "aliases": ["x-1-2"]},
                    "b-1": {**good, "aliases": ["x-1.2"]},
                },
            }
        )
    with pytest.raises(ValueError, match="missing cache_read"):
        pricing._build(
            {
                "as_of": "2026-01-01",
                "models": {"a": {k: v for k, v in good.items() if k != "cache_read"}},
            }
        )
    with pytest.raises(ValueError, match="non-negative"):
        pricing._build({"as_of": "2026-01-01", "models": {"a": {**good, "output": -1}}})
    with pytest.raises(ValueError):
        pricing._build({"as_of": "soon", "models": {}})


def test_the_table_is_read_only_when_pricing_is_needed() -> None:
    code = (
        "import burnless.accounting.pricing as p\n"
        "print(p._table.cache_info().currsize)\n"
        "p.canonical_model('gpt-5')\n"
        "print(p._table.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1"]


# --- costs, by hand ----------------------------------------------------------------------------


def test_cost_with_every_kind_of_token() -> None:
    tokens = Tokens(input=1000, output=2000, cache_read=100_000, cache_write=50_000)
    # opus-4-8: 1000*5 + 2000*25 + (50000-20000)*6.25 + 20000*10 + 100000*0.50
    #         = 5000 + 50000 + 187500 + 200000 + 50000 = 492500 micro-dollars
    assert cost_usd(tokens, price("opus-4.8"), cache_write_1h=20_000) == pytest.approx(0.4925)
    # without the 1-hour part: 5000 + 50000 + 50000*6.25 + 50000 = 417500
    assert cost_usd(tokens, price("opus-4.8")) == pytest.approx(0.4175)


def test_1h_part_cannot_exceed_the_cache_writes() -> None:
    tokens = Tokens(cache_write=100)
    # haiku-4-5: all 100 at the 1-hour rate 2.0 = 200 micro-dollars, not 10**6 * 2.0
    assert cost_usd(tokens, price("haiku-4.5"), cache_write_1h=10**6) == pytest.approx(0.0002)
    assert cost_usd(tokens, price("haiku-4.5"), cache_write_1h=-5) == pytest.approx(0.000125)


def test_costs_match_what_claude_code_reported_for_the_fixtures() -> None:
    tokens, model, one_hour, reported = usage_of("claude_json_success.json")
    # sonnet-4-6: 12*3 + 256*15 + 1024*3.75 (5m) + 1024*6 (1h) + 10240*0.30
    #           = 36 + 3840 + 3840 + 6144 + 3072 = 16932 micro-dollars
    assert cost_usd(tokens, price(model), one_hour) == pytest.approx(0.016932) == reported

    tokens, model, one_hour, reported = usage_of("claude_stream_json.jsonl")
    # haiku-4-5: 8*1 + 205*5 + 4406*1.25 + 36864*0.10 = 8 + 1025 + 5507.5 + 3686.4 = 10226.9
    assert one_hour == 0
    assert cost_usd(tokens, price(model)) == pytest.approx(0.0102269) == reported


def test_codex_and_gemini_fixture_costs() -> None:
    tokens, _, _, _ = usage_of("codex_exec.jsonl")
    # gpt-5-codex: 5051*1.25 + 1186*10 + 19712*0.125 = 6313.75 + 11860 + 2464 = 20637.75
    assert cost_usd(tokens, price("gpt-5-codex")) == pytest.approx(0.02063775)
    tokens, model, _, _ = usage_of("gemini_json.json")
    # gemini-2.5-pro: 4237*1.25 + 1324*10 + 5120*0.125 = 5296.25 + 13240 + 640 = 19176.25
    assert cost_usd(tokens, price(model)) == pytest.approx(0.01917625)


# --- overrides ---------------------------------------------------------------------------------


def test_override_everything() -> None:
    rates = {"input": 1, "output": 2, "cache_write": 3, "cache_write_1h": 4, "cache_read": 0.5}
    assert price_for("opus-4.8", rates) == Price(1.0, 2.0, 3.0, 4.0, 0.5)
    assert price_for("no-such-model", rates) == Price(1.0, 2.0, 3.0, 4.0, 0.5)


def test_zero_price_is_free_for_known_and_unknown_models() -> None:
    zero = Price(0.0, 0.0, 0.0, 0.0, 0.0)
    assert price_for("llama3.1:8b", {"input": 0, "output": 0}) == zero
    assert price_for("opus-4.8", {"input": 0, "output": 0}) == zero
    assert price_for(None, {"input": 0, "output": 0}) == zero
    assert price_for("tier0-script", 0) == zero  # `price: 0` in config
    assert cost_usd(Tokens(10**6, 10**6, 10**6, 10**6), zero, 10**6) == 0.0


def test_overriding_input_carries_to_the_cache_rates() -> None:
    # opus-4-8 at half the input price: cache rates keep their 1.25x / 2x / 0.1x of input,
    # output stays the table's
    assert price_for("opus-4.8", {"input": 2.5}) == Price(2.5, 25.0, 3.125, 5.0, 0.25)
    # gpt-5: its ratios are 1x / 1x / 0.1x
    assert price_for("gpt-5", {"input": 2.0}) == Price(2.0, 10.0, 2.0, 2.0, 0.2)


def test_overriding_output_only_keeps_the_table_for_the_rest() -> None:
    assert price_for("haiku-4.5", {"output": 4.0}) == Price(1.0, 4.0, 1.25, 2.0, 0.10)


def test_unknown_model_needs_input_and_output() -> None:
    # cache rates default to 1.25x / 2x / 0.1x of input
    assert price_for("my-local-model", {"input": 1.0, "output": 5.0}) == Price(
        1.0, 5.0, 1.25, 2.0, 0.1
    )
    assert price_for("my-local-model", {"input": 1.0}) is None
    assert price_for("my-local-model", {"output": 5.0}) is None
    assert price_for("my-local-model", {}) is None
    assert price_for("my-local-model") is None


@pytest.mark.parametrize(
    "override",
    [
        {"input": -1, "output": 1},
        {"input": "1", "output": 1},
        {"input": True, "output": 1},
        {"input": float("nan"), "output": 1},
        {"input": 1, "output": 1, "cache_writes": 2},
        -3,
    ],
)
def test_invalid_overrides_raise(override: object) -> None:
    with pytest.raises(ValueError):
        price_for("opus-4.8", override)  # type: ignore[arg-type]


# --- more aliases, unknown models, the clients' own table ----------------------------------------


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
