"""burnless usage: the ledger summed per tier, model, session, role, day or virtual key."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from burnless.cli import epilog
from burnless.cli.options import ConfigOpt

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from burnless.accounting.usage import Report, Stats
    from burnless.settings import Config

FORMATS = ("table", "json", "csv", "html")

EPILOG = {"usage": epilog([
    "burnless usage                                   # last 30 days, by tier",
    "burnless usage --period last7d --by day",
    "burnless usage --chart                           # cost and tokens per day and tier",
    "burnless usage --period all --format html > report.html",
    "burnless usage --since 2026-11-01 --by session --format csv > usage.csv",
    "burnless usage --period today --by key           # spend per gateway virtual key",
    "burnless usage --json | jq .total.cost_usd       # same as --format json",
    "burnless usage --shared --by session             # the team's records (state.backend)",
])}


def usage(
    period: Annotated[
        str | None,
        typer.Option("--period", "-p", help="today | last7d | last30d | all (UTC days; "
                     "default last30d).", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this UTC day on (YYYY-MM-DD), instead of --period.",
                     show_default=False),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", "-b", help="Group by tier | model | session | role | day | key | "
                     "root (default tier; key: the gateway's virtual keys; records that name "
                     "no key or root run: one group, -).", show_default=False)
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", "-f", help="table | json | csv | html (one "
                          "self-contained page with charts, on stdout).")
    ] = "table",
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    chart: Annotated[bool, typer.Option("--chart", help="Cost and tokens per day and per "
                                        "tier as bars, instead of the table.")] = False,
    shared: Annotated[bool, typer.Option("--shared", help="The whole team's records, from the "
                                         "shared state server (state.backend), instead of "
                                         "this workspace's ledger.")] = False,
    evals: Annotated[
        str, typer.Option("--evals", help="include | exclude | only: the calls of `burnless "
                          "eval` jobs (copied into the ledger) counted, left out, or alone.")
    ] = "include",
    config: ConfigOpt = None,
) -> None:
    """Calls, failures, tokens, cache hits, cost and refusals from the ledger, per group."""
    from burnless.accounting.usage import report
    from burnless.config import load_config
    from burnless.errors import UsageError

    if format_ not in FORMATS:
        raise UsageError(f"--format {format_!r}: expected one of {', '.join(FORMATS)}")
    from burnless.accounting.usage import EVALS

    if evals not in EVALS:
        raise UsageError(f"--evals {evals!r}: expected one of {', '.join(EVALS)}")
    if json_:
        if format_ not in ("table", "json"):
            raise UsageError(f"--json is --format json; it cannot be used with --format {format_}")
        format_ = "json"
    if chart and format_ != "table":
        raise UsageError(f"--chart draws on the terminal; it cannot be used with --format "
                         f"{format_} (--format html has its own charts)")
    if (chart or format_ == "html") and by not in (None, "tier"):
        raise UsageError(f"--by {by} groups the table, json and csv; "
                         f"{'--chart' if chart else '--format html'} shows per day and per tier")
    if shared and (chart or format_ == "html"):
        raise UsageError("--shared prints the table, json or csv; --chart and --format html "
                         "show this workspace's ledger")
    if evals != "include" and (shared or chart or format_ == "html"):
        raise UsageError("--evals applies to the table, json and csv of this workspace's "
                         "ledger")
    if chart or format_ == "html":
        _pictures(load_config(config).state_dir, html=not chart, period=period, since=since)
        return
    origins = None
    if shared:
        rep, origins = _shared(load_config(config), by=by or "tier", period=period,
                               since=since)
    else:
        rep = report(load_config(config).state_dir, by=by or "tier", period=period,
                     since=since, evals=evals)
    if format_ == "json":
        from burnless.cli.console import emit_json

        body = rep.to_dict()
        if origins is not None:
            body["shared"] = origins
        emit_json(body)
    elif format_ == "csv":
        import sys

        sys.stdout.write(rep.to_csv())
    else:
        _table(rep)
        if origins is not None:
            from burnless.cli import console

            machines = origins["origins"]
            console.out(f"shared: {len(machines)} machine(s) on {origins['backend']} "
                        f"(namespace {origins['namespace']}): "
                        + ", ".join(f"{o} ({v['calls']:,} calls)"
                                    for o, v in machines.items()))


def _shared(cfg: Config, *, by: str, period: str | None, since: str | None
            ) -> tuple[Report, dict[str, Any]]:
    """The team's report from the shared state server, and who sent its records."""
    from burnless.accounting.usage import GROUPS, first_day
    from burnless.errors import UsageError

    if not cfg.state.shared:
        raise UsageError(f"--shared reads the team's records from state.backend, and "
                         f"{cfg.path} keeps its state local; set state.backend: "
                         "redis://host:port/db")
    if by not in GROUPS:  # before asking the server
        raise UsageError(f"--by {by!r}: expected one of {', '.join(GROUPS)}")
    first_day(period, since, date.today())
    from burnless.state import Unreachable, shared
    from burnless.state.report import shared_report

    backend = shared(cfg)
    assert backend is not None
    try:
        rep, origins = shared_report(backend, by=by, period=period, since=since)
    except Unreachable as exc:
        from burnless.errors import BurnlessError

        raise BurnlessError(f"usage --shared: {exc}; this workspace's own calls are in its "
                            "ledger (burnless usage without --shared)") from None
    return rep, {"backend": backend.shown, "namespace": cfg.state.namespace,
                 "origins": origins.to_dict()}


