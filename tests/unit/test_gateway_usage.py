"""What the gateway records of an OpenAI upstream's usage: cache reads and, from the GPT-5.6
family on, cache writes (billed at their own rate) taken out of the input, as the upstream
bills them. The simulator is the upstream (it bills cache writes for GPT-5.6 models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting.pricing import cost_usd, price_for
from burnless.accounting.tokens import Tokens
from burnless.gateway.protocols import openai_usage
from burnless.sim.server import SimServer
from tests.conftest import Workspace, records
from tests.unit.test_gateway import (  # noqa: F401  (fixtures)
    Start,
    _close_clients,
    gateway,
    oai,
)

PRICE = {"input": 2.0, "output": 16.0, "cache_write": 2.5, "cache_read": 0.2}
# A prompt long enough for the simulator to cache (over 1,024 tokens), different per test.
LONG = " ".join(f"line {i}: the quick brown fox jumps over the lazy dog." for i in range(300))


def test_openai_usage_takes_cache_writes_out_of_the_input() -> None:
    assert openai_usage({"input_tokens": 5000, "output_tokens": 20, "input_tokens_details": {
        "cached_tokens": 1000, "cache_write_tokens": 3000}}) == Tokens(1000, 20, 1000, 3000)
    assert openai_usage({"prompt_tokens": 5000, "completion_tokens": 20, "prompt_tokens_details": {
        "cached_tokens": 1000, "cache_write_tokens": 3000}}) == Tokens(1000, 20, 1000, 3000)
    # Older models report no writes; absurd figures never make the input negative.
    assert openai_usage({"prompt_tokens": 50, "completion_tokens": 2, "prompt_tokens_details": {
        "cached_tokens": 40}}) == Tokens(10, 2, 40, 0)
    assert openai_usage({"input_tokens": 50, "output_tokens": 2, "input_tokens_details": {
        "cached_tokens": 40, "cache_write_tokens": 900}}) == Tokens(0, 2, 40, 10)


def _billed(usage: dict[str, Any]) -> Tokens:
    """The simulator's usage, read independently of the gateway's parser."""
    if "input_tokens" in usage:
        total, details, out = (usage["input_tokens"], usage["input_tokens_details"],
                               usage["output_tokens"])
    else:
        total, details, out = (usage["prompt_tokens"], usage["prompt_tokens_details"],
                               usage["completion_tokens"])
    read, written = details.get("cached_tokens", 0), details.get("cache_write_tokens", 0)
    return Tokens(input=total - read - written, output=out, cache_read=read,
                  cache_write=written)


@pytest.mark.parametrize("model", ["gpt-5.6-codex", "gpt-5-codex"])
def test_recorded_cost_is_what_the_simulator_billed(ws: Workspace, gateway: Start,  # noqa: F811
                                                    tmp_path: Path, model: str) -> None:
    log = tmp_path / "sim.jsonl"
    with SimServer(log=log) as sim:
        srv = gateway("tiers:\n"
                      f"  coder: {{api: openai, model: {model}, base_url: '{sim.url}/v1', "
                      f"price: {orjson.dumps(PRICE).decode()}}}\n")
        client = oai(srv)
        for i in range(2):  # the first writes the prefix to the cache, the second reads it
            r = client.responses.create(model="coder", instructions=LONG,
                                        input=f"question {i}")
            assert r.output_text
            with client.chat.completions.stream(
                    model="coder", messages=[{"role": "system", "content": LONG},
                                             {"role": "user", "content": f"q {i}"}],
            ) as s:
                s.get_final_completion()
        answered = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    got = records(ws, 4)
    billed = [_billed(a["usage"]) for a in answered]
    assert [Tokens(**{k: r["tokens"][k] for k in ("input", "output", "cache_read",
                                                  "cache_write")}) for r in got] == billed
    price = price_for(model, PRICE)
    assert price is not None
    for rec, tokens in zip(got, billed, strict=True):
        assert rec["cost_usd"] == pytest.approx(cost_usd(tokens, price), rel=1e-9)
    if model.startswith("gpt-5.6"):
        assert sum(t.cache_write for t in billed) > 0  # the case this is about
    assert sum(t.cache_read for t in billed) > 0
