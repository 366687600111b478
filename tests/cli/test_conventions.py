"""Command-line conventions: one error style, help with examples and exit codes, --json on
every command that prints data, shell completion that costs nothing at start-up, one version,
the license that pyproject declares."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from burnless import __version__
from burnless.cli import COMMANDS
from burnless.errors import EXIT_MEANINGS
from tests.conftest import Workspace

ROOT = Path(__file__).resolve().parents[2]


def burnless(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "burnless", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("argv", [
    ["run"],                                   # a missing argument
    ["run", "x", "--bogus"],                   # an unknown option
    ["rnu", "x"],                              # an unknown command
    ["session", "bogus"],                      # an unknown subcommand
    ["serve", "--port", "abc"],                # a value of the wrong type
    ["usage", "--by"],                         # an option without its value
    ["usage", "--format", "xml"],              # burnless's own check
    ["--workspace", "/no/such/dir", "route", "x"],
    ["completion", "tcsh"],
])
def test_every_usage_error_is_one_burnless_error_line_and_exit_2(
    argv: list[str], tmp_path: Path
) -> None:
    p = burnless(*argv, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.splitlines()
    assert lines[-1].startswith("burnless: error: "), p.stderr
    assert not any(line.startswith("Error") for line in lines), p.stderr
    assert "Traceback" not in p.stderr


def test_a_usage_error_keeps_the_usage_line_and_the_help_hint(tmp_path: Path) -> None:
    p = burnless("rnu", "x", cwd=tmp_path)
    assert p.stderr.splitlines() == [
        "Usage: burnless [OPTIONS] COMMAND [ARGS]...",
        "Try 'burnless -h' for help.",
        "burnless: error: No such command 'rnu'. Did you mean 'run'?",
    ]


def test_no_arguments_print_the_help_and_exit_2(tmp_path: Path) -> None:
    p = burnless(cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("Usage: burnless [OPTIONS] COMMAND")


def test_root_help_has_examples_and_the_exit_code_table(tmp_path: Path) -> None:
    p = burnless("--help", cwd=tmp_path)
    assert p.returncode == 0
    help_text = p.stdout
    assert "Examples:\n    burnless demo" in help_text
    table = help_text.split("Exit codes:\n", 1)[1]
    for code, meaning in EXIT_MEANINGS.items():
        assert re.search(rf"^  +{code} +{re.escape(meaning)}$", table, re.MULTILINE), code
    assert "\x1b[" not in help_text  # plain text, no rich


def test_the_readme_exit_table_is_the_one_in_errors() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", readme, re.MULTILINE)
    assert {int(c): m for c, m in rows} == EXIT_MEANINGS


@pytest.mark.parametrize("command", [
    c for c in COMMANDS if c not in ("session", "sim")] + ["session list", "sim serve"])
def test_every_command_help_ends_with_examples(command: str, tmp_path: Path) -> None:
    p = burnless(*command.split(), "--help", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    examples = p.stdout.split("Examples:\n", 1)
    if command.startswith("session"):  # the group's help carries them
        examples = burnless("session", "--help", cwd=tmp_path).stdout.split("Examples:\n", 1)
    if command.startswith("sim"):
        examples = burnless("sim", "--help", cwd=tmp_path).stdout.split("Examples:\n", 1)
    assert len(examples) == 2, (command, p.stdout)
    assert examples[1].lstrip().startswith("burnless "), examples[1]


DATA_COMMANDS = ["init", "run", "route", "session list", "session show", "session prompt",
                 "session compact", "session rm", "usage", "metrics", "log", "doctor", "demo"]


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_every_command_that_prints_data_takes_json(command: str, tmp_path: Path) -> None:
    p = burnless(*command.split(), "--help", cwd=tmp_path)
    assert "--json" in p.stdout, command


def test_usage_json_is_format_json(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    assert ws.run("run", "write a.txt x").returncode == 0
    a, b = ws.run("usage", "--json"), ws.run("usage", "--format", "json")
    assert a.returncode == 0 and orjson.loads(a.stdout) == orjson.loads(b.stdout)
    p = ws.run("usage", "--json", "--format", "csv")
    assert p.returncode == 2 and "burnless: error: --json is --format json" in p.stderr


def test_log_and_metrics_json(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    code, res = ws.json("run", "write a.txt x")
    assert code == 0
    raw = ws.run("log", res["run_id"])
    code, log = ws.json("log", res["run_id"])
    assert code == 0 and log["text"] == raw.stdout and log["bytes"] == len(raw.stdout.encode())
    assert log["run_id"] == res["run_id"] and log["path"].endswith(f"{res['run_id']}.log")
    code, missing = ws.json("log", "r-20200101T000000-abcdef")
    assert code == 2 and missing["ok"] is False and "no log for run" in missing["error"]
    code, stats = ws.json("metrics")
    assert code == 0 and "burnless_calls_total" in stats["metrics"]
    assert stats["ledger"]["path"].endswith("ledger.jsonl")


# --------------------------------------------------------------------------- completion


def test_completion_prints_a_script_that_completes_commands_and_options(tmp_path: Path) -> None:
    p = burnless("completion", "bash", cwd=tmp_path)
    assert p.returncode == 0 and "complete -o default -F _burnless_completion burnless" in p.stdout
    for shell in ("zsh", "fish", "powershell"):
        assert burnless("completion", shell, cwd=tmp_path).stdout.strip()

    def ask(words: str) -> list[str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        q = burnless(cwd=tmp_path, env={"_BURNLESS_COMPLETE": "complete_bash",
                                        "COMP_WORDS": words, "COMP_CWORD": str(cword)})
        assert q.returncode == 0, q.stderr
        return q.stdout.split()

    assert ask("burnless us") == ["usage"]
    assert "--format" in ask("burnless usage --fo")
    assert set(ask("burnless session ")) >= {"list", "show", "prompt", "compact", "rm"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_in_a_real_bash(tmp_path: Path) -> None:
    script = burnless("completion", "bash", cwd=tmp_path).stdout
    (tmp_path / "bin").mkdir()
    shim = tmp_path / "bin" / "burnless"  # the console script, for any interpreter/venv
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m burnless \"$@\"\n")
    shim.chmod(0o755)
    (tmp_path / "completion.bash").write_text(script)
    p = subprocess.run(
        ["bash", "--norc", "-c", "source ./completion.bash; COMP_WORDS=(burnless doc); "
         "COMP_CWORD=1; _burnless_completion burnless; echo \"${COMPREPLY[@]}\""],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    assert p.returncode == 0 and p.stdout.split() == ["doctor"], p.stdout + p.stderr


def test_completion_install_writes_the_shell_start_up_file(tmp_path: Path) -> None:
    p = burnless("completion", "bash", "--install", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert "_BURNLESS_COMPLETE" in "".join(
        f.read_text() for f in (tmp_path / ".bash_completions").iterdir())
    assert ".bash_completions/burnless.sh" in (tmp_path / ".bashrc").read_text()


def test_help_and_run_load_no_completion_code(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", "--help"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    loaded = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    assert "burnless.cli" in loaded
    # (typer imports its own completion module whatever burnless does)
    assert not loaded & {"rich", "burnless.cli.completion"}


# --------------------------------------------------------------------------- packaging facts


def test_the_version_is_written_once() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["hatch"]["version"]["path"] == "burnless/__init__.py"
    assert __version__ == "0.2.0"
    hits = [p for p in ROOT.glob("burnless/**/*.py") if "0.2.0" in p.read_text()]
    assert hits == [ROOT / "burnless" / "__init__.py"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    assert sections[:2] == ["Unreleased", "0.2.0"]


def test_the_license_file_is_the_declared_one() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 11000  # the full text
    assert meta["authors"] == [{"name": "burnless developers"}]
    assert meta["keywords"] and meta["classifiers"] and meta["urls"]["Homepage"]


def test_no_comment_leans_on_a_document_the_repository_lacks() -> None:
    """Comments say what they mean: no "SPEC 14" or "SPEC section 9" pointing at a contract
    that is not in the repository (the README and docs/ are)."""
    cites = re.compile(r"\bSPEC(?: section)? \d+")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "burnless").rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
             if cites.search(line)]
    assert not found, found
