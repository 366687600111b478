"""``burnless usage --format html``: one self-contained HTML file with inline SVG charts.

Cost per day by tier (stacked bars), the cache-read share per day, records by status, and the
usage table by tier. No script, no network: no external stylesheet, font or image; system fonts
only; native SVG ``<title>`` tooltips. Every text that comes from the ledger or the config (a
tier name, a model) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

from burnless.accounting.timeline import Timeline, tokens
from burnless.accounting.usage import Stats

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
TIER_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
               "#000000")
STATUS_COLORS = {"ok": "#009E73", "partial": "#E69F00", "failed": "#D55E00",
                 "escalate": "#CC79A7", "interrupted": "#999999", "lost": "#666666",
                 "refused": "#333333", "cached": "#56B4E9"}
SHARE_COLOR = "#44AA99"  # teal: not a tier colour

W, H = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 44

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; margin: 24px auto; max-width: 1000px; color: #1a1a1a; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 6px; }
p.sub { color: #555; margin: 0 0 8px; font-size: 14px; }
svg { display: block; }
svg text { font-size: 12px; fill: #333; }
svg .axis { stroke: #999; stroke-width: 1; }
svg .grid { stroke: #e5e5e5; stroke-width: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; margin: 4px 0 6px; }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 12px;
                       margin-right: 5px; vertical-align: -1px; background: var(--c); }
table { border-collapse: collapse; font-size: 13px; margin-top: 6px; }
th, td { padding: 4px 10px; text-align: right; border-bottom: 1px solid #e5e5e5; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
.note { color: #555; font-size: 13px; }
footer { color: #777; font-size: 12px; margin-top: 28px; }
"""


def tier_color(i: int) -> str:
    return TIER_COLORS[i % len(TIER_COLORS)]


def money(v: float, scale: float | None = None) -> str:
    ref = abs(scale if scale is not None else v)
    return f"${v:,.2f}" if ref >= 1 else f"${v:,.4f}" if ref < 0.1 else f"${v:,.3f}"


def count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:,.0f}"


