"""``burnless usage --chart``: cost and tokens per day and per tier as terminal bars (rich).

Imported only when ``--chart`` is given. Each tier has a colour and its own block character
(█ ▓ ▒ ░ ...), so stacked bars still read without colour (a pipe, NO_COLOR, a log file).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from burnless.accounting.timeline import Timeline, tokens
from burnless.accounting.usage import Stats

COLORS = ("blue", "dark_orange", "green", "magenta", "cyan", "red", "yellow", "white")
BLOCKS = ("█", "▓", "▒", "░", "▚", "▞", "▖", "▗")


def style(i: int) -> tuple[str, str]:
    return BLOCKS[i % len(BLOCKS)], COLORS[i % len(COLORS)]


def money(v: float) -> str:
    return f"${v:,.2f}" if v >= 10 else f"${v:,.4f}"


def count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:,.0f}"


def stacked(parts: list[float], top: float, width: int) -> Text:
    """A bar of ``width`` cells at most: one segment per tier, scaled to ``top``. Segment ends
    are rounded from the running total, so the bar's length is exact whatever the parts."""
    bar = Text()
    done = 0.0
    drawn = 0
    for i, value in enumerate(parts):
        done += value
        end = round(width * done / top) if top > 0 else 0
        if value > 0 and end == drawn and end < width:
            end += 1  # a non-zero part shows at least one cell
        block, color = style(i)
        bar.append(block * (end - drawn), style=color)
        drawn = end
    return bar


def _section(console: Console, title: str, t: Timeline, value: Callable[[Stats], float],
             fmt: Callable[[float], str]) -> None:
    label_w = 10
    rows = [(day, [value(t.at(day, tier)) for tier in t.tiers]) for day in t.days]
    totals = [sum(parts) for _, parts in rows]
    top = max(totals, default=0.0)
    shown = [fmt(v) for v in totals]
    value_w = max((len(s) for s in shown), default=1)
    width = max(10, console.width - label_w - value_w - 4)
    console.print(Text(title, style="bold"))
    for (day, parts), text in zip(rows, shown, strict=True):
        line = Text(f"{day:<{label_w}} ")
        bar = stacked(parts, top, width)
        line.append(bar)
        line.append(" " * (width - len(bar)) + f"  {text:>{value_w}}")
        console.print(line, no_wrap=True, overflow="ignore")
    console.print()


def _legend(t: Timeline) -> Text:
    legend = Text("tiers: ")
    for i, tier in enumerate(t.tiers):
        block, color = style(i)
        legend.append(block * 2, style=color)
        legend.append(f" {tier}  ")
    return legend


def print_chart(t: Timeline, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    console.print(Text(f"Usage per day and per tier, {t.span}", style="bold underline"))
    if not t.tiers:
        console.print("no records in this period")
        return
    console.print(_legend(t))
    console.print()
    _section(console, "Cost per day (USD, known costs)", t, lambda s: s.cost_usd, money)
    _section(console, "Tokens per day (input + output + cache read + cache write)", t,
             lambda s: float(tokens(s)), count)
    # Per tier: one bar each, for cost and for tokens.
    rows = {r.key or "-": r.stats for r in t.by_tier.rows}
    name_w = max(len(n) for n in t.tiers)
    top_cost = max((rows[n].cost_usd for n in t.tiers), default=0.0)
    top_tok = max((tokens(rows[n]) for n in t.tiers), default=0)
    width = max(8, (console.width - name_w - 28) // 2)
    console.print(Text("Per tier: cost | tokens", style="bold"))
    for i, name in enumerate(t.tiers):
        s = rows[name]
        cost = "unknown" if s.cost_unknown else money(s.cost_usd)
        line = Text(f"{name:<{name_w}} ")
        a = stacked([s.cost_usd], top_cost, width)
        a.stylize(style(i)[1])
        line.append(a)
        line.append(" " * (width - len(a)) + f" {cost:>10} | ")
        b = stacked([float(tokens(s))], float(top_tok), width)
        b.stylize(style(i)[1])
        line.append(b)
        line.append(" " * (width - len(b)) + f" {count(tokens(s)):>7}")
        console.print(line, no_wrap=True, overflow="ignore")
    total = t.by_tier.total
    if total.unknown_cost_calls:
        console.print(f"* costs exclude {total.unknown_cost_calls:,} call(s) of unknown cost")
