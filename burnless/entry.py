"""The ``burnless`` program's entry point, before anything heavy is imported.

``burnless --help`` is the most common first command and prints the same text every time for a
given version and terminal width, so it is rendered once (by typer, through ``burnless.cli``)
and kept in ``$XDG_CACHE_HOME/burnless/``: later calls print it without importing typer (about
a third of the time a command takes). The key holds the version, the width click wraps to, and
the size and mtime of the CLI's modules, so an edited checkout never shows a stale text.
A ``run`` command line goes to the resident process when one runs (``burnless daemon start``;
``burnless.resident``), which runs it in a child with everything already imported. Otherwise a
plain ``burnless run`` or ``serve`` command line runs without typer either
(``burnless.cli.fast``).
Everything else goes straight to ``burnless.cli.main``.
"""

from __future__ import annotations

import os
import sys

from burnless import __version__, resident

_HELP = (["--help"], ["-h"])


def main() -> None:
    if sys.argv[1:] in _HELP:
        path = _help_path()
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            text = _render_and_keep(path)
        sys.stdout.write(text)
        sys.stdout.flush()
        raise SystemExit(0)
    if resident.delegates(sys.argv[1:]):  # a running `burnless daemon` runs it, if it takes it
        code = resident.delegate(sys.argv)
        if code is not None:
            raise SystemExit(code)
    if "run" in sys.argv[1:4] or "serve" in sys.argv[1:4]:
        from burnless.cli import fast  # a plain `run` or `serve` runs without typer, else returns

        fast.main(sys.argv[1:])
    from burnless.cli import main as cli_main

    cli_main()


def _width() -> int:
    """The width click wraps help to: the terminal's (COLUMNS first), at most 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 80) - 2, 50)


def _help_path() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    sig = 0
    for folder in (os.path.join(here, "cli"), here):
        try:
            with os.scandir(folder) as it:
                for e in it:
                    if e.name.endswith(".py"):
                        st = e.stat()
                        sig = (sig * 1_000_003 + st.st_mtime_ns + st.st_size) % (1 << 61)
        except OSError:
            pass
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "burnless", f"help-{__version__}-{_width()}-{sig:x}.txt")


def _render_and_keep(path: str) -> str:
    """Render the root help with typer (exactly what ``burnless --help`` prints) and keep it."""
    import typer

    from burnless.cli import COMMANDS, app, register

    register(COMMANDS)
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="burnless",
                                **(command.context_settings or {}))
    text = command.get_help(ctx) + "\n"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: render each time
    return text