def _pictures(state_dir: Path, *, html: bool, period: str | None, since: str | None) -> None:
    from burnless.accounting.timeline import timeline

    t = timeline(state_dir, period=period, since=since)
    if html:
        import sys
        from datetime import datetime, timezone

        from burnless import __version__
        from burnless.accounting.htmlreport import render

        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sys.stdout.write(render(t, __version__, now))
        return
    from burnless.cli.chart import print_chart  # rich: only now

    print_chart(t)


def _table(rep: Report) -> None:
    from burnless.cli import console

    rows = [_cells(r.key or "-", r.stats) for r in rep.rows]
    rows.append(_cells("TOTAL", rep.total))
    columns = [rep.by, "calls", "failed", "input", "output", "cache read", "cache write",
               "cache hit", "cost (USD)", "refused", "audit failed", "cached"]
    if not rep.total.cached_hits:  # the response cache is off by default: no empty column
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    if rep.since is None:
        span = "all time"
    elif rep.period:
        span = f"{rep.period}, {rep.since} to {rep.today} UTC"
    else:
        span = f"since {rep.since} UTC"
    title = f"Usage by {rep.by}, {span}"
    if console.stdout_is_tty():
        _rich_table(title, columns, rows)
    else:
        console.print_table(title, columns, rows, right=frozenset(range(1, len(columns))))
    if rep.total.unknown_cost_calls:
        console.out(f"* cost excludes {rep.total.unknown_cost_calls:,} call(s) of unknown cost "
                    "(no reported cost and no price for the model)")


def _rich_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    heads = [c.replace(" ", "\n", 1) if i else c for i, c in enumerate(columns)]
    widths = [max(*(len(h) for h in head.split("\n")), *(len(r[i]) for r in rows))
              for i, head in enumerate(heads)]
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, head in enumerate(heads):
        # Never shrink a figure into an ellipsis.
        table.add_column(head, justify="left" if i == 0 else "right", no_wrap=True,
                         min_width=widths[i])
    for i, r in enumerate(rows):
        last = i == len(rows) - 1
        # Text, not str: a model named "[/b]" is a name, not rich markup.
        table.add_row(*map(Text, r), end_section=i == len(rows) - 2,
                      style="bold" if last else None)
    console = Console()
    needed = Measurement.get(console, console.options.update(width=10_000), table).maximum
    if needed > console.width:  # wider than the terminal: let it wrap rather than crop
        console = Console(width=needed)
    console.print(table)


def _cells(name: str, s: Stats) -> list[str]:
    ratio = s.cache_hit_ratio
    if s.cost_unknown:
        cost = "unknown*"
    else:
        digits = 4 if s.cost_usd < 1 else 2
        cost = f"${s.cost_usd:,.{digits}f}" + ("*" if s.unknown_cost_calls else "")
    return [name, _n(s.calls), _n(s.failures), _n(s.input), _n(s.output), _n(s.cache_read),
            _n(s.cache_write),
            "-" if ratio is None else f"{ratio:.1%}", cost, _n(s.refusals),
            _n(s.audit_failures), _n(s.cached_hits)]


def _n(x: int) -> str:
    """Exact below a million, then three significant figures (json and csv stay exact)."""
    for unit, size in (("B", 1e9), ("M", 1e6)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:,}"
