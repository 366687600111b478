"""burnless demo: a real multi-turn session against the built-in simulator (offline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from burnless.cli import epilog
from burnless.cli.options import JsonOpt

if TYPE_CHECKING:
    from burnless.accounting.tokens import Tokens
    from burnless.demo import DemoReport


EPILOG = {"demo": epilog([
    "burnless demo",
    "burnless demo --json | jq .ratio_vs_cached",
])}


def demo(json_: JsonOpt = False) -> None:
    """Run a simulated session end to end and compare its cost with one compacting conversation
    on the same model (everything simulated, offline)."""
    from burnless.cli import console
    from burnless.demo import run_demo

    if json_:
        console.emit_json(run_demo().to_dict())
        return
    console.err("burnless demo — SIMULATED model and costs (offline simulator on 127.0.0.1)")
    _print(run_demo(progress=lambda line: console.err(f"  {line}")))


def _print(report: DemoReport) -> None:
    from burnless.cli import console
    from burnless.demo import GOLD, SILVER

    def money(v: float) -> str:
        return f"${v:.4f}"

    rows = []
    for r in report.rows:
        audit = r.audit + (f" ({r.note})" if r.note else "")
        rows.append([str(r.n), r.title[:34], r.calls, audit, str(r.exit_code),
                     f"{r.read_tokens:,}", f"{r.burnless.tokens.total_input:,}",
                     money(r.burnless.cost), f"{r.cached.tokens.total_input:,}",
                     money(r.cached.cost)])
    console.print_table(
        "burnless session, per turn (simulated). read: tokens of the files the turn read; "
        "in: input tokens sent; conv.: the conversation below",
        ["#", "turn", "calls", "audit", "exit", "read", "burnless in", "burnless $",
         "conv. in", "conv. $"],
        rows, right=frozenset({0, 4, 5, 6, 7, 8, 9}),
    )
    console.out("")

    def line(name: str, t: Tokens, cost: float) -> list[str]:
        return [name, f"{t.input:,}", f"{t.cache_write:,}", f"{t.cache_read:,}", f"{t.output:,}",
                money(cost)]

    c, u = report.cached, report.uncached
    console.print_table(
        f"the same {len(report.rows)} turns, simulated costs",
        ["strategy", "input", "cache write", "cache read", "output", "cost"],
        [
            line(f"burnless (planner {GOLD}, executor {SILVER})", report.burnless.tokens,
                 report.burnless.cost),
            line(f"one conversation on {c.model}, compacting, cached", c.spend.tokens,
                 c.spend.cost),
            line(f"one conversation on {u.model}, compacting, no caching", u.spend.tokens,
                 u.spend.cost),
        ],
        right=frozenset({1, 2, 3, 4, 5}),
    )
    console.out(
        f"(the conversation: what a chat agent sends, every request carrying the whole "
        f"transcript; it compacts before a request reaches {report.compact_at:,} input tokens "
        f"of the {report.window:,}-token window; largest request {c.largest_request:,} tokens, "
        f"{c.compactions} compaction(s))"
    )
    console.out("")
    console.out(report.verdict())
