"""The command line registers only the command it runs; help and errors still see them all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from burnless.cli import COMMANDS, invoked


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["run", "write a.txt"], "run"),
        (["--config", "x.yaml", "session", "list"], "session"),
        (["--config=x.yaml", "usage"], "usage"),
        (["--config", "run", "doctor"], "doctor"),  # "run" is --config's value here
        (["--help"], None),
        (["--version"], None),
        (["rnu", "x"], None),
        ([], None),
    ],
)
def test_invoked_names_the_command_after_root_options(argv: list[str], name: str | None) -> None:
    assert invoked(argv) == name


def _burnless(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "burnless", *args], capture_output=True,
                          text=True, timeout=60)


def test_help_lists_every_command() -> None:
    p = _burnless("--help")
    assert p.returncode == 0
    commands = p.stdout.split("Commands:")[1].split("Examples:")[0].splitlines()
    listed = {line.split()[0] for line in commands if line.strip()}
    assert listed == set(COMMANDS)


def test_a_mistyped_command_still_gets_a_suggestion() -> None:
    p = _burnless("rnu", "x")
    assert p.returncode == 2 and "Did you mean 'run'?" in p.stderr


def test_a_command_runs_with_only_itself_registered() -> None:
    p = _burnless("run", "--help")
    assert p.returncode == 0 and "Usage: burnless run" in p.stdout
    p = _burnless("sim", "--help")
    assert p.returncode == 0 and "serve" in p.stdout
