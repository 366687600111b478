"""`burnless mcp`: the MCP server over stdio, driven by the official SDK's client as a real
subprocess. Each tool call is a burnless turn: audited, budgeted, in the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import Workspace, fake, quoted

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

TOOLS = {"run", "consult", "route", "session_show", "usage"}


def _session(ws: Workspace, body: Callable[[Any], Awaitable[None]]) -> None:
    """Start `python -m burnless mcp` in the workspace and run ``body(client)`` against it."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("BURNLESS_", "XDG_", "PYTHON"))}
    params = StdioServerParameters(command=sys.executable, args=["-m", "burnless", "mcp"],
                                   cwd=str(ws.root), env=env)

    async def main() -> None:
        with anyio.fail_after(60):
            async with Client(params) as client:
                await body(client)

    anyio.run(main)


def test_run_and_consult_are_audited_turns_in_the_ledger(ws: Workspace,
                                                          tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config("tiers:\n"
              f"  gold: {{command: {quoted(fake('honest', '--record', str(rec)))}}}\n"
              f"  silver: {{command: {quoted(fake('slow'))}}}\n"
              f"  liar: {{command: {quoted(fake('liar'))}}}\n"
              "planner: gold\nexecutor: silver\n")
    got: dict[str, Any] = {}
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async def body(client: Any) -> None:
        got["ok"] = await client.call_tool(
            "run", {"task": "write notes/a.txt hello", "session": "m1", "plan": False},
            progress_callback=on_progress)
        got["lie"] = await client.call_tool(
            "run", {"task": "write notes/b.txt boo", "session": "m2", "tier": "liar",
                    "plan": False})
        got["consult"] = await client.call_tool(
            "consult", {"question": "Should the cache key include the model?", "session": "c"})
        got["show"] = await client.call_tool("session_show", {"session": "c"})
        got["usage"] = await client.call_tool("usage", {"by": "tier", "period": "all"})

    _session(ws, body)
    res = got["ok"]
    assert res.is_error is False
    out = res.structured_content
    assert out["ok"] is True and out["status"] == "ok" and out["exit_code"] == 0
    assert out["files"] == ["notes/a.txt"] and out["session"] == "m1" and out["tier"] == "silver"
    assert out["audit"] == {"verdict": "passed", "findings": [], "unclaimed": []}
    assert (ws.root / "notes/a.txt").read_text() == "hello"
    (rec_ok,) = [r for r in ws.ledger() if r["run_id"] == out["run_id"]]
    assert rec_ok["role"] == "execution" and rec_ok["audit"] == "passed"
    assert rec_ok["session"] == "m1"
    assert ws.capsules("m1")[-1]["run_id"] == out["run_id"]
    messages = [m for _, m in progress]
    assert messages[0] == "execution on silver: started"
    assert messages[-1] == "execution on silver: finished"
    values = [v for v, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values)
    # A worker that lies is a result the assistant can act on, not a tool error.
    lie = got["lie"]
    assert lie.is_error is False
    out = lie.structured_content
    assert out["ok"] is False and out["exit_code"] == 3 and out["audit"]["verdict"] == "failed"
    assert [(f["check"], f["path"]) for f in out["audit"]["findings"]] == [
        ("missing", "notes/b.txt")]
    # consult: one call on the planner's tier, with no plan first; the worker saw the question.
    out = got["consult"].structured_content
    assert got["consult"].is_error is False
    assert out["ok"] is True and out["tier"] == "gold" and out["changed_files"] == []
    assert out["answer"]
    (rec_c,) = [r for r in ws.ledger() if r["session"] == "c"]
    assert (rec_c["tier"], rec_c["role"], rec_c["run_id"]) == ("gold", "execution",
                                                               out["run_id"])
    assert sorted(p.name for p in rec.glob("prompt-*.txt")) == ["prompt-1.txt"]
    prompt = (rec / "prompt-1.txt").read_text()
    assert "Should the cache key include the model?" in prompt and "Change no file" in prompt
    show = got["show"].structured_content
    assert show["capsules"] == 1 and show["recent"][0]["tier"] == "gold"
    rows = {r["key"]: r for r in got["usage"].structured_content["rows"]}
    assert set(rows) == {"gold", "silver", "liar"} and rows["gold"]["calls"] == 1


def test_typed_schemas_and_refusals_as_tool_errors(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config("tiers:\n"
              f"  silver: {{command: {quoted(fake('honest', '--record', str(rec)))}, "
              "model: claude-haiku-4-5, max_output_tokens: 100000}\n"
              "budget: {max_cost_per_task: 0.05}\nplanner: null\n")
    got: dict[str, Any] = {}
    seen: dict[str, Any] = {}

    async def body(client: Any) -> None:
        for tool in (await client.list_tools()).tools:
            seen[tool.name] = tool
        got["budget"] = await client.call_tool("run", {"task": "write a.txt hello"})
        got["consult"] = await client.call_tool("consult", {"question": "why?"})
        got["tier"] = await client.call_tool("run", {"task": "x", "tier": "nope"})
        got["empty"] = await client.call_tool("run", {"task": "   "})
        got["session"] = await client.call_tool("session_show", {"session": "none"})
        got["usage"] = await client.call_tool("usage", {"by": "colour"})
        got["after"] = await client.call_tool("route", {"task": "write a.txt hello"})

    _session(ws, body)
    # Typed input and output schemas.
    assert set(seen) == TOOLS
    run = seen["run"]
    assert run.input_schema["required"] == ["task"]
    props = run.input_schema["properties"]
    assert props["task"]["type"] == "string" and props["cascade"]["type"] == "boolean"
    assert props["labels"]["type"] == "array" and props["labels"]["items"]["type"] == "string"
    out = run.output_schema["properties"]
    assert {"ok", "status", "summary", "files", "audit", "cost_usd", "exit_code"} <= set(out)
    assert seen["consult"].input_schema["required"] == ["question"]
    assert seen["session_show"].input_schema["required"] == ["session"]
    # Refusals: tool errors with burnless's message.
    text = got["budget"].content[0].text
    assert got["budget"].is_error is True
    assert "max_cost_per_task" in text and "BudgetExceeded, exit 4" in text
    assert not rec.exists() and not (ws.root / "a.txt").exists()
    (refusal,) = ws.ledger()  # and nothing for the consultation: there is no planner
    assert refusal["status"] == "refused" and refusal["refused_by"] == "budget"
    assert got["consult"].is_error and "planner: null" in got["consult"].content[0].text
    assert got["tier"].is_error and "unknown tier 'nope'" in got["tier"].content[0].text
    assert got["empty"].is_error and "the task is empty" in got["empty"].content[0].text
    assert got["session"].is_error and "no session 'none'" in got["session"].content[0].text
    assert got["usage"].is_error and "--by 'colour'" in got["usage"].content[0].text
    # The server is still serving after every refusal.
    assert got["after"].is_error is False and got["after"].structured_content["tier"] == "silver"


def test_help_and_run_do_not_import_the_sdk(ws: Workspace) -> None:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", "--help"],
                       capture_output=True, text=True, timeout=60)
    modules = {line.split("|")[-1].strip().split(".")[0] for line in p.stderr.splitlines()
               if "|" in line}
    assert "burnless" in modules and "mcp" not in modules and "pydantic" not in modules


def test_without_the_sdk_the_command_says_what_to_install(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    code = ("import sys; sys.modules['mcp'] = None; sys.argv = ['burnless', 'mcp']; "
            "from burnless.cli import main; main()")
    p = subprocess.run([sys.executable, "-c", code], cwd=ws.root, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "pip install 'burnless[mcp]'" in p.stderr and "Traceback" not in p.stderr
