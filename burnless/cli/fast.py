"""Plain command lines without typer: ``burnless run ...`` and ``burnless serve ...`` are read
here, so they do not pay for importing typer and building the command table (about a fifth of a
run's start-up, and of the gateway's).

``main`` takes only what it can read exactly as click would: ``[--config F] [--workspace D]``
then ``run TASK`` or ``serve`` with that command's own options (long or short, ``--opt=value``,
``--`` before a TASK starting with ``-``). Anything else — ``--help``, an unknown or misspelled
option, a missing TASK or value, a number that does not parse — goes to the typer application,
which says what is wrong in the usual style. ``tests/unit/test_fast_cli.py`` checks the reading
against click's on the same command lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from burnless.cli import console

# A command's options: name -> (keyword, kind); kind "flag", "value", "int" or "many"
# (repeatable); and whether it takes one positional argument (its keyword).
_RUN: dict[str, tuple[str, str]] = {
    "--session": ("session", "value"), "-s": ("session", "value"),
    "--tier": ("tier", "value"), "-t": ("tier", "value"),
    "--cascade": ("cascade", "flag"), "--no-plan": ("no_plan", "flag"),
    "--label": ("label", "many"), "-l": ("label", "many"),
    "--verify": ("verify", "many"), "--timeout": ("timeout", "float"),
    "--repin": ("repin", "flag"), "--json": ("json_", "flag"), "--dry-run": ("dry_run", "flag"),
    "--config": ("config", "value"),
}
_SERVE: dict[str, tuple[str, str]] = {
    "--host": ("host", "value"), "--port": ("port", "int"),
    "--insecure-no-auth": ("insecure_no_auth", "flag"), "--config": ("config", "value"),
}
COMMANDS: dict[str, tuple[dict[str, tuple[str, str]], str | None]] = {
    "run": (_RUN, "task"), "serve": (_SERVE, None),
}
_ROOT = ("--config", "--workspace")


def main(argv: Sequence[str]) -> None:
    """Run ``argv`` (``sys.argv[1:]``) without typer when it is a plain command line of a
    command here; return (having done nothing) when it is not."""
    parsed = parse(argv)
    if parsed is None:
        return
    command, root, kw = parsed
    for name, value in root.items():  # what the root command's options do
        os.environ["BURNLESS_CONFIG" if name == "--config" else "BURNLESS_WORKSPACE"] = value
    console.setup_process()
    with console.errors_to_exit():
        code = _RUNNERS[command](kw)
    sys.stdout.flush()
    sys.exit(code)


def _run(kw: dict[str, Any]) -> int:
    from burnless.cli.runturn import execute

    return execute(**kw)


def _serve(kw: dict[str, Any]) -> int:
    serve(**kw)
    return 0


def serve(*, host: str | None, port: int | None, insecure_no_auth: bool, config: str | None
          ) -> None:
    """``burnless serve``: the gateway and the metrics endpoints, in the foreground."""
    from burnless.config import load_config
    from burnless.gateway.app import serve as run_server

    cfg = load_config(config)
    run_server(cfg, host or cfg.metrics.host, cfg.metrics.port if port is None else port,
               insecure_no_auth=insecure_no_auth)


_RUNNERS = {"run": _run, "serve": _serve}


def parse(argv: Sequence[str]) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """(command, root options, the command's keywords) of a plain command line, else None."""
    root: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] not in COMMANDS:
        name, value, i = _option(argv, i, {n: ("", "value") for n in _ROOT})
        if name is None or value is None:
            return None
        root[name] = value
    if i >= len(argv):
        return None
    command = argv[i]
    options, positional = COMMANDS[command]
    kw: dict[str, Any] = {key: (False if kind == "flag" else None)
                          for key, kind in options.values()}
    arg: str | None = None
    i += 1
    only_args = False
    while i < len(argv):
        token = argv[i]
        if only_args or token == "-" or not token.startswith("-"):
            if positional is None or arg is not None:
                return None  # an argument too many: typer says so
            arg, i = token, i + 1
            continue
        if token == "--":
            only_args, i = True, i + 1
            continue
        name, value, i = _option(argv, i, options)
        if name is None:
            return None
        key, kind = options[name]
        if kind == "flag":
            if value is not None:
                return None  # --json=yes: click refuses it
            kw[key] = True
        elif value is None:
            return None
        elif kind == "many":
            kw[key] = [*(kw[key] or ()), value]
        elif kind in ("float", "int"):
            try:
                kw[key] = float(value) if kind == "float" else int(value)
            except ValueError:
                return None
        else:
            kw[key] = value
    if positional is not None:
        if arg is None:
            return None
        kw[positional] = arg
    return command, root, kw


def _option(argv: Sequence[str], i: int, names: dict[str, tuple[str, str]]
            ) -> tuple[str | None, str | None, int]:
    """(name, its value or None, the next index) of the option at ``argv[i]``; name None when
    it is not one of ``names``. A value is ``--name=value`` or the next argument, for options
    that take one."""
    token = argv[i]
    name, eq, attached = token.partition("=")
    if eq and name.startswith("--"):
        return (name, attached, i + 1) if name in names else (None, None, i + 1)
    if token not in names:
        return None, None, i + 1
    if names[token][1] == "flag":
        return token, None, i + 1
    if i + 1 >= len(argv):
        return None, None, i + 1  # a missing value: typer says so
    return token, argv[i + 1], i + 2
