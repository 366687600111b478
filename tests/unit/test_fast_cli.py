"""Plain ``burnless run`` and ``serve`` command lines without typer (``burnless.cli.fast``): it
reads exactly what click reads, hands everything else to the typer application, and does not
import typer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from burnless.cli.fast import parse
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
    ["serve"],
    ["serve", "--port", "0", "--host", "127.0.0.1"],
    ["serve", "--port=4357", "--insecure-no-auth", "--config", "c.yaml"],
    ["serve", "--port", "-1"],  # read; serve refuses the port
    ["serve", "--port", "80x"],
    ["serve", "extra"],
    ["serve", "--insecure-no-auth=1"],
    ["serve", "--help"],
]


def click_reads(argv: list[str]) -> dict[str, Any] | None:
    """What the typer command receives for ``argv`` (after its name), None for an error."""
    import typer

    from burnless.cli import app, register

    register([argv[0]])
    command = typer.main.get_command(app).commands[argv[0]]  # type: ignore[attr-defined]
    try:
        ctx = command.make_context(argv[0], list(argv[1:]), resilient_parsing=False)
    except BaseException:  # a usage error, or --help (click exits)
        return None
    params = dict(ctx.params)
    for many in ("label", "verify"):
        if many in params:
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
        assert mine == (argv[0], {}, theirs)


def test_root_options_before_run_are_read_too() -> None:
    assert parse(["--config", "c.yaml", "--workspace=w", "run", "x"]) == (
        "run", {"--config": "c.yaml", "--workspace": "w"},
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


def test_a_plain_serve_does_not_import_typer(ws: Workspace, tmp_path: Path) -> None:
    import re
    import signal
    import urllib.request

    ws.tiers(silver="honest")
    out = tmp_path / "modules.txt"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(out)!r}, 'w').write("
            "' '.join(m for m in ('typer', 'click', 'rich') if m in sys.modules)))\n"
            "sys.argv = ['burnless', 'serve', '--port', '0']\n"
            "from burnless.entry import main\nmain()\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ws.root, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, line
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    assert p.returncode == 0
    assert out.read_text() == ""
