"""Real Claude Code calls burnless through `burnless mcp`, offline against `burnless sim serve`.

Slow (``pytest -m slow``): Claude Code comes from the same npm cache as
``tests/e2e/test_claude_code.py`` (``BURNLESS_TEST_CACHE``). The project is set up by
``burnless init --claude-code``: its ``.mcp.json`` starts the server, its tiers (pointed at the
simulator) serve the delegated turns. The simulator's model calls a named tool when the prompt
says ``call tool NAME with {JSON}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.conftest import Workspace
from tests.e2e.test_claude_code import Sim, claude, sim  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
pytest.importorskip("mcp")

TOP_MODEL = "claude-haiku-4-5"


def _client_env(server: Sim, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": "dummy-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "HOME": str(home),
        # -p mode otherwise sends its first request before the MCP server is connected.
        "MCP_CONNECTION_NONBLOCKING": "0",
    }


def _top_level(binary: Path, ws: Workspace, server: Sim, home: Path, prompt: str
               ) -> dict[str, Any]:
    """One `claude -p` in the project, as a user would run it, allowed the burnless tools."""
    p = subprocess.run(
        [str(binary), "-p", prompt, "--output-format", "json", "--model", TOP_MODEL,
         "--allowedTools", "mcp__burnless__run,mcp__burnless__consult",
         "--no-session-persistence"],
        cwd=ws.root, env=_client_env(server, home), capture_output=True, text=True,
        timeout=300)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    result: dict[str, Any] = orjson.loads(p.stdout)
    return result


def _envelope(text: str) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    return body


def test_claude_code_delegates_and_consults_through_burnless_mcp(
    claude: Path, sim: Sim, ws: Workspace, tmp_path: Path  # noqa: F811
) -> None:
    home = tmp_path / "claude-home"
    home.mkdir()
    # init --claude-code, with the installed Claude Code on PATH (its flags are checked).
    (ws.state / "config.yaml").unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{claude.parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run([sys.executable, "-m", "burnless", "init",
                        "--claude-code"], cwd=ws.root, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "does not accept" not in p.stdout  # 2.1.197 takes every lean flag
    mcp_json = (ws.root / ".mcp.json").read_bytes()
    # init's tiers, unchanged but for where Claude Code is and which server it talks to.
    cfg = yaml.safe_load((ws.state / "config.yaml").read_text())
    for tier in cfg["tiers"].values():
        if tier["command"].startswith("claude "):
            tier["command"] = f"{claude} " + tier["command"][len("claude "):]
            tier["timeout"] = 180
            tier["env"] = {k: v for k, v in _client_env(sim, home).items()
                           if k.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "DISABLE_", "HOME"))}
    (ws.state / "config.yaml").write_text(yaml.safe_dump(cfg))
    # What the user approves once when Claude Code asks about the project's MCP server.
    (ws.root / ".claude" / "settings.local.json").write_text(
        '{"enabledMcpjsonServers": ["burnless"]}')

    task = "create file notes/mcp.txt with content hello from burnless"
    args = orjson.dumps({"task": task, "session": "s-mcp"}).decode()
    result = _top_level(claude, ws, sim, home, f"call tool mcp__burnless__run with {args}")
    top = _envelope(result["result"])
    assert top["status"] == "ok", top
    assert top["summary"].startswith("mcp__burnless__run returned: ")
    delegated = top["summary"]
    assert '"ok":true' in delegated.replace(" ", "") and '"verdict":"passed"' in delegated.replace(
        " ", "")

    # The delegated turn: planned on the planner tier, executed on the executor, audited.
    assert (ws.root / "notes/mcp.txt").read_text() == "hello from burnless"
    records = [r for r in ws.ledger() if r.get("session") == "s-mcp"]
    assert [(r["role"], r["tier"]) for r in records] == [("planning", "plan"),
                                                         ("execution", "silver")]
    plan_rec, exec_rec = records
    assert exec_rec["audit"] == "passed" and exec_rec["status"] == "ok"
    assert exec_rec["model"] == "claude-sonnet-4-6" and exec_rec["cost_source"] == "reported"
    assert plan_rec["model"] == "claude-opus-4-8"
    caps = ws.capsules("s-mcp")
    assert [c["role"] for c in caps] == ["plan", "exec"] and caps[-1]["audit"] == "passed"
    assert exec_rec["run_id"] in delegated

    # What the simulator saw: the top-level session was offered burnless's tools and the
    # subagent init wrote; the planner tier no tool at all; the executor only its five.
    requests = sim.requests()
    top_reqs = [r for r in requests if r["body"]["model"] == TOP_MODEL]
    tool_names = {t["name"] for r in top_reqs for t in r["body"].get("tools") or []}
    assert {"mcp__burnless__run", "mcp__burnless__consult", "mcp__burnless__usage"} <= tool_names
    assert any("burnless-executor" in orjson.dumps(r["body"]["messages"]).decode()
               for r in top_reqs), "Claude Code did not load the subagent init wrote"
    planner_reqs = [r for r in requests if r["body"]["model"] == "claude-opus-4-8"]
    assert planner_reqs and all(not r["body"].get("tools") for r in planner_reqs)
    executor_tools = {t["name"] for r in requests if r["body"]["model"] == "claude-sonnet-4-6"
                      for t in r["body"].get("tools") or []}
    assert executor_tools == {"Read", "Edit", "Write", "Glob", "Grep"}

    # consult: answered by the planner tier, in text, recorded in the session.
    question = "Should notes be plain text or Markdown?"
    args = orjson.dumps({"question": question, "session": "s-mcp"}).decode()
    result = _top_level(claude, ws, sim, home, f"call tool mcp__burnless__consult with {args}")
    top = _envelope(result["result"])
    assert top["status"] == "ok" and top["summary"].startswith("mcp__burnless__consult returned")
    records = [r for r in ws.ledger() if r.get("session") == "s-mcp"]
    consult_rec = records[-1]
    assert (consult_rec["role"], consult_rec["tier"], consult_rec["model"]) == (
        "execution", "plan", "claude-opus-4-8")
    assert consult_rec["status"] == "ok" and len(records) == 3  # no plan before a consultation
    assert consult_rec["run_id"] in top["summary"]
    assert ws.capsules("s-mcp")[-1]["files"] == []
    # The .mcp.json Claude Code used is the one init wrote.
    assert (ws.root / ".mcp.json").read_bytes() == mcp_json
