"""The ``api: openai`` tier of ``burnless run``: Chat Completions over plain HTTP, through the real
CLI against the fake provider on loopback."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from burnless.prompt import Prompt
from burnless.settings import Tier
from burnless.workers.openai_api import build_request, retry_after, usage_of
from tests.conftest import Workspace
from tests.fakes.upstream import OPENAI_CACHED, OPENAI_PROMPT, FakeUpstream, out_tokens

OKEY = "sk-proj-runtierKEY0123456789abcdefABCDEFghij"
GPT5 = (1.25, 10.0, 0.125)  # input, output, cache read (USD per million)




def config(ws: Workspace, fake: FakeUpstream, extra: str = "", key: bool = True) -> None:
    passed = ", pass_env: [OPENAI_API_KEY]" if key else ""
    ws.config("tiers:\n"
              f"  silver: {{api: openai, model: gpt-5, base_url: '{fake.url}/v1'{passed}{extra}}}\n"
              "planner: null\n")


def run(ws: Workspace, task: str, **env: str) -> tuple[int, dict[str, Any], str]:
    p = ws.run("run", task, "--json", env={"OPENAI_API_KEY": OKEY, **env})
    assert p.stdout.strip(), p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, orjson.loads(p.stdout), p.stderr


def test_a_turn_on_an_openai_tier(ws: Workspace, fakes: Any) -> None:
    fake = fakes()
    config(ws, fake)
    code, res, _ = run(ws, "explain the parser")
    assert code == 0, res
    (req,) = fake.requests
    body = req.body
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {OKEY}"
    assert body["model"] == "gpt-5" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 8192  # not api.openai.com: the field every server knows
    system, usr = body["messages"]
    assert system["role"] == "system" and usr["role"] == "user"
    assert usr["content"].endswith("explain the parser\n</task>\n")
    answer = "echo: " + usr["content"]
    tokens = {"input": OPENAI_PROMPT - OPENAI_CACHED, "output": out_tokens(answer),
              "cache_read": OPENAI_CACHED, "cache_write": 0}
    (rec,) = ws.ledger()
    assert rec["tokens"] == tokens and rec["cost_source"] == "priced"
    i, o, r = GPT5
    assert rec["cost_usd"] == pytest.approx((tokens["input"] * i + tokens["output"] * o
                                             + tokens["cache_read"] * r) / 1e6)
    assert res["usage"] == tokens


def test_429_is_retried_after_its_retry_after(ws: Workspace, fakes: Any) -> None:
    fake = fakes("429", times=1, retry_after="1")
    config(ws, fake)
    t0 = time.monotonic()
    code, res, _ = run(ws, "explain the parser")
    assert code == 0 and time.monotonic() - t0 >= 1
    assert len(fake.requests) == 2
    assert any("succeeded after 1 retry (API error 429" in f for f in res["findings"])


def test_401_fails_at_once_and_500_gives_up_after_three_attempts(ws: Workspace,
                                                                 fakes: Any) -> None:
    fake = fakes("401")
    config(ws, fake)
    code, res, _ = run(ws, "explain")
    assert code == 1 and len(fake.requests) == 1
    (rec,) = ws.ledger()
    assert rec["reason"].startswith("authentication failed (401): check $OPENAI_API_KEY")
    assert rec["cost_usd"] == 0 and rec["tokens"]["input"] == 0
    fake2 = fakes("500", retry_after="0")
    config(ws, fake2)
    code, res, _ = run(ws, "explain")
    assert code == 1 and len(fake2.requests) == 3
    assert ws.ledger()[-1]["reason"].endswith("(gave up after 3 attempts)")


def test_a_cut_stream_is_retried_and_a_slow_server_is_bounded(ws: Workspace, fakes: Any) -> None:
    cut = fakes("cut", times=1)
    config(ws, cut)
    code, res, _ = run(ws, "explain")
    assert code == 0 and len(cut.requests) == 2
    slow = fakes("slow", delay=8)
    config(ws, slow, ", timeout: 1")
    t0 = time.monotonic()
    code, res, _ = run(ws, "explain")
    assert code == 1 and time.monotonic() - t0 < 6
    rec = ws.ledger()[-1]
    assert rec["reason"] == "timed out after 1s" and rec["cost_source"] == "estimated"


def test_keys_a_local_server_without_one_and_a_missing_one(ws: Workspace, fakes: Any) -> None:
    fake = fakes()
    config(ws, fake, key=False)
    p = ws.run("run", "explain", env={"OPENAI_API_KEY": OKEY})
    assert p.returncode == 2 and "add OPENAI_API_KEY to tiers.silver.pass_env" in p.stderr
    assert fake.requests == []
    config(ws, fake, ", local: true", key=False)  # Ollama: no key needed, none sent
    code, res, _ = run(ws, "explain")
    assert code == 0 and "authorization" not in fake.requests[0].headers
    ws.config(f"tiers:\n  silver: {{api: openai, model: m, key: client, base_url: '{fake.url}'}}\n")
    p = ws.run("run", "explain")
    assert p.returncode == 2 and "serves `burnless serve` only" in p.stderr


def test_pure_parts() -> None:
    tier = Tier(name="s", api="openai", model="gpt-5", max_output_tokens=100)
    prompt = Prompt(role="executor", header="H", project="P", plan="", capsules="", task="T",
                    blocks=("plan\n", "cap\n"))
    body = build_request(prompt, tier, "https://api.openai.com/v1")
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert body["messages"] == [{"role": "system", "content": "HP"},
                                {"role": "user", "content": "plan\ncap\nT"}]
    assert usage_of({"prompt_tokens": 50, "completion_tokens": 7,
                     "prompt_tokens_details": {"cached_tokens": 60}}).to_dict() == {
        "input": 0, "output": 7, "cache_read": 50, "cache_write": 0}
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "soon"}) is None
