"""burnless metrics / serve: Prometheus figures computed from the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from burnless.cli.options import ConfigOpt


def metrics(config: ConfigOpt = None) -> None:
    """Print the Prometheus metrics once (what `serve` exposes at /metrics)."""
    import sys

    from burnless.accounting.metrics import exposition, families_for
    from burnless.config import load_config

    sys.stdout.write(exposition(families_for(load_config(config).state_dir)))


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on "
                                             "(default: metrics.host, 127.0.0.1).",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: metrics.port, "
                                             "4356; 0 picks a free one).",
                                             show_default=False)] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve /metrics (Prometheus), /stats (JSON) and /healthz until interrupted."""
    from burnless.accounting.metrics import serve as run_server
    from burnless.config import load_config

    cfg = load_config(config)
    run_server(cfg.state_dir, host or cfg.metrics.host,
               cfg.metrics.port if port is None else port)
