"""Real agent CLIs through the gateway (``burnless serve``), offline: the simulator is the
upstream, the gateway runs in-process on loopback, and the CLI is the real npm package.

Slow (``pytest -m slow``, run by ``.ci/run``): Claude Code and Codex are installed once into the
test cache (``tests/e2e/clients.py``). Each test runs a session of three turns through the
gateway and checks that it works, that every request the upstream answered is one ledger
record under the client's own session id, and that what the ledger says it cost is what the
simulator billed (its request log: the usage it answered, priced by burnless's table).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting.pricing import cost_usd, price_for
from burnless.accounting.tokens import Tokens
from burnless.config import load_config
from burnless.gateway.app import Server
from burnless.sim.server import SimServer
from tests.conftest import Workspace
from tests.e2e.clients import CLAUDE_CODE, CODEX, npm_install

pytestmark = pytest.mark.slow

UPSTREAM_KEY = "sk-ant-api03-gateway-e2e-upstream-0123456789"  # the gateway's own key
CLIENT_KEY = "client-dummy-key"  # what the CLI sends (never forwarded: key is the tier's)
CLAUDE_MODEL = "claude-haiku-4-5"
# The simulator bills cache writes from the GPT-5.6 family on (as OpenAI does); not in the
# price table, so the tier gives rates (made up for the test).
CODEX_MODEL = "gpt-5.6-codex"
CODEX_PRICE = {"input": 2.0, "output": 16.0, "cache_write": 2.5, "cache_read": 0.2}
TURNS = (
    "Remember this word for later: zebra. Reply with one short sentence.",
    "What word did I ask you to remember?",
    "Now say the word backwards.",
)


@pytest.fixture(scope="module")
def claude() -> Path:
    return npm_install(CLAUDE_CODE)


@pytest.fixture(scope="module")
def codex() -> Path:
    return npm_install(CODEX)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[SimServer, Path]]:
    log = tmp_path / "sim.jsonl"
    with SimServer(log=log, api_key=UPSTREAM_KEY) as sim:
        yield sim, log


def sim_requests(log: Path, path: str) -> list[dict[str, Any]]:
    """The POSTs the simulator answered on ``path``, in order."""
    if not log.exists():
        return []
    rows = [orjson.loads(line) for line in log.read_bytes().splitlines() if line]
    return [r for r in rows if r["method"] == "POST" and r["path"].split("?")[0] == path]


def ledger_when(ws: Workspace, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The ledger once it holds ``n`` records (the gateway writes a record just after its
    answer has gone out)."""
    deadline = time.monotonic() + timeout
    while True:
        got = ws.ledger()
        if len(got) >= n or time.monotonic() > deadline:
            assert len(got) == n, (len(got), n, got[-3:])
            return got
        time.sleep(0.05)


def anthropic_tokens(usage: dict[str, Any]) -> tuple[Tokens, int]:
    one_hour = int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0)
    return Tokens(input=usage["input_tokens"], output=usage["output_tokens"],
                  cache_write=usage.get("cache_creation_input_tokens") or 0,
                  cache_read=usage.get("cache_read_input_tokens") or 0), one_hour


