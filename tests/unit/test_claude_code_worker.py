"""Claude Code as a worker: lean flags dropped from config text, auto memory off, and the
attribution header turned off for any server but Anthropic's (checked through a real
dispatch)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from burnless.workers import claude_code
from tests.conftest import WORKER, Workspace, quoted

EXAMPLE = Path(claude_code.__file__).parent.parent / "example" / "config.yaml"


def test_drop_flags_keeps_the_yaml_valid_and_the_other_flags() -> None:
    text = EXAMPLE.read_text()
    for missing in (["--tools"], ["--disable-slash-commands"],
                    ["--exclude-dynamic-system-prompt-sections", "--tools"],
                    list(claude_code.LEAN_FLAGS)):
        lean = claude_code.drop_flags(text, missing)
        cfg = yaml.safe_load(lean)  # still valid YAML
        for name in ("plan", "gold", "silver", "bronze"):
            argv = cfg["tiers"][name]["command"].split()
            assert not set(missing) & set(argv), (missing, argv)
            assert argv[:2] == ["claude", "-p"] and "{prefix_file}" in argv
            kept = [f for f in claude_code.LEAN_FLAGS if f not in missing]
            assert all(f in argv for f in kept if f in text.split("bronze:")[1])
        assert cfg["tiers"]["checks"] == yaml.safe_load(text)["tiers"]["checks"]
    drop = claude_code.drop_flags
    assert drop("claude -p --tools=Read,Edit --x", ["--tools"]) == "claude -p --x"
    assert drop("claude --toolsy 1 --tools ''", ["--tools"]) == "claude --toolsy 1"


@pytest.mark.parametrize(("url", "other"), [
    (None, False), ("", False), ("https://api.anthropic.com", False),
    ("https://api.anthropic.com/v1/", False), ("http://127.0.0.1:4357", True),
    ("https://gateway.example.com/anthropic", True), ("https://anthropic.com.evil.io", True),
])
def test_which_servers_are_not_anthropics(url: str | None, other: bool) -> None:
    assert claude_code.not_anthropic(url) is other
    env = {"ANTHROPIC_BASE_URL": url} if url is not None else {}
    out = claude_code.worker_env(["/opt/bin/claude", "-p"], env)
    assert (out.get(claude_code.ATTRIBUTION_ENV) == "0") is other
    # Not for another program, and never over the tier's own choice.
    assert claude_code.ATTRIBUTION_ENV not in claude_code.worker_env(["codex", "exec"], env)
    mine = {**env, claude_code.ATTRIBUTION_ENV: "1", claude_code.MEMORY_ENV: "0"}
    assert claude_code.worker_env(["claude"], mine) == mine


def test_auto_memory_is_off_for_claude_workers_unless_the_tier_says() -> None:
    # Auto memory writes outside the working directory and is ~3k tokens of system prompt.
    assert claude_code.worker_env(["/opt/bin/claude", "-p"], {}) == {
        claude_code.MEMORY_ENV: "1"}
    assert claude_code.worker_env(["codex", "exec"], {}) == {}
    assert claude_code.worker_env(["ollama", "run"], {"A": "b"}) == {"A": "b"}
    mine = {claude_code.MEMORY_ENV: "0"}
    assert claude_code.worker_env(["claude"], mine) == mine


def test_a_claude_worker_gets_auto_memory_and_the_local_header_off(ws: Workspace,
                                                                     tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    dump = tmp_path / "env.txt"
    script = bindir / "claude"
    script.write_text(f"#!/bin/sh\nenv > {dump}\nexec python3 {WORKER} --mode claude-json\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    ws.config(f"tiers:\n  silver: {{command: {quoted(str(script) + ' -p')}, "
              "env: {ANTHROPIC_BASE_URL: 'http://127.0.0.1:9'}}\n"
              f"  anthropic: {{command: {quoted(str(script) + ' -p')}, "
              "env: {ANTHROPIC_BASE_URL: 'https://api.anthropic.com'}}\n")
    assert ws.run("run", "write a.txt x", "--tier", "silver").returncode == 0
    seen = dump.read_text().splitlines()
    assert "CLAUDE_CODE_ATTRIBUTION_HEADER=0" in seen
    assert "CLAUDE_CODE_DISABLE_AUTO_MEMORY=1" in seen
    assert ws.run("run", "write b.txt x", "--tier", "anthropic").returncode == 0
    assert "CLAUDE_CODE_ATTRIBUTION_HEADER" not in dump.read_text()
    assert "CLAUDE_CODE_DISABLE_AUTO_MEMORY=1" in dump.read_text().splitlines()
