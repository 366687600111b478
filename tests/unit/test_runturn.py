"""``burnless run``'s path without typer (``burnless.cli.runturn``): it reads exactly what
click reads from a plain command line, hands everything else to the typer application, and
does not import typer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from burnless.cli.runturn import parse
from tests.conftest import Workspace

CASES = [
    ["run", "fix it"],
    ["run", "fix it", "--session", "s1", "--tier", "bronze", "--json"],
    ["run", "-s", "s1", "-t", "gold", "fix it", "--cascade", "--no-plan", "--repin"],
    ["run", "fix it", "--label", "a", "-l", "b", "--verify", "pytest -q", "--verify", "true"],
    ["run", "fix it", "--timeout", "2.5", "--dry-run", "--config", "c.yaml"],
    ["run", "--session=s2", "--timeout=7", "fix it"],
    ["run", "-", "--session", "-odd-session-"],
    ["run", "--", "-starts with a dash"],
    ["run", "fix it", "--session", "a", "--session", "b"],  # the last one wins, as in click
    ["run", "--timeout", "inf", "x"],  # parsed; execute refuses it
    # Not plain: the typer application answers (an error, or help).
    ["run"],
    ["run", "a", "b"],
    ["run", "--bogus", "x"],
    ["run", "x", "--json=yes"],
    ["run", "x", "--timeout", "soon"],
    ["run", "x", "--session"],
    ["run", "-sX", "x"],
    ["run", "--help"],
    ["run", "-h", "x"],
    ["run", "-5"],
    ["run", "x", "--workspace", "w"],
]


def click_reads(argv: list[str]) -> dict[str, Any] | None:
    """What the typer command receives for ``argv`` (after ``run``), None for an error."""
    import typer

    from burnless.cli import app, register

    register(["run"])
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    try:
        ctx = run.make_context("run", list(argv[1:]), resilient_parsing=False)
    except Exception:  # a usage error, or --help (click exits)
        return None
    params = dict(ctx.params)
    for many in ("label", "verify"):
        params[many] = list(params[many]) if params[many] else None
    return params


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a)[:40])
def test_it_reads_what_click_reads_or_leaves_it_to_typer(argv: list[str]) -> None:
    """Whatever it reads, click reads the same; whatever click refuses, it leaves to typer
    (it may leave valid lines to typer too, such as ``-sX``: only slower)."""
    mine = parse(argv)
    theirs = click_reads(argv)
    if theirs is None:
        assert mine is None
    if mine is not None:
        assert mine == ({}, theirs)


def test_root_options_before_run_are_read_too() -> None:
    assert parse(["--config", "c.yaml", "--workspace=w", "run", "x"]) == (
        {"--config": "c.yaml", "--workspace": "w"},
        {"task": "x", "session": None, "tier": None, "cascade": False, "no_plan": False,
         "label": None, "verify": None, "timeout": None, "repin": False, "json_": False,
         "dry_run": False, "config": None})
    assert parse(["--version", "run", "x"]) is None
    assert parse(["--config"]) is None


def test_a_plain_run_does_not_import_typer(ws: Workspace, tmp_path: Path) -> None:
    ws.tiers(silver="honest")
    out = tmp_path / "modules.txt"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(out)!r}, 'w').write("
            "' '.join(m for m in ('typer', 'click', 'rich') if m in sys.modules)))\n"
            "sys.argv = ['burnless', 'run', 'do it', '--session', 's', '--json']\n"
            "from burnless.entry import main\nmain()\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ws.root, capture_output=True,
                       text=True, env={**os.environ})
    assert p.returncode == 0, p.stderr
    assert '"status": "ok"' in p.stdout
    assert out.read_text() == ""
    # An error still comes from the typer application, in its style.
    p = subprocess.run([sys.executable, "-m", "burnless", "run", "--bogus", "x"], cwd=ws.root,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "No such option: --bogus" in p.stderr
