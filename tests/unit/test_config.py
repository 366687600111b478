"""Configuration: discovery, global defaults, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnless.config import load_config
from burnless.errors import ConfigError
from tests.conftest import Workspace


def test_found_by_walking_up_from_a_subdirectory(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    sub = ws.root / "src" / "deep"
    sub.mkdir(parents=True)
    cfg = load_config(cwd=sub)
    assert cfg.workspace == ws.root and cfg.state_dir == ws.state


def test_global_defaults_are_overridden_by_the_project(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        "tiers:\n  silver: {command: 'echo global', timeout: 30}\n  gold: {command: echo}\n"
        "budget: {max_cost_per_day: 5}\n")
    monkeypatch.setenv("BURNLESS_HOME", str(home))
    ws.config("tiers:\n  silver: {command: 'echo project'}\nbudget: {max_cost_per_task: 1}\n")
    cfg = load_config(cwd=ws.root)
    assert cfg.tiers["silver"].command == "echo project"
    assert cfg.tiers["silver"].timeout == 30  # merged key by key
    assert "gold" in cfg.tiers and cfg.planner == "gold"
    assert cfg.budget.max_cost_per_day == 5 and cfg.budget.max_cost_per_task == 1


def test_xdg_config_home_is_the_default_home(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BURNLESS_HOME")
    xdg = tmp_path / "xdg"
    (xdg / "burnless").mkdir(parents=True)
    (xdg / "burnless" / "config.yaml").write_text("tiers:\n  bronze: {command: echo}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    ws.config("planner: null\n")  # tiers come from the global file
    assert set(load_config(cwd=ws.root).tiers) == {"bronze"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers:\n  silver: {command: [unclosed\n",
         "invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
         "sequence at line 2)"),
        ("tiers: {}\n", "tiers: must be a mapping of tier names"),
        ("planner: null\n", "the 'tiers' section is required"),
        ("tiers:\n  silver: {command: x}\nexecutor: slver\n",
         "executor: names tier 'slver', which is not defined; did you mean 'silver'?"),
        ("tiers:\n  silver: {command: x, timeout: soon}\n",
         "config.yaml:2: tiers.silver.timeout: must be a number, not 'soon'"),
        ("tiers:\n  silver: {command: x}\nrouting:\n  rules:\n    - {regex: '(', tier: silver}\n",
         "config.yaml:5: routing.rules.0.regex: invalid regex"),
        ("tiers:\n  silver: {command: x}\nbudgett: {}\n",
         "config.yaml:3: budgett: unknown key; did you mean 'budget'?"),
        ("tiers:\n  silver: {command: x, api: anthropic}\n", "give exactly one of 'command'"),
        ("tiers:\n  silver: {command: x}\n  silver: {command: y}\n",
         "config.yaml:3: tiers.silver: duplicate key"),
        ("tiers:\n  silver: {command: 'x {prompt}'}\n", "set input: arg"),
        ("- just\n- a list\n", "must be a mapping of keys"),
    ],
)
def test_bad_configs_say_where_and_what(ws: Workspace, text: str, message: str) -> None:
    ws.config(text)
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=ws.root)
    assert message in str(exc.value)


def test_cli_reports_a_config_error_as_exit_2(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: [unclosed\n")
    p = ws.run("route", "x")
    assert p.returncode == 2 and "invalid YAML" in p.stderr and "Traceback" not in p.stderr


def test_explicit_config_flag_and_env(ws: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    other.write_text("tiers:\n  bronze: {command: echo}\n")
    ws.tiers(silver="honest")
    assert ws.run("--config", str(other), "route", "x").stdout.strip() == "bronze"
    assert ws.run("route", "x", "--config", str(other)).stdout.strip() == "bronze"
    assert ws.run("route", "x", env={"BURNLESS_CONFIG": str(other)}).stdout.strip() == "bronze"
    p = ws.run("route", "x", "--config", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "config file not found" in p.stderr