def openai_tokens(usage: dict[str, Any]) -> Tokens:
    """Responses usage: ``input_tokens`` include the cached ones; cache writes, when the
    simulator bills them, are in ``input_tokens_details.cache_write_tokens``."""
    details = usage.get("input_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or details.get("cache_creation_tokens") or 0)
    return Tokens(input=usage["input_tokens"] - cached - written,
                  output=usage["output_tokens"], cache_write=written, cache_read=cached)


def check_billing(records: list[dict[str, Any]], billed: list[tuple[str, Tokens, int]],
                  override: dict[str, float] | None = None) -> float:
    """Each ledger record against the upstream request it stands for (same order: one client,
    one request at a time): same tokens, and the cost the simulator's usage comes to."""
    total = 0.0
    for rec, (model, tokens, one_hour) in zip(records, billed, strict=True):
        price = price_for(model, override)
        assert price is not None, model
        expected = cost_usd(tokens, price, one_hour)
        got = Tokens(**{k: rec["tokens"][k] for k in ("input", "output", "cache_write",
                                                       "cache_read")})
        assert got == tokens, (rec, tokens)
        assert rec["cost_source"] == "priced" and rec["status"] == "ok"
        assert rec["cost_usd"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        total += expected
    return total


# --------------------------------------------------------------------------- Claude Code


def test_claude_code_session_through_the_gateway(ws: Workspace, tmp_path: Path, claude: Path,
                                                 upstream: tuple[SimServer, Path]) -> None:
    sim, log = upstream
    ws.config("tiers:\n"
              f"  bronze: {{api: anthropic, model: {CLAUDE_MODEL}, base_url: '{sim.url}'}}\n"
              "planner: null\nexecutor: bronze\n")
    home = tmp_path / "home"
    home.mkdir()
    session = str(uuid.uuid4())
    with Server(load_config(cwd=ws.root), environ={"ANTHROPIC_API_KEY": UPSTREAM_KEY}) as gw:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
        env.update(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_API_KEY=CLIENT_KEY, HOME=str(home),
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1")
        results = []
        for i, prompt in enumerate(TURNS):
            # Turn 1 names the session; turns 2 and 3 resume it (its transcript on disk).
            which = ["--session-id", session] if i == 0 else ["--resume", session]
            p = subprocess.run(
                [str(claude), "-p", prompt, "--output-format", "json", "--model", CLAUDE_MODEL,
                 "--tools", "", *which],
                cwd=ws.root, env=env, capture_output=True, text=True, timeout=180)
            assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
            result = orjson.loads(p.stdout.strip().splitlines()[-1])
            assert result["type"] == "result" and not result["is_error"], result
            assert result["session_id"] == session
            results.append(result)
    answered = sim_requests(log, "/v1/messages")
    assert len(answered) >= 3 and all(r["status"] == 200 for r in answered)
    # The upstream got the gateway's key, never the client's.
    assert all(r["headers"].get("x-api-key") != CLIENT_KEY for r in answered)
    # Multi-turn: each turn's request carries the conversation so far.
    sizes = [len(r["body"]["messages"]) for r in answered]
    assert sizes[-1] >= 5, sizes
    records = ledger_when(ws, len(answered))
    assert {r["session"] for r in records} == {session}
    assert {r["tier"] for r in records} == {"bronze"}
    assert all(r["client"].startswith("claude-cli") for r in records), records[0]["client"]
    billed = [(CLAUDE_MODEL, *anthropic_tokens(r["usage"])) for r in answered]
    total = check_billing(records, billed)
    # Claude Code prices the same usage with its own table: the same figure.
    client_total = sum(r["total_cost_usd"] for r in results)
    assert sum(r["cost_usd"] for r in records) == pytest.approx(total, rel=1e-9)
    assert client_total == pytest.approx(total, rel=1e-6)
    print(f"\nClaude Code through the gateway: {len(records)} requests in session {session}, "
          f"messages per request {sizes}, ledger ${total:.6f} = simulator ${total:.6f} = "
          f"Claude Code's own ${client_total:.6f}")


# --------------------------------------------------------------------------- Codex


def test_codex_session_through_the_gateways_responses_endpoint(
        ws: Workspace, tmp_path: Path, codex: Path, upstream: tuple[SimServer, Path]) -> None:
    sim, log = upstream
    ws.config("tiers:\n"
              f"  coder: {{api: openai, model: {CODEX_MODEL}, base_url: '{sim.url}/v1', "
              f"price: {orjson.dumps(CODEX_PRICE).decode()}}}\n"
              "planner: null\nexecutor: coder\n")
    with Server(load_config(cwd=ws.root), environ={"OPENAI_API_KEY": UPSTREAM_KEY}) as gw:
        home = tmp_path / "codex-home"
        home.mkdir()
        # A custom provider is the only way to point Codex elsewhere (REAL-CLIENTS.md).
        (home / "config.toml").write_text(
            'model_provider = "burnless"\n'
            f'model = "{CODEX_MODEL}"\n'
            "check_for_update_on_startup = false\n"
            "[analytics]\nenabled = false\n"
            "[model_providers.burnless]\n"
            'name = "burnless gateway"\n'
            f'base_url = "{gw.url}/v1"\n'
            'env_key = "BURNLESS_GATEWAY_KEY"\n'
            'wire_api = "responses"\n',
            encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
        env.update(CODEX_HOME=str(home), HOME=str(tmp_path), BURNLESS_GATEWAY_KEY=CLIENT_KEY)
        answers: list[str] = []
        thread = ""
        for i, prompt in enumerate(TURNS):
            resume = [] if i == 0 else ["resume", thread]
            p = subprocess.run(
                [str(codex), "exec", "--json", "--skip-git-repo-check", *resume, prompt],
                cwd=ws.root, env=env, capture_output=True, text=True, timeout=180)
            assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
            events = [orjson.loads(line) for line in p.stdout.splitlines()
                      if line.startswith("{")]
            started = [e for e in events if e.get("type") == "thread.started"]
            if i == 0:
                thread = started[0]["thread_id"]
            assert started[0]["thread_id"] == thread  # resumed: the same thread
            assert [e for e in events if e.get("type") == "turn.completed"], events
            answers += [e["item"]["text"] for e in events if e.get("type") == "item.completed"
                        and e.get("item", {}).get("type") == "agent_message"]
    assert len(answers) >= 3
    answered = sim_requests(log, "/v1/responses")
    assert len(answered) >= 3 and all(r["status"] == 200 for r in answered)
    assert all(r["headers"].get("authorization") != f"Bearer {CLIENT_KEY}" for r in answered)
    # Multi-turn: the last request carries the earlier turns.
    assert len(answered[-1]["body"]["input"]) > len(answered[0]["body"]["input"])
    records = ledger_when(ws, len(answered))
    # Codex's thread is its session (its session-id header), all three turns long.
    assert {r["session"] for r in records} == {thread}
    assert {r["tier"] for r in records} == {"coder"}
    assert all(r["client"].startswith("codex_exec") for r in records), records[0]["client"]
    billed = [(CODEX_MODEL, openai_tokens(r["usage"]), 0) for r in answered]
    total = check_billing(records, billed, CODEX_PRICE)
    assert total > 0 and sum(t.cache_write for _, t, _ in billed) > 0
    assert sum(t.cache_read for _, t, _ in billed) > 0
    print(f"\nCodex through the gateway: {len(records)} requests in session {thread}, "
          f"ledger = simulator ${total:.6f}; tokens per request "
          f"{[(t.input, t.cache_write, t.cache_read, t.output) for _, t, _ in billed]}")
