"""Output for the CLI: JSON for machines, rich for people (imported only when rendering); and
what every command's process shares: its warnings on stderr, SIGTERM as Ctrl-C, and errors said
in one style with their exit code. Imports neither typer nor rich at import time."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from burnless.errors import EXIT_INTERRUPTED, BurnlessError


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


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"burnless: warning: {record.getMessage()}\n")


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (a CI job cancelled, `kill`) takes the Ctrl-C path: the worker's process group
    # is killed and the ledger records the interruption, instead of orphaning the worker.
    raise KeyboardInterrupt


def setup_process() -> None:
    """What a command's process needs first: SIGTERM as Ctrl-C, warnings on stderr."""
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    logger = logging.getLogger("burnless")
    logger.addHandler(_StderrHandler())
    logger.setLevel(logging.WARNING)
    logger.propagate = False


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """burnless's own errors, Ctrl-C and OS errors as one line on stderr and their exit code
    (never a traceback)."""
    try:
        yield
    except BurnlessError as exc:
        sys.stderr.write(f"burnless: error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("burnless: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except OSError as exc:  # a full disk, a read-only state dir: say so, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"burnless: error: {where}{exc.strerror or exc}\n")
        sys.exit(1)


def task_text(task: str) -> str:
    """TASK as given, or stdin for '-'; UTF-8 text with no NUL byte, else a UsageError."""
    from burnless.errors import UsageError

    if task == "-":
        data = sys.stdin.buffer.read()
        try:
            task = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"the task on stdin is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                             f"at offset {exc.start})") from None
    else:
        try:
            task.encode("utf-8")
        except UnicodeEncodeError as exc:  # undecodable bytes in argv come as surrogates
            raise UsageError(f"the task argument is not UTF-8 text (at character {exc.start})"
                             ) from None
    if "\x00" in task:
        raise UsageError("the task contains a NUL byte; a task is text")
    return task
