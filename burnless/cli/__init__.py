"""The command line: a thin layer over the library. One module per command group.

Modules here import only typer at import time (``burnless --help`` must stay fast); each
command imports what it needs when it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated

import typer

from burnless import __version__
from burnless.cli import demo, doctor, init, log, metrics, route, run, session, sim, usage
from burnless.errors import EXIT_INTERRUPTED, BurnlessError

app = typer.Typer(
    name="burnless",
    help="Run AI agent work cheaply and honestly: tiers, capsules, audited claims, metered spend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help renderer costs ~70 ms per invocation
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"burnless {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Annotated[
        str | None,
        typer.Option("--config", help="Config file (default: .burnless/config.yaml found "
                     "walking up from the cwd; or $BURNLESS_CONFIG).", show_default=False),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """burnless: a cheap model runs the loop, a frontier model plans, every claim is audited."""
    if config:
        os.environ["BURNLESS_CONFIG"] = config


app.command("run")(run.run)
app.command("route")(route.route)
app.add_typer(session.app, name="session")
app.command("usage")(usage.usage)
app.command("metrics")(metrics.metrics)
app.command("serve")(metrics.serve)
app.command("log")(log.log)
app.command("init")(init.init)
app.command("doctor")(doctor.doctor)
app.add_typer(sim.app, name="sim")
app.command("demo")(demo.demo)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"burnless: warning: {record.getMessage()}\n")


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (a CI job cancelled, `kill`) takes the Ctrl-C path: the worker's process group
    # is killed and the ledger records the interruption, instead of orphaning the worker.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    logger = logging.getLogger("burnless")
    logger.addHandler(_StderrHandler())
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        app(prog_name="burnless")
    except BurnlessError as exc:
        sys.stderr.write(f"burnless: error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("burnless: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
