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
