"""``burnless init --cli codex|gemini`` and the ``doctor`` checks for those tiers: the model
pinned on the command line, and the Gemini CLI's project settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from burnless.config import load_config
from tests.conftest import Workspace


def burnless(root: Path, *args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "burnless", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """``codex`` and ``gemini`` programs on PATH (doctor only checks that they exist)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("codex", "gemini"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def doctor(root: Path, stubs: Path) -> dict[str, list[str]]:
    p = burnless(root, "doctor", "--json", path=stubs)
    out: dict[str, list[str]] = {}
    for c in orjson.loads(p.stdout)["checks"]:
        out.setdefault(c["status"], []).append(f"{c['name']}: {c['detail']}")
    return out


@pytest.mark.parametrize(
    ("cli", "models"),
    [
        ("codex", ("gpt-5.2-codex", "gpt-5.1-codex", "gpt-5.1-codex-mini")),
        ("gemini", ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")),
    ],
)
def test_init_writes_pinned_tiers_for_the_cli(
    tmp_path: Path, stubs: Path, cli: str, models: tuple[str, ...]
) -> None:
    p = burnless(tmp_path, "init", "--cli", cli, "--json")
    assert p.returncode == 0, p.stderr
    cfg = load_config(cwd=tmp_path)
    for name, model in zip(("plan", "gold", "silver", "bronze"), (models[0], *models),
                           strict=True):
        tier = cfg.tiers[name]
        assert tier.argv[0] == cli and tier.model == model
        assert "-m" in tier.argv and "{model}" in tier.argv
    if cli == "codex":
        assert "workspace-write" in cfg.tiers["silver"].argv  # writes need it
    assert cfg.tiers["checks"].local  # the rest of the example is unchanged
    assert (cfg.planner, cfg.executor) == ("plan", "silver")
    if cli == "codex":
        assert "read-only" in cfg.tiers["plan"].argv  # a plan changes nothing
    checks = doctor(tmp_path, stubs)
    assert "warn" not in checks, checks
    context_ok = "gemini context (plan, gold, silver, bronze): " in " ".join(checks["ok"])
    assert context_ok == (cli == "gemini")
    # Forcing back to Claude Code restores the example as shipped.
    assert burnless(tmp_path, "init", "--force").returncode == 0
    assert load_config(cwd=tmp_path).tiers["silver"].argv[0] == "claude"


def test_init_gemini_settings_are_merged_into_the_users_file(tmp_path: Path) -> None:
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    mine = {"ui": {"theme": "GitHub"}, "context": {"includeDirectoryTree": True}}
    settings.write_text(orjson.dumps(mine).decode())
    p = burnless(tmp_path, "init", "--cli", "gemini", "--json")
    assert p.returncode == 0, p.stderr
    res = orjson.loads(p.stdout)
    assert ".gemini/settings.json" in res["written"]
    assert any("context.includeDirectoryTree already set by you" in n for n in res["notes"])
    assert orjson.loads(settings.read_bytes()) == {
        "ui": {"theme": "GitHub"}, "context": {"includeDirectoryTree": True},
        "skills": {"enabled": False}}
    assert orjson.loads((tmp_path / ".gemini/settings.json.bak").read_bytes()) == mine


def test_init_leaves_a_settings_file_with_comments_alone(tmp_path: Path, stubs: Path) -> None:
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    text = '{\n  // my theme\n  "ui": {"theme": "GitHub"}\n}\n'
    settings.write_text(text)
    p = burnless(tmp_path, "init", "--cli", "gemini")
    assert p.returncode == 0, p.stderr
    assert settings.read_text() == text
    assert "left as it is" in p.stdout and '"includeDirectoryTree": false' in p.stdout
    [warning] = doctor(tmp_path, stubs)["warn"]
    assert "cannot read it as plain JSON" in warning


def test_init_refuses_an_unknown_cli(tmp_path: Path) -> None:
    p = burnless(tmp_path, "init", "--cli", "aider")
    assert p.returncode == 2 and "expected one of claude, codex, gemini" in p.stderr
    assert not (tmp_path / ".burnless" / "config.yaml").exists()


def test_doctor_warns_on_unpinned_codex_and_gemini_tiers(ws: Workspace, stubs: Path) -> None:
    ws.config(
        "tiers:\n"
        "  bare_codex: {command: 'codex exec', model: gpt-5-codex}\n"
        "  bare_gemini: {command: gemini, model: gemini-2.5-flash}\n"
        "  no_model: {command: 'codex exec -m {model}'}\n"
        "  pinned: {command: 'codex exec -c model=gpt-5-codex'}\n"
        "  pinned2: {command: 'gemini --model=gemini-2.5-flash'}\n"
        "  other: {command: 'claude -p'}\n"
    )
    checks = doctor(ws.root, stubs)
    warnings = "\n".join(checks["warn"])
    assert "tier bare_codex: its command does not pin a model: Codex's output" in warnings
    assert "tier bare_gemini: its command does not pin a model: the Gemini CLI's" in warnings
    assert "tier no_model: its command passes {model} but tiers.no_model.model is not" in warnings
    for name in ("pinned", "pinned2", "other"):
        assert f"tier {name}:" not in warnings
    # a Gemini tier and no project settings: what to add, and where
    assert "gemini context (bare_gemini, pinned2): context.includeDirectoryTree, skills." \
           "enabled not false" in warnings
    assert '{"context": {"includeDirectoryTree": false}, "skills": {"enabled": false}}' in warnings


def test_the_readme_shows_the_commands_init_writes(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent.parent / "README.md").read_text(encoding="utf-8")
    for cli in ("codex", "gemini"):
        root = tmp_path / cli
        root.mkdir()
        assert burnless(root, "init", "--cli", cli).returncode == 0
        command = load_config(cwd=root).tiers["silver"].command
        assert f'command: "{command}"' in readme, command
