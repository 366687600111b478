"""The ``api: anthropic`` tier, through the real CLI and SDK against the simulator on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting.tokens import estimate_tokens
from burnless.agent import BurnlessAgent
from burnless.config import Tier
from burnless.prompt import Prompt
from burnless.sim.server import SimServer
from burnless.workers.anthropic_api import base_url, build_request, describe
from tests.conftest import Workspace, fake

KEY = "sk-ant-api03-test-KEY-0123456789abcdef"
# USD per million tokens: input, output, cache write (5 min), cache read.
PRICES = {"claude-sonnet-4-5": (3.0, 15.0, 3.75, 0.30), "claude-opus-4-8": (5.0, 25.0, 6.25, 0.50)}
# ~7 KB: with the protocol header, well above the 1,024-token minimum cacheable length.
PREFIX_MD = "Project rules: keep functions small, typed and tested; no global state.\n" * 100


class Sim:
    def __init__(self, server: SimServer, log: Path) -> None:
        self.server, self.log = server, log

    @property
    def url(self) -> str:
        return self.server.url

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_bytes().splitlines()
        return [r for r in map(orjson.loads, lines) if r["method"] == "POST"]


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[SimServer] = []

    def start(fault: str | None = None) -> Sim:
        log = tmp_path / f"sim-{len(servers)}.jsonl"  # outside the workspace (no audit noise)
        server = SimServer(log=log, fault=fault).start()
        servers.append(server)
        return Sim(server, log)

    yield start
    for s in servers:
        s.close()


def api_config(ws: Workspace, url: str, *, planner: bool = False, extra: str = "") -> Workspace:
    tier = f"base_url: '{url}', pass_env: [ANTHROPIC_API_KEY]"
    text = (
        "tiers:\n"
        f"  gold: {{api: anthropic, model: claude-opus-4-8, {tier}}}\n"
        f"  silver: {{api: anthropic, model: claude-sonnet-4-5, {tier}{extra}}}\n"
        + ("" if planner else "planner: null\n")
    )
    (ws.state / "prefix.md").write_text(PREFIX_MD, encoding="utf-8")
    return ws.config(text)


def run(ws: Workspace, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {"ANTHROPIC_API_KEY": KEY, **kw.pop("env", {})}
    return ws.run("run", *args, env=env, **kw)


def run_json(ws: Workspace, *args: str, **kw: Any) -> tuple[int, dict[str, Any], str]:
    p = run(ws, *args, "--json", **kw)
    assert p.stdout.strip(), p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, orjson.loads(p.stdout), p.stderr


def expected(prompt: Prompt, model: str) -> dict[str, Any]:
    """What the next call must be billed: the previous turn wrote everything but its last
    context block (and the task), so that is read; the last block is written."""
    tok = estimate_tokens
    blocks = [b for b in prompt.blocks if b]
    cached = tok(prompt.stable_prefix) + sum(tok(b) for b in blocks[:-1])
    return {
        "input": tok(prompt.task),
        "cache_read": cached if blocks else 0,
        "cache_write": tok(blocks[-1]) if blocks else tok(prompt.stable_prefix),
    }


def hand_cost(model: str, t: dict[str, int]) -> float:
    i, o, w, r = PRICES[model]
    return (t["input"] * i + t["output"] * o + t["cache_write"] * w + t["cache_read"] * r) / 1e6


# --------------------------------------------------------------------------- the session


def test_each_turn_reads_the_cache_the_previous_turn_wrote(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory()
    api_config(ws, sim.url, planner=True)
    agent = BurnlessAgent(ws.state / "config.yaml", workspace=ws.root)
    tasks = ["explain the auth module", "review the session code", "list the open items"]

    first = agent.next_prompt("s", tasks[0])
    assert first.role == "planner" and first.blocks == ()
    code, res, _ = run_json(ws, tasks[0], "--session", "s")
    assert code == 0, res
    assert [c["role"] for c in res["calls"]] == ["planning", "execution"]
    assert res["plan"]  # the api planner's plan reached the executor

    wanted = []
    for task in tasks[1:]:
        prompt = BurnlessAgent(workspace=ws.root).next_prompt("s", task)
        assert prompt.role == "executor"
        wanted.append(expected(prompt, "claude-sonnet-4-5"))
        code, res, _ = run_json(ws, task, "--session", "s")
        assert code == 0, res

    ledger = ws.ledger()
    assert [(r["role"], r["tier"], r["model"]) for r in ledger] == [
        ("planning", "gold", "claude-opus-4-8"),
        ("execution", "silver", "claude-sonnet-4-5"),
        ("execution", "silver", "claude-sonnet-4-5"),
        ("execution", "silver", "claude-sonnet-4-5"),
    ]
    # The ledger holds exactly what the server billed, priced by burnless from its table.
    billed = [r["usage"] for r in sim.requests()]
    assert len(billed) == 4
    for rec, usage in zip(ledger, billed, strict=True):
        assert rec["tokens"] == {
            "input": usage["input_tokens"],
            "output": usage["output_tokens"],
            "cache_read": usage["cache_read_input_tokens"],
            "cache_write": usage["cache_creation_input_tokens"],
        }
        assert rec["cost_source"] == "priced" and rec["status"] == "ok" and rec["exit"] == 0
        assert rec["cost_usd"] == pytest.approx(hand_cost(rec["model"], rec["tokens"]), abs=1e-8)

    plan_rec, exec1, exec2, exec3 = (r["tokens"] for r in ledger)
    # Turn 1: nothing to read; the planner writes its prefix, the executor its prefix + plan.
    assert plan_rec["cache_read"] == 0
    assert plan_rec["cache_write"] == estimate_tokens(first.stable_prefix) > 1024
    assert exec1["cache_read"] == 0 and exec1["cache_write"] > 1024
    # Turns 2 and 3 read what the turn before wrote and write only their newest capsule.
    for got, want in zip((exec2, exec3), wanted, strict=True):
        assert {k: got[k] for k in want} == want
    assert exec2["cache_read"] == exec1["cache_write"]
    assert exec3["cache_read"] == exec2["cache_read"] + exec2["cache_write"]

    # The last request as the server saw it: breakpoints on the prefix and the last capsule.
    body = sim.requests()[-1]["body"]
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 8192
    (system,) = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert system["text"].startswith('<burnless-protocol role="executor"')
    (user,) = body["messages"]
    assert ["cache_control" in b for b in user["content"]] == [False, False, True, False]
    assert user["content"][-1]["text"] == f"<task>\n{tasks[-1]}\n</task>\n"
    log = (ws.root / res["log"]).read_text()
    assert "request: model claude-sonnet-4-5, max_tokens 8192" in log
    assert '"stop_reason":"end_turn"' in log and "attempt 1: end_turn" in log
    assert KEY not in log and KEY[:16] not in log
    assert KEY not in sim.log.read_text()  # the simulator redacts the auth header too


def test_truncated_answer_is_a_finding(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory()
    api_config(ws, sim.url, extra=", max_output_tokens: 8")
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 0
    assert any("cut at max_output_tokens (8)" in f for f in res["findings"]), res["findings"]
    assert ws.ledger()[0]["tokens"]["output"] <= 8


# --------------------------------------------------------------------------- failures


def test_401_fails_at_once_with_a_clear_message(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("401")
    api_config(ws, sim.url)
    p = run(ws, "explain the auth module")
    assert p.returncode == 1
    assert "authentication failed (401)" in p.stdout and "$ANTHROPIC_API_KEY" in p.stdout
    assert "Traceback" not in p.stderr
    assert [r["status"] for r in sim.requests()] == [401]  # no retry
    (rec,) = ws.ledger()
    assert rec["status"] == "failed" and rec["exit"] == 1
    assert rec["reason"].startswith("authentication failed (401)")
    # An error answer is not billed: zero tokens, cost 0 (not an estimate).
    assert rec["tokens"] == {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    assert rec["cost_usd"] == 0 and rec["cost_source"] == "priced"


def test_429_once_is_retried(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("429,times=1")
    api_config(ws, sim.url)
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 0, res
    assert [r["status"] for r in sim.requests()] == [429, 200]
    assert "succeeded after 1 retry (API error 429 rate_limit_error)" in res["findings"]
    log = (ws.root / res["log"]).read_text()
    assert "attempt 1: API error 429" in log and "attempt 2: end_turn" in log
    assert ws.ledger()[0]["tokens"]["output"] > 0


def test_500_always_gives_up_after_the_retries(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("500")
    api_config(ws, sim.url)
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 1 and res["status"] == "failed"
    assert [r["status"] for r in sim.requests()] == [500] * 3
    (rec,) = ws.ledger()
    # The call's own time (not the interpreter's start-up, which a busy machine stretches).
    assert rec["duration_s"] < 12
    assert rec["reason"].startswith("API error 500 api_error")
    assert rec["reason"].endswith("(gave up after 3 attempts)")
    log = (ws.root / res["log"]).read_text()
    assert log.count("retrying in") == 2


def test_timeout_is_bounded(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("sleep=10")
    api_config(ws, sim.url, extra=", timeout: 1")
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 1 and res["status"] == "failed"
    (rec,) = ws.ledger()
    # The call's own time (its deadline counts from before the SDK import, ~1 s, which a busy
    # machine can stretch several-fold): far below the server's 10 s.
    assert rec["duration_s"] < 8
    assert rec["reason"] == "timed out after 1s" and rec["exit"] is None
    assert rec["cost_source"] == "estimated"  # nothing reported: the prompt is estimated


def test_ctrl_c_during_the_call_exits_130(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("sleep=8")
    api_config(ws, sim.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "burnless", "run", "explain the auth module"],
        cwd=ws.root,
        env={**os.environ, "ANTHROPIC_API_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    logs = ws.state / "logs"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the request is on its way (logged just before)
        if logs.is_dir() and any("attempt 1: sending" in p.read_text() for p in logs.iterdir()):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 6  # not the server's 8 s (slack for a busy machine)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    (rec,) = ws.ledger()
    assert rec["status"] == "interrupted"
    assert "interrupted" in next(logs.iterdir()).read_text()


# --------------------------------------------------------------------------- before dispatch


def test_missing_key_fails_before_anything_is_sent(
    ws: Workspace, sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = sim_factory()
    api_config(ws, sim.url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    p = ws.run("run", "explain the auth module")
    assert p.returncode == 2
    assert "tier 'silver'" in p.stderr and "$ANTHROPIC_API_KEY is not set" in p.stderr
    assert "tiers.silver.pass_env" in p.stderr and "Traceback" not in p.stderr
    # Set in the caller's environment but not passed: the message says what to add.
    ws.config((ws.state / "config.yaml").read_text().replace(", pass_env: [ANTHROPIC_API_KEY]", ""))
    p = ws.run("run", "explain the auth module", env={"ANTHROPIC_API_KEY": KEY})
    assert p.returncode == 2
    assert "add ANTHROPIC_API_KEY to tiers.silver.pass_env" in p.stderr
    assert sim.requests() == [] and ws.ledger() == []


def test_api_tier_without_model_is_a_config_error(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {api: anthropic, pass_env: [ANTHROPIC_API_KEY]}\n")
    p = ws.run("run", "explain the auth module", env={"ANTHROPIC_API_KEY": KEY})
    assert p.returncode == 2
    assert "config.yaml:2: tiers.silver.model: required for an api tier" in p.stderr


def test_a_command_tier_run_never_imports_the_sdk(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(fake('honest')).decode()}}}\n")
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "burnless", "run", "write a.txt hi"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    modules = [
        ln.rsplit("|", 1)[-1].strip()
        for ln in p.stderr.splitlines()
        if ln.startswith("import time:")
    ]
    assert "burnless.agent" in modules  # the measurement saw the run path
    assert not [m for m in modules if m.split(".")[0] in ("anthropic", "httpx", "httpx2")]


# --------------------------------------------------------------------------- pure parts


def test_build_request_puts_breakpoints_on_the_prefix_and_the_last_context_block() -> None:
    tier = Tier(name="silver", api="anthropic", model="claude-sonnet-4-5", max_output_tokens=99)
    p = Prompt(
        "executor",
        "H\n",
        "P\n",
        "plan\n",
        "c1\nc2\n",
        "<task>\nt\n</task>\n",
        blocks=("plan\n", "c1\n", "c2\n"),
    )
    req = build_request(p, tier)
    assert req["model"] == "claude-sonnet-4-5" and req["max_tokens"] == 99
    assert req["system"] == [
        {"type": "text", "text": "H\nP\n", "cache_control": {"type": "ephemeral"}}
    ]
    content = req["messages"][0]["content"]
    assert [b["text"] for b in content] == ["plan\n", "c1\n", "c2\n", "<task>\nt\n</task>\n"]
    assert ["cache_control" in b for b in content] == [False, False, True, False]
    assert describe(req)[1:] == [
        "  system: 4 bytes [cache_control]",
        "  context: 5 bytes",
        "  context: 3 bytes",
        "  context: 3 bytes [cache_control]",
        "  task: 17 bytes",
    ]
    bare = build_request(Prompt("planner", "H\n", "", "", "", "<task>\nt\n</task>\n"), tier)
    assert ["cache_control" in b for b in bare["messages"][0]["content"]] == [False]


def test_key_and_base_url_follow_the_scrubbed_environment_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-shell")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    bare = Tier(name="t", api="anthropic", model="m")
    assert bare.env_value("ANTHROPIC_API_KEY") is None  # not listed: not seen
    assert base_url(bare) == "https://api.anthropic.com"
    in_env = Tier(
        name="t",
        api="anthropic",
        model="m",
        env={"ANTHROPIC_API_KEY": "from-config", "ANTHROPIC_BASE_URL": "http://h:2"},
    )
    assert in_env.env_value("ANTHROPIC_API_KEY") == "from-config"
    assert base_url(in_env) == "http://h:2"
    passed = Tier(
        name="t",
        api="anthropic",
        model="m",
        env=in_env.env,
        pass_env=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    )
    assert passed.env_value("ANTHROPIC_API_KEY") == "from-shell"
    assert base_url(passed) == "http://127.0.0.1:1"
    explicit = Tier(
        name="t", api="anthropic", model="m", base_url="http://x:3", pass_env=passed.pass_env
    )
    assert base_url(explicit) == "http://x:3"
