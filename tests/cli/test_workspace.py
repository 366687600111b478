"""--config chooses the configuration only; the workspace is the current project, or
--workspace / BURNLESS_WORKSPACE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import fake, quoted


def burnless(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "burnless", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A config kept apart from any project, as CI jobs share one."""
    ci = tmp_path / "ci"
    ci.mkdir()
    (ci / "burnless.yaml").write_text(
        f"tiers:\n  silver: {{command: {quoted(fake('honest'))}}}\nplanner: null\n")
    return ci / "burnless.yaml"


def _state_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".burnless") if p.is_dir())


def test_config_elsewhere_runs_in_the_project_and_writes_state_there(
    tmp_path: Path, shared: Path
) -> None:
    project = tmp_path / "project"
    (project / ".burnless").mkdir(parents=True)
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    p = burnless("--config", str(shared), "run", "write out.txt hello", "--json", cwd=sub)
    assert p.returncode == 0, p.stderr
    assert orjson.loads(p.stdout)["files"] == ["out.txt"]
    assert (project / "out.txt").read_text() == "hello"  # the worker ran in the project
    assert (project / ".burnless" / "ledger.jsonl").is_file()
    assert _state_dirs(tmp_path) == [project / ".burnless"]  # nothing beside the config


def test_config_elsewhere_and_no_project_uses_the_cwd(tmp_path: Path, shared: Path) -> None:
    here = tmp_path / "checkout"
    here.mkdir()
    p = burnless("run", "write a.txt x", cwd=here, env={"BURNLESS_CONFIG": str(shared)})
    assert p.returncode == 0, p.stderr
    assert (here / "a.txt").is_file() and (here / ".burnless" / "ledger.jsonl").is_file()
    assert _state_dirs(tmp_path) == [here / ".burnless"]


def test_route_with_a_config_elsewhere_writes_nothing(tmp_path: Path, shared: Path) -> None:
    here = tmp_path / "checkout"
    here.mkdir()
    p = burnless("--config", str(shared), "route", "x", cwd=here)
    assert p.returncode == 0 and p.stdout.strip() == "silver", p.stderr
    assert _state_dirs(tmp_path) == []


def test_workspace_option_and_env_choose_the_project(tmp_path: Path, shared: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    p = burnless("--workspace", str(project), "--config", str(shared), "run", "write a.txt 1",
                 cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert (project / "a.txt").is_file() and not (elsewhere / "a.txt").exists()
    p = burnless("run", "write b.txt 2", cwd=elsewhere,
                 env={"BURNLESS_WORKSPACE": str(project), "BURNLESS_CONFIG": str(shared)})
    assert p.returncode == 0, p.stderr
    assert (project / "b.txt").is_file()
    assert _state_dirs(tmp_path) == [project / ".burnless"]
    assert len((project / ".burnless" / "ledger.jsonl").read_text().splitlines()) == 2


def test_workspace_without_config_finds_the_projects_own(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = burnless("--workspace", str(project), "init", cwd=elsewhere)
    assert p.returncode == 2 and "burnless: error: workspace" in p.stderr
    assert "does not exist" in p.stderr
    project.mkdir()
    p = burnless("--workspace", str(project), "init", "--json", cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert (project / ".burnless" / "config.yaml").is_file()
    assert not (elsewhere / ".burnless").exists()
    p = burnless("--workspace", str(project), "doctor", "--json", cwd=elsewhere)
    checks = {c["name"]: c for c in orjson.loads(p.stdout)["checks"]}
    assert checks["config"]["detail"].startswith(str(project / ".burnless" / "config.yaml"))
    assert str(project / ".burnless") in checks["state dir"]["detail"]
    assert checks["workspace"]["detail"].startswith(f"{project} (workers run here")


def test_python_api_config_path_keeps_the_workspace(tmp_path: Path, shared: Path) -> None:
    from burnless import BurnlessAgent

    project = tmp_path / "project"
    project.mkdir()
    agent = BurnlessAgent(shared, cwd=project)
    assert agent.config.workspace == project and agent.config.path == shared
    assert BurnlessAgent(shared, workspace=project).config.workspace == project