def nice_max(v: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``v`` (1 when there is nothing)."""
    if not v > 0 or not math.isfinite(v):
        return 1.0
    mag = 10.0 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag * (1 + 1e-9):
            return m * mag
    return 10 * mag


def _svg(label: str, body: list[str], height: int = H) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
            f'viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>" + "".join(body) + "</svg>")


def _y_axis(top: float, fmt: Callable[[float], str], ticks: int = 4) -> list[str]:
    """Grid lines and labels from 0 to ``top``; ``fmt`` formats a value."""
    out = []
    plot_h = H - TOP - BOTTOM
    for i in range(ticks + 1):
        v = top * i / ticks
        y = H - BOTTOM - plot_h * i / ticks
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(fmt(v))}</text>")
    out.append(f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" '
               f'y2="{H - BOTTOM}"/>')
    return out


def _x_labels(days: tuple[str, ...]) -> list[str]:
    band = (W - LEFT - RIGHT) / len(days)
    every = max(1, math.ceil(len(days) / 12))
    last = len(days) - 1
    out = []
    for i, day in enumerate(days):
        # every `every`-th day, and the last one (today) when it does not crowd its neighbour
        if i % every == 0 or (i == last and last % every >= (every + 1) // 2):
            x = LEFT + band * (i + 0.5)
            out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">'
                       f"{escape(day[5:])}</text>")
    return out


def cost_chart(t: Timeline) -> str:
    """Stacked bars: the known cost of each day, one colour per tier."""
    totals = [t.day_total(d).cost_usd for d in t.days]
    top = nice_max(max(totals, default=0.0))
    plot_h = H - TOP - BOTTOM
    band = (W - LEFT - RIGHT) / len(t.days)
    bar = max(1.0, band * 0.75)
    body = _y_axis(top, lambda v: money(v, top))
    for i, day in enumerate(t.days):
        x = LEFT + band * i + (band - bar) / 2
        y = float(H - BOTTOM)
        for j, tier in enumerate(t.tiers):
            s = t.at(day, tier)
            if s.cost_usd <= 0:
                continue
            h = plot_h * s.cost_usd / top
            y -= h
            tip = (f"{day} · {tier}: {money(s.cost_usd)} · {s.calls} calls · "
                   f"{count(tokens(s))} tokens")
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                        f'fill="{tier_color(j)}"><title>{escape(tip)}</title></rect>')
    body += _x_labels(t.days)
    return _svg(f"Cost per day by tier, {t.span}", body)


def share_chart(t: Timeline) -> str:
    """Bars: the share of each day's input tokens read from the provider's cache."""
    plot_h = H - TOP - BOTTOM
    band = (W - LEFT - RIGHT) / len(t.days)
    bar = max(1.0, band * 0.75)
    body = _y_axis(1.0, lambda v: f"{v:.0%}")
    for i, day in enumerate(t.days):
        s = t.day_total(day)
        ratio = s.cache_hit_ratio
        if ratio is None:
            continue
        x = LEFT + band * i + (band - bar) / 2
        h = plot_h * ratio
        tip = (f"{day}: {ratio:.1%} of {count(s.input + s.cache_read + s.cache_write)} input "
               f"tokens read from cache")
        body.append(f'<rect x="{x:.1f}" y="{H - BOTTOM - h:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{SHARE_COLOR}"><title>{escape(tip)}</title></rect>')
    overall = t.by_tier.total.cache_hit_ratio
    if overall is not None:
        y = H - BOTTOM - plot_h * overall
        body.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                    'stroke="#D55E00" stroke-width="2" stroke-dasharray="6 4"/>')
        body.append(f'<text x="{W - RIGHT - 4}" y="{y - 6:.1f}" text-anchor="end" '
                    f'style="fill:#D55E00;font-weight:600">period: {overall:.1%}</text>')
    body += _x_labels(t.days)
    return _svg(f"Cache-read share per day, {t.span}", body)


def status_chart(t: Timeline) -> str:
    """Horizontal bars: records by status (calls made, refusals, response-cache hits)."""
    rows = t.statuses or (("no records", 0),)
    row_h = 30
    height = TOP + row_h * len(rows) + 8
    top = max(n for _, n in rows) or 1
    width = W - 140 - 90
    body = []
    for i, (status, n) in enumerate(rows):
        y = TOP + i * row_h
        w = width * n / top
        color = STATUS_COLORS.get(status, "#999999")
        body.append(f'<text x="130" y="{y + 18}" text-anchor="end">{escape(status)}</text>')
        body.append(f'<rect x="140" y="{y + 4}" width="{max(w, 1 if n else 0):.1f}" '
                    f'height="{row_h - 10}" fill="{color}"><title>{escape(status)}: {n:,}'
                    "</title></rect>")
        body.append(f'<text x="{140 + w + 8:.1f}" y="{y + 18}">{n:,}</text>')
    return _svg(f"Records by status, {t.span}", body, height)


def _legend(t: Timeline) -> str:
    items = "".join(f'<span style="--c:{tier_color(j)}">{escape(tier)}</span>'
                    for j, tier in enumerate(t.tiers))
    return f'<div class="legend">{items}</div>'


def _row(name: str, s: Stats, cls: str = "") -> str:
    ratio = s.cache_hit_ratio
    cost = "unknown" if s.cost_unknown else money(s.cost_usd) + ("*" if s.unknown_cost_calls
                                                                  else "")
    cells = [name, f"{s.calls:,}", f"{s.failures:,}", f"{s.input:,}", f"{s.output:,}",
             f"{s.cache_read:,}", f"{s.cache_write:,}", "-" if ratio is None else f"{ratio:.1%}",
             cost, f"{s.refusals:,}", f"{s.audit_failures:,}"]
    tds = "".join(f"<td>{escape(c)}</td>" for c in cells)
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


def render(t: Timeline, version: str, generated: str) -> str:
    """The whole report as one HTML document."""
    heads = ["tier", "calls", "failed", "input", "output", "cache read", "cache write",
             "cache hit", "cost (USD)", "refused", "audit failed"]
    rows = [_row(r.key or "-", r.stats) for r in t.by_tier.rows]
    rows.append(_row("TOTAL", t.by_tier.total, "total"))
    total = t.by_tier.total
    note = ""
    if total.unknown_cost_calls:
        note = (f'<p class="note">* Costs exclude {total.unknown_cost_calls:,} call(s) of '
                "unknown cost (no reported cost and no price for the model).</p>")
    summary = (f"{total.calls:,} calls · {money(total.cost_usd)} known cost · "
               f"{count(tokens(total))} tokens · "
               + ("no input" if total.cache_hit_ratio is None
                  else f"{total.cache_hit_ratio:.1%} of input read from cache"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>burnless usage, {escape(t.span)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>burnless usage</h1>",
        f'<p class="sub">{escape(t.span)} · {escape(summary)}</p>',
        "<h2>Cost per day, by tier</h2>",
        _legend(t),
        cost_chart(t),
        "<h2>Cache-read share of input tokens, per day</h2>",
        '<p class="sub">Input read from the provider\'s cache (billed at about 0.1× the input '
        "price) over all input: full-rate input, cache reads and cache writes.</p>",
        share_chart(t),
        "<h2>Records by status</h2>",
        '<p class="sub">Calls made, by their status; refusals (no call); response-cache hits '
        "(no call).</p>",
        status_chart(t),
        "<h2>By tier</h2>",
        "<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in heads)
        + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>",
        note,
        f"<footer>burnless {escape(version)} · generated {escape(generated)} · computed from "
        ".burnless/ledger.jsonl</footer>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
