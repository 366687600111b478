"""`burnless sim ...`: the offline simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from burnless.cli import epilog

app = typer.Typer(
    help="The offline simulator (simulated model, real HTTP).",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=epilog([
        "burnless sim serve --port 4357 --log sim.jsonl",
        "ANTHROPIC_BASE_URL=http://127.0.0.1:4357 ANTHROPIC_API_KEY=dummy claude -p hi",
    ]),
)

DEFAULT_PORT = 4357  # burnless serve (metrics) uses 4356


@app.callback()
def _sim() -> None:
    """The offline simulator (simulated model, real HTTP)."""


@app.command("serve")
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on; 0 picks a free one.")
    ] = DEFAULT_PORT,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Append one JSON line per request (keys redacted) to FILE."),
    ] = None,
    fault: Annotated[
        str | None,
        typer.Option(
            "--fault",
            envvar="BURNLESS_SIM_FAULT",
            help="Inject a fault into every request, e.g. 429, 'sleep=2.5', '500,times=2'.",
        ),
    ] = None,
    fail_rate: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-rate",
            metavar="MODEL=P",
            help="Make MODEL fail a stable share P (0-1) of executor tasks; repeatable; "
            "'*' for every other model.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="BURNLESS_SIM_API_KEY",
            help="Accept only this key (default: any non-empty key).",
        ),
    ] = None,
) -> None:
    """Serve the simulated model as the Anthropic, OpenAI and Gemini APIs (SIMULATED, offline)."""
    from burnless.sim import server  # imported here: `burnless --help` must stay fast

    if fault:
        try:
            server.parse_fault(fault)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--fault") from None
    try:
        rates = server.parse_fail_rates(fail_rate or [])
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--fail-rate") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"burnless sim: warning: listening on {host}, not loopback only", err=True)
    try:
        server.serve(host, port, log=log, fault=fault, fail_rates=rates, api_key=api_key)
    except OSError as e:
        typer.echo(f"burnless sim: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
        raise typer.Exit(2) from None
