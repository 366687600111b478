"""`burnless init --claude-code`: .mcp.json and a subagent, merged, never overwritten without
--force; the example's lean Claude Code flags checked against the installed client."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import yaml

AGENT = Path(".claude/agents/burnless-executor.md")


def burnless(root: Path, *args: str, path_prefix: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "burnless", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def fake_claude(bindir: Path, flags: list[str]) -> Path:
    """A `claude` whose --help lists only ``flags`` (and that fails on anything else)."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "claude"
    listed = "\\n".join(f"  {f} <x>   something" for f in flags)
    help_text = f"Usage: claude\\nOptions:\\n{listed}\\n"
    script.write_text(f'#!/bin/sh\nif [ "$1" = "--help" ]; then printf "{help_text}"; exit 0; fi\n'
                      "exit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bindir


def test_fresh_project_gets_config_mcp_entry_and_subagent(tmp_path: Path) -> None:
    p = burnless(tmp_path, "init", "--claude-code")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / ".burnless/config.yaml").is_file()
    mcp = orjson.loads((tmp_path / ".mcp.json").read_bytes())
    entry = mcp["mcpServers"]["burnless"]
    assert entry["type"] == "stdio" and entry["args"][-1] == "mcp"
    agent = (tmp_path / AGENT).read_text()
    front = yaml.safe_load(agent.split("---\n")[1])
    assert front["name"] == "burnless-executor"
    assert front["model"] == "haiku"  # the cheapest Claude model of the example's ladder
    assert "mcp__burnless__run" in front["tools"] and "mcp__burnless__consult" in front["tools"]
    assert "Write" not in front["tools"] and "Edit" not in front["tools"]
    assert "When to delegate" in agent and "When to consult" in agent
    # Each file is printed, with how to undo it.
    assert "created .mcp.json  (undo: rm .mcp.json)" in p.stdout
    assert f"created {AGENT}  (undo: rm {AGENT})" in p.stdout
    assert "    | name: burnless-executor" in p.stdout
    # The entry starts this installation's burnless.
    command = [entry["command"], *entry["args"]]
    probe = subprocess.run([*command[:-1], "--version"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert probe.returncode == 0 and probe.stdout.startswith("burnless ")


def test_an_existing_mcp_json_is_merged_and_never_clobbered(tmp_path: Path) -> None:
    mine = {"mcpServers": {"other": {"command": "other-server", "args": ["--x"]}},
            "note": "mine"}
    (tmp_path / ".mcp.json").write_bytes(orjson.dumps(mine))
    (tmp_path / ".burnless").mkdir()
    (tmp_path / ".burnless/config.yaml").write_text("tiers: {silver: {command: mine, "
                                                     "model: claude-sonnet-4-6}}\n")
    p = burnless(tmp_path, "init", "--claude-code", "--json")
    assert p.returncode == 0, p.stderr
    out = orjson.loads(p.stdout)
    assert {c["path"]: c["action"] for c in out["claude_code"]} == {
        ".mcp.json": "merged", str(AGENT): "created"}
    merged = orjson.loads((tmp_path / ".mcp.json").read_bytes())
    assert merged["note"] == "mine" and merged["mcpServers"]["other"] == mine["mcpServers"]["other"]
    assert "burnless" in merged["mcpServers"]
    # The user's config is kept; the subagent follows its executor's model.
    assert (tmp_path / ".burnless/config.yaml").read_text().startswith("tiers: {silver:")
    assert "model: sonnet" in (tmp_path / AGENT).read_text()
    # Again: nothing changes.
    p = burnless(tmp_path, "init", "--claude-code", "--json")
    assert {c["action"] for c in orjson.loads(p.stdout)["claude_code"]} == {"unchanged"}
    # A different burnless entry: refused without --force, replaced with it (others kept).
    merged["mcpServers"]["burnless"] = {"command": "old-burnless"}
    (tmp_path / ".mcp.json").write_bytes(orjson.dumps(merged))
    before = (tmp_path / ".mcp.json").read_bytes()
    p = burnless(tmp_path, "init", "--claude-code")
    assert p.returncode == 2 and "--force" in p.stderr
    assert (tmp_path / ".mcp.json").read_bytes() == before
    p = burnless(tmp_path, "init", "--claude-code", "--force")
    assert p.returncode == 0, p.stderr
    after = orjson.loads((tmp_path / ".mcp.json").read_bytes())
    assert after["mcpServers"]["burnless"]["command"] != "old-burnless"
    assert after["mcpServers"]["other"] == mine["mcpServers"]["other"]


def test_broken_mcp_json_and_a_users_agent_file_need_force(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text("{not json")
    (tmp_path / AGENT).parent.mkdir(parents=True)
    (tmp_path / AGENT).write_text("my own agent\n")
    p = burnless(tmp_path, "init", "--claude-code")
    assert p.returncode == 2 and "not valid JSON" in p.stderr
    assert (tmp_path / ".mcp.json").read_text() == "{not json"
    (tmp_path / ".mcp.json").unlink()
    p = burnless(tmp_path, "init", "--claude-code")
    assert p.returncode == 2 and "differs from what burnless writes" in p.stderr
    assert (tmp_path / AGENT).read_text() == "my own agent\n"
    assert not (tmp_path / ".mcp.json").exists()  # refused before writing anything
    (tmp_path / ".mcp.json").write_text("{not json")
    p = burnless(tmp_path, "init", "--claude-code", "--force")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / ".mcp.json.bak").read_text() == "{not json"
    assert (tmp_path / f"{AGENT}.bak").read_text() == "my own agent\n"
    assert "burnless" in orjson.loads((tmp_path / ".mcp.json").read_bytes())["mcpServers"]


def test_init_leaves_out_lean_flags_the_installed_claude_lacks(tmp_path: Path) -> None:
    old = fake_claude(tmp_path / "bin", [
        "--print", "--output-format", "--model", "--permission-mode",
        "--exclude-dynamic-system-prompt-sections"])
    root = tmp_path / "proj"
    root.mkdir()
    p = burnless(root, "init", path_prefix=old)
    assert p.returncode == 0, p.stderr
    assert ("does not accept --disable-slash-commands, --strict-mcp-config, --tools"
            in p.stdout), p.stdout
    text = (root / ".burnless/config.yaml").read_text()
    cfg = yaml.safe_load(text)
    for name in ("plan", "gold", "silver", "bronze"):
        command = cfg["tiers"][name]["command"]
        assert "--tools" not in command and "--disable-slash-commands" not in command
        assert "--strict-mcp-config" not in command
        assert "--exclude-dynamic-system-prompt-sections" in command
        assert "--append-system-prompt-file {prefix_file}" in command
    doctor = burnless(root, "doctor", "--json", path_prefix=old)
    checks = {c["name"]: c for c in orjson.loads(doctor.stdout)["checks"]}
    assert checks["flags silver"]["status"] == "ok"
    # A flag the client lacks in a tier's command fails doctor, by name.
    (root / ".burnless/config.yaml").write_text(
        "tiers:\n  silver: {command: 'claude -p --model claude-haiku-4-5 --tools Read'}\n")
    doctor = burnless(root, "doctor", "--json", path_prefix=old)
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in orjson.loads(doctor.stdout)["checks"]}
    assert checks["flags silver"]["status"] == "fail"
    assert "--tools" in checks["flags silver"]["detail"]
