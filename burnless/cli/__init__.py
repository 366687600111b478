"""The command line: a thin layer over the library. One module per command group.

The typer application is ``burnless.cli.typerapp`` (``app``, ``main``, ``register``,
``COMMANDS``, ``epilog``, ``invoked``, reachable from here too). This package itself imports
nothing, so plain ``burnless run`` and ``serve`` command lines can take their path without
typer (``burnless.cli.fast``, about a fifth of a run's start-up) and ``burnless --help`` its
cached text (``burnless.entry``). Command modules import only typer at import time; each
command imports what it needs when it runs, and ``main`` registers only the command invoked.
"""

from __future__ import annotations

from typing import Any

_APP_NAMES = frozenset({"app", "main", "register", "COMMANDS", "epilog", "invoked", "root"})


def __getattr__(name: str) -> Any:
    # Only the application's own names: a submodule (``console``, ``run``...) is imported by
    # the import system when this says it has no such attribute, without loading typer.
    if name not in _APP_NAMES:
        raise AttributeError(f"module 'burnless.cli' has no attribute {name!r}")
    from burnless.cli import typerapp

    return getattr(typerapp, name)
