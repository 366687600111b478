"""The Python API checks its arguments: a wrong type is a UsageError naming the argument,
before anything is dispatched (issue: a bare string for labels turned into characters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from burnless import BurnlessAgent, UsageError
from tests.conftest import Workspace, fake, quoted


@pytest.fixture
def agent(ws: Workspace, tmp_path: Path) -> BurnlessAgent:
    rec = tmp_path / "rec"
    ws.config(
        f"tiers:\n  silver: {{command: {quoted(fake('echo', '--record', str(rec)))}}}\n"
        f"  local: {{command: {quoted(fake('echo', '--record', str(rec)))}, local: true}}\n"
        "planner: null\n")
    return BurnlessAgent(cwd=ws.root)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"labels": "sensitive"}, "labels"),
    ({"labels": [1]}, "labels"),
    ({"verify": "true"}, "verify"),
    ({"verify": [b"true"]}, "verify"),
    ({"timeout": "5"}, "timeout"),
    ({"timeout": True}, "timeout"),
    ({"tier": 3}, "tier"),
    ({"cascade": "yes"}, "cascade"),
    ({"plan": 0}, "plan"),
    ({"repin": None}, "repin"),
    ({"dry_run": "no"}, "dry_run"),
    ({"session_id": 7}, "session_id"),
    ({"progress": "tty"}, "progress"),
])
def test_a_wrong_argument_type_is_a_usage_error_naming_it(
    agent: BurnlessAgent, ws: Workspace, tmp_path: Path, kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(UsageError, match=rf"\b{argument}\b"):
        agent.run("summarise the payroll file", **kwargs)
    assert not (tmp_path / "rec").exists()  # nothing was dispatched
    assert ws.ledger() == []


@pytest.mark.parametrize("task", [b"do it", 42, None, ["do", "it"]])
def test_a_task_that_is_not_text_is_a_usage_error(agent: BurnlessAgent, task: Any) -> None:
    with pytest.raises(UsageError, match=r"\btask\b"):
        agent.run(task)


def test_labels_as_a_list_still_route_sensitive_work_locally(agent: BurnlessAgent) -> None:
    result = agent.run("summarise the payroll file", labels=["sensitive"])
    assert result.tier == "local"


def test_route_and_session_methods_check_their_arguments(agent: BurnlessAgent) -> None:
    with pytest.raises(UsageError, match=r"\blabels\b"):
        agent.route("x", labels="sensitive")
    with pytest.raises(UsageError, match=r"\btask\b"):
        agent.route(b"x")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"\bsession_id\b"):
        agent.next_prompt(3)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"\bsession_id\b"):
        agent.compact(None)  # type: ignore[arg-type]


def test_a_task_above_max_task_bytes_is_refused_before_anything_is_sent(
        ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo', '--record', str(rec)))}}}\n"
              "planner: null\npolicy: {max_task_bytes: 1000}\n")
    p = ws.run("run", "-", input="x" * 1001)
    assert p.returncode == 2 and "max_task_bytes" in p.stderr and "1,001 bytes" in p.stderr
    assert not rec.exists() and ws.ledger() == []
    assert ws.run("run", "-", input="x" * 1000).returncode == 0


def test_a_huge_config_is_refused_quickly(ws: Workspace) -> None:
    import time

    ws.config("tiers:\n  silver: {command: echo}\n" + "# padding\n" * 200_000)
    t = time.monotonic()
    p = ws.run("doctor")
    assert p.returncode == 1 and "larger than 1 MiB" in p.stdout + p.stderr
    assert time.monotonic() - t < 10
