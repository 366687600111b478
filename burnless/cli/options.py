"""Typer options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="Config file (overrides discovery and $BURNLESS_CONFIG).",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
SessionOpt = Annotated[
    str | None,
    typer.Option("--session", "-s", help="Session id (default: $BURNLESS_SESSION, else 'default').",
                 show_default=False),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--label", "-l", help="A label for routing rules and policy (repeatable).",
                 show_default=False),
]


def task_text(task: str) -> str:
    """TASK as given, or stdin for '-'; UTF-8 text with no NUL byte, else a UsageError."""
    import sys

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
