"""Output for the CLI: JSON for machines, rich for people (imported only when rendering)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from burnless.errors import BurnlessError


def emit_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


@contextmanager
def json_errors(enabled: bool) -> Iterator[None]:
    """Under --json, a refusal or usage error is also one JSON object on stdout."""
    try:
        yield
    except BurnlessError as exc:
        if enabled:
            emit_json({"ok": False, "error": str(exc), "error_type": type(exc).__name__,
                       "exit_code": exc.exit_code})
        raise


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def print_table(title: str, columns: list[str], rows: list[list[str]],
                right: frozenset[int] = frozenset()) -> None:
    """A rich table on a terminal; aligned plain text otherwise (no rich import)."""
    if stdout_is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, c in enumerate(columns):
            table.add_column(c, justify="right" if i in right else "left")
        for r in rows:
            table.add_row(*r)
        Console().print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    if title:
        out(title)

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    out(line(columns))
    for r in rows:
        out(line(r))
