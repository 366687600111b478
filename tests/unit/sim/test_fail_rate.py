"""The scripted per-model failure rate (for pair evaluation): stable, nested, honest claims."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from typing import Any

from burnless.sim.dialogue import next_turn
from burnless.sim.model import garble
from burnless.sim.server import sim_server

WRITE = {"name": "Write", "input_schema": {"type": "object"}}


def request(task: str, role: str = "executor", model: str = "claude-haiku-4-5") -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 4000,
        "system": f'<burnless-protocol role="{role}" version="1">\n</burnless-protocol>',
        "messages": [{"role": "user", "content": f"<task>\n{task}\n</task>"}],
        "tools": [WRITE],
    }


def envelope(text: str) -> dict[str, Any]:
    return json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])


def writes(task: str, rate: float) -> str:
    """The content the model writes for a one-file task at this failure rate."""
    call = next_turn(request(task), fail_rate=rate).content[-1]
    return str(call["input"]["content"])


def failed(rate: float, n: int = 200) -> set[int]:
    return {
        i for i in range(n) if writes(f"create file f{i}.txt with content v{i}", rate) != f"v{i}"
    }


def test_the_share_of_failures_follows_the_rate_and_is_stable() -> None:
    assert failed(0.0) == set()
    assert len(failed(1.0)) == 200
    weak, strong = failed(0.3), failed(0.1)
    assert 40 <= len(weak) <= 80 and 8 <= len(strong) <= 32
    assert strong <= weak  # a weaker model fails every task a stronger one fails
    assert failed(0.3) == weak  # the same tasks, every time


def test_a_failing_write_is_wrong_but_honestly_claimed() -> None:
    task = "create file out.txt with content 42 apples"
    body = request(task)
    first = next_turn(body, fail_rate=1.0)
    call = first.content[-1]
    assert call["input"]["content"] == garble("42 apples") == "97 nccyrf"
    body["messages"] += [
        {"role": "assistant", "content": list(first.content)},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "ok"}],
        },
    ]
    env = envelope(next_turn(body, fail_rate=1.0).content[0]["text"])
    assert env["status"] == "ok"  # the model does not know it got it wrong
    wrong = b"97 nccyrf"
    assert env["files"][0]["bytes"] == len(wrong)
    assert env["files"][0]["sha256"] == hashlib.sha256(wrong).hexdigest()
    assert garble("!!") == "!!?" and garble("") == "?"


def test_a_failing_task_without_a_write_says_failed_and_planners_never_fail() -> None:
    thought = envelope(next_turn(request("explain the cache"), fail_rate=1.0).content[0]["text"])
    assert thought["status"] == "failed"
    plan = next_turn(request("add a test; fix it", role="planner"), fail_rate=1.0)
    assert envelope(plan.content[0]["text"])["status"] == "ok"


def test_the_server_applies_the_rate_per_model() -> None:
    rates = {"claude-haiku-4-5": 1.0, "*": 0.0}
    task = "create file a.txt with content hello"
    with sim_server(fail_rates=rates) as url:
        got = {}
        for model in ("claude-haiku-4-5", "claude-sonnet-4-5"):
            req = urllib.request.Request(
                url + "/v1/messages",
                data=json.dumps(request(task, model=model)).encode(),
                headers={"x-api-key": "k"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                got[model] = json.loads(r.read())["content"][-1]["input"]["content"]
    assert got == {"claude-haiku-4-5": garble("hello"), "claude-sonnet-4-5": "hello"}
