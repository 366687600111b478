"""The README's commands exist and work: set-up, quick start, CLI reference."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FAKE_BIN = Path(__file__).parent.parent / "fakes" / "bin"


def burnless(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "burnless", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=120)


def test_setup_commands_are_what_ci_runs() -> None:
    assert "pip install -e '.[dev]' && burnless demo" in README
    assert "pip install -e '.[dev]' && pytest" in README
    assert "pip install -e '.[dev]' && pytest" in (ROOT / ".ci" / "run").read_text()


def test_every_command_in_the_reference_exists(tmp_path: Path) -> None:
    block = README.split("## Command line", 1)[1].split("```", 2)[1]
    commands = {tuple(w for w in line.split()[1:3] if re.fullmatch(r"[a-z]+", w))
                for line in block.splitlines() if line.startswith("burnless ")}
    commands.discard(())
    assert ("run",) in commands and ("session", "list") in commands
    for cmd in sorted(commands):
        if cmd[0] == "session":
            cmd = ("session",)
        p = burnless(*cmd, "--help", cwd=tmp_path)
        assert p.returncode == 0, (cmd, p.stderr)
    assert burnless("--version", cwd=tmp_path).stdout.startswith("burnless ")


def test_quick_start_with_a_claude_on_path(tmp_path: Path) -> None:
    """init → doctor → run → session show → usage, with a fake `claude` first on PATH."""
    env = {"PATH": f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}"}
    assert burnless("init", cwd=tmp_path, env=env).returncode == 0
    doctor = burnless("doctor", "--json", cwd=tmp_path, env=env)
    checks = {c["name"]: c["status"] for c in orjson.loads(doctor.stdout)["checks"]}
    assert checks["config"] == "ok" and checks["tier gold"] == "ok"
    p = burnless("run", "write auth/session.py token = 1", "--session", "auth", "--json",
                 cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    res = orjson.loads(p.stdout)
    assert res["files"] == ["auth/session.py"] and res["audit"]["verdict"] == "passed"
    assert res["plan"] and [c["role"] for c in res["calls"]] == ["planning", "execution"]
    assert res["cost_source"] == "reported"
    assert (tmp_path / "auth/session.py").read_text() == "token = 1"
    show = burnless("session", "show", "auth", cwd=tmp_path, env=env)
    assert show.returncode == 0 and "2 capsules" in show.stdout
    usage = burnless("usage", "--period", "last7d", "--by", "tier", "--format", "json",
                     cwd=tmp_path, env=env)
    assert usage.returncode == 0
    tiers = {row["key"] if "key" in row else row.get("tier"): row
             for row in orjson.loads(usage.stdout)["rows"]}
    assert set(tiers) == {"plan", "silver"}  # the planner tier, then the executor


def test_seed_config_from_the_readme_loads_unchanged(tmp_path: Path) -> None:
    seed = README.split("the minimal config is:", 1)[1].split("```yaml", 1)[1].split("```")[0]
    (tmp_path / ".burnless").mkdir()
    (tmp_path / ".burnless" / "config.yaml").write_text(seed)
    p = burnless("route", "anything", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert orjson.loads(p.stdout)["tier"] == "silver"


def test_tier0_cascade_example_from_the_readme(tmp_path: Path) -> None:
    env = {"PATH": f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}"}
    assert burnless("init", cwd=tmp_path, env=env).returncode == 0
    p = burnless("run", "page audit of .burnless/checks/pages/clean.html", "--json",
                 cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    res = orjson.loads(p.stdout)
    assert res["tier"] == "checks" and res["cost_usd"] == 0.0
    assert [c["tier"] for c in res["calls"]] == ["checks"]  # no model was needed
    # An ambiguous page climbs to the next rung (the fake claude on bronze).
    p = burnless("run", "page audit of .burnless/checks/pages/ambiguous.html", "--json",
                 cwd=tmp_path, env=env)
    res = orjson.loads(p.stdout)
    assert [c["tier"] for c in res["calls"]][:2] == ["checks", "bronze"], res
    assert any("checks: escalate" in s for s in res["route"]["skipped"])
