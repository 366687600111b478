"""burnless metrics / serve: Prometheus figures computed from the ledger, and the gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from burnless.cli import epilog
from burnless.cli.options import ConfigOpt, JsonOpt

EPILOG = {
    "metrics": epilog([
        "burnless metrics | grep burnless_cost_usd_total",
        "burnless metrics --json | jq '.metrics | keys'",
    ]),
    "serve": epilog([
        "burnless serve                       # 127.0.0.1:4356 (metrics.host, metrics.port)",
        "curl -s localhost:4356/metrics; curl -s localhost:4356/stats",
    ]),
}


def metrics(json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Print the Prometheus metrics once (what `serve` exposes at /metrics; with --json,
    what it exposes at /stats)."""
    import sys

    from burnless.accounting.index import LedgerIndex
    from burnless.accounting.metrics import MetricsView, exposition, stats
    from burnless.cli import console
    from burnless.config import load_config

    with console.json_errors(json_):
        cfg = load_config(config)
        with LedgerIndex.open(cfg.state_dir) as index:
            view = MetricsView(t.model for t in cfg.tiers.values())
            view.apply_totals(index.totals())
            families = view.families()
            if json_:
                console.emit_json(stats(families, index))
                return
    sys.stdout.write(exposition(families))


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on "
                                             "(default: metrics.host, 127.0.0.1).",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: metrics.port, "
                                             "4356; 0 picks a free one).",
                                             show_default=False)] = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Allow a host beyond this machine without virtual keys: "
        "anyone who can connect spends your tiers' keys.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Serve /metrics, /stats, /healthz and the gateway (Anthropic and OpenAI APIs at /v1)."""
    from burnless.cli import fast  # a plain command line comes here without typer (cli.fast)

    fast.serve(host=host, port=port, insecure_no_auth=insecure_no_auth, config=config)
