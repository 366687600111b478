"""Routing by example from the command line: explain, errors, learning, start-up cost."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.conftest import Workspace, fake

EXAMPLES = """\
routing:
  ladder: [bronze, silver, gold]
  examples:
    gold:
      - Design the architecture of the plugin system
      - Find the race condition in the payment scheduler
"""


def tiers(ws: Workspace, extra: str = "", mode: str = "honest") -> Workspace:
    cmd = orjson.dumps(fake(mode)).decode()
    return ws.config(f"tiers:\n  bronze: {{command: {cmd}}}\n  silver: {{command: {cmd}}}\n"
                     f"  gold: {{command: {cmd}}}\n  home: {{command: {cmd}, local: true}}\n"
                     + extra)


def test_route_explain_shows_the_nearest_examples_and_why(ws: Workspace) -> None:
    tiers(ws, EXAMPLES)
    (ws.state / "examples").mkdir()
    (ws.state / "examples" / "bronze.txt").write_text(
        "# easy\nFix the typo in the README\nRename the variable x in loop.py\n")
    p = ws.run("route", "fix a typo in the README", "--explain")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "tier: bronze" in out
    assert "examples → bronze:" in out and "(examples/bronze.txt:2)" in out
    assert "nearest examples (a vote counts at similarity >= 0.15):" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("  0.") or ln.startswith("  1.")]
    assert "'Fix the typo in the README'" in lines[0] and "votes bronze" in lines[0]
    assert any("below min_similarity" in ln for ln in lines)
    code, data = ws.json("route", "fix a typo in the README")
    assert code == 0 and data["tier"] == "bronze"
    assert data["examples"][0] == {
        "tier": "bronze", "text": "Fix the typo in the README", "kind": "example",
        "source": "examples/bronze.txt:2", "similarity": data["examples"][0]["similarity"],
        "vote": "bronze", "counted": True}
    assert 0.5 < data["examples"][0]["similarity"] <= 1


def test_without_examples_nothing_changes(ws: Workspace) -> None:
    tiers(ws)
    code, data = ws.json("route", "fix a typo in the README")
    assert data["reasons"] == ["default executor silver"] and data["examples"] == []


def test_the_ledger_records_why_the_examples_chose(ws: Workspace) -> None:
    tiers(ws, EXAMPLES)
    code, data = ws.json("run", "design the architecture of the billing system", "--no-plan")
    assert code == 0 and data["tier"] == "gold"
    rec = ws.ledger()[-1]
    assert rec["tier"] == "gold" and rec["route"]["reasons"][0].startswith("examples → gold")


def test_bad_example_settings_are_usage_errors(ws: Workspace) -> None:
    tiers(ws, "routing:\n  examples:\n    gld: [design it]\n")
    p = ws.run("route", "x")
    assert p.returncode == 2
    assert "routing.examples.gld: names tier 'gld', which is not defined; did you mean " \
           "'gold'?" in p.stderr
    tiers(ws, "routing:\n  min_similarity: 1.5\n")
    p = ws.run("route", "x")
    assert p.returncode == 2 and "routing.min_similarity: must be between 0 and 1" in p.stderr
    tiers(ws, "routing:\n  examples:\n    gold: ['  ']\n")
    p = ws.run("route", "x")
    assert p.returncode == 2 and "routing.examples.gold.0: is empty" in p.stderr
    tiers(ws)
    (ws.state / "examples").mkdir()
    (ws.state / "examples" / "golden.txt").write_text("design it\n")
    for args in (("route", "x"), ("run", "x", "--no-plan")):
        p = ws.run(*args)
        assert p.returncode == 2, p.stderr
        assert "golden.txt: names tier 'golden', which is not defined" in p.stderr
    assert ws.ledger() == []  # nothing was dispatched


def test_learning_from_audited_runs_and_never_from_sensitive_ones(ws: Workspace) -> None:
    tiers(ws, "routing:\n  learn: true\n  ladder: [bronze, silver, gold]\n"
              "policy:\n  sensitive_patterns: ['(?i)vault']\n")
    code, _ = ws.json("run", "write notes.txt hello world", "--tier", "bronze", "--no-plan")
    assert code == 0
    code, _ = ws.json("run", "write vault.txt the vault keys", "--no-plan", "--session", "v")
    assert code == 0  # served by the local tier
    code, data = ws.json("route", "write notes.txt hello there")
    assert data["tier"] == "bronze", data["reasons"]
    assert data["examples"][0]["source"].startswith("learned r-")
    stored = (ws.state / "cache" / "learned.json").read_text()
    assert "notes.txt" in stored and "vault" not in stored
    # A worker that escalates teaches that the tier was not enough.
    tiers(ws, "routing:\n  learn: true\n  ladder: [bronze, silver, gold]\n", mode="escalate")
    code, _ = ws.json("run", "untangle the event sourcing projections", "--tier", "bronze",
                      "--no-plan", "--session", "e")
    assert code == 1
    code, data = ws.json("route", "untangle the event sourcing projections again")
    assert data["tier"] == "silver" and data["examples"][0]["kind"] == "counter"


def _imports(ws: Workspace, *args: str) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", *args],
                          cwd=ws.root, capture_output=True, text=True, env=env).stderr


@pytest.mark.in_process
def test_a_config_without_examples_imports_nothing_of_it(ws: Workspace) -> None:
    tiers(ws)
    for args in (("route", "fix a typo"), ("run", "fix a typo", "--no-plan"), ("--help",)):
        err = _imports(ws, *args)
        assert "burnless.routing.router" in err or args == ("--help",)
        for module in ("burnless.routing.examples", "burnless.routing.learning",
                       "burnless.routing.embed", "sqlite3"):
            assert f" {module}\n" not in err, (args, module)
    tiers(ws, EXAMPLES)
    assert " burnless.routing.examples\n" in _imports(ws, "route", "fix a typo")
