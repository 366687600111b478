"""The report of a pair evaluation: per pair, success with its confidence interval, cost, and
which pairs sit on the cost/success frontier; and the pair to use, with the reason.

Success is a binomial proportion: its 95% interval is Wilson's score interval (well behaved at
0 and n, unlike the normal approximation). A pair is on the frontier when no other pair is at
least as successful for less money (or more successful for the same). The recommendation is
the cheapest pair whose success is not significantly worse than the most successful pair's:
Newcombe's 95% interval for the difference of the two rates (built from their Wilson
intervals, so it too behaves at 0 and n) includes 0. When no pair ever succeeded, none is
recommended; pairs of unknown cost are not ranked, and the reason names a better one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for ``successes`` out of ``n`` (0, 1 when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exact at the ends (rounding would leave 1e-17 above 0, or 1 - 1e-16)
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class JobResult:
    """One (task, pair, repeat) session."""

    task: str
    planner: str
    executor: str
    repeat: int
    success: bool
    cost_usd: float | None  # None when a call's cost is unknown
    turns: int
    seconds: float
    status: str = ""  # the last turn's status, or "stopped" (budget) / "error"
    detail: str = ""

    @property
    def pair(self) -> str:
        return f"{self.planner}:{self.executor}"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "planner": self.planner, "executor": self.executor,
                "repeat": self.repeat, "success": self.success, "cost_usd": self.cost_usd,
                "turns": self.turns, "seconds": round(self.seconds, 3), "status": self.status,
                "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobResult:
        cost = d.get("cost_usd")
        return cls(str(d["task"]), str(d["planner"]), str(d["executor"]), int(d["repeat"]),
                   bool(d["success"]), float(cost) if isinstance(cost, (int, float)) else None,
                   int(d.get("turns") or 0), float(d.get("seconds") or 0.0),
                   str(d.get("status") or ""), str(d.get("detail") or ""))


@dataclass(frozen=True)
class PairStats:
    """One planner:executor pair's results: success rate with its interval, cost, time."""
    pair: str
    runs: int
    successes: int
    low: float
    high: float
    total_cost: float | None
    mean_turns: float
    seconds: float
    frontier: bool = False

    @property
    def rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0

    @property
    def mean_cost(self) -> float | None:
        return None if self.total_cost is None or not self.runs else self.total_cost / self.runs

    @property
    def cost_per_success(self) -> float | None:
        if self.total_cost is None or not self.successes:
            return None
        return self.total_cost / self.successes

    def to_dict(self) -> dict[str, Any]:
        return {"pair": self.pair, "runs": self.runs, "successes": self.successes,
                "success_rate": round(self.rate, 4), "ci95": [round(self.low, 4),
                                                              round(self.high, 4)],
                "mean_cost_usd": _r(self.mean_cost), "total_cost_usd": _r(self.total_cost),
                "cost_per_success_usd": _r(self.cost_per_success),
                "mean_turns": round(self.mean_turns, 3), "seconds": round(self.seconds, 3),
                "frontier": self.frontier}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


@dataclass(frozen=True)
class Report:
    """An evaluation's result: each pair, and the one recommended."""
    pairs: tuple[PairStats, ...]
    recommended: str | None
    reason: str
    done: int
    total: int
    stopped: str = ""  # why the evaluation stopped early, if it did

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [p.to_dict() for p in self.pairs], "recommended": self.recommended,
                "reason": self.reason, "jobs_done": self.done, "jobs_total": self.total,
                "stopped": self.stopped or None}


def summarize(results: Sequence[JobResult], pairs: Sequence[str], total: int,
              stopped: str = "") -> Report:
    # A job that was stopped (budget, Ctrl-C) or could not run (git, a crashed turn) says
    # nothing of the pair: it is not a run, and resuming the evaluation runs it again.
    results = [r for r in results if r.status not in ("stopped", "error")]
    stats: list[PairStats] = []
    for pair in pairs:
        mine = [r for r in results if r.pair == pair]
        wins = sum(r.success for r in mine)
        costs = [r.cost_usd for r in mine]
        low, high = wilson(wins, len(mine))
        stats.append(PairStats(
            pair=pair, runs=len(mine), successes=wins, low=low, high=high,
            total_cost=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
            mean_turns=sum(r.turns for r in mine) / len(mine) if mine else 0.0,
            seconds=sum(r.seconds for r in mine),
        ))
    stats = _mark_frontier(stats)
    rec, reason = _recommend(stats)
    return Report(tuple(stats), rec, reason, len(results), total, stopped)


def _mark_frontier(stats: list[PairStats]) -> list[PairStats]:
    out = []
    for s in stats:
        c = s.mean_cost
        dominated = s.runs == 0 or c is None or any(
            o is not s and o.runs and o.mean_cost is not None
            and o.mean_cost <= c and o.rate >= s.rate and (o.mean_cost < c or o.rate > s.rate)
            for o in stats)
        out.append(PairStats(**{**s.__dict__, "frontier": not dominated}))
    return out


def worse(best: PairStats, other: PairStats) -> bool:
    """Whether ``other`` succeeds significantly less often than ``best``: the lower end of
    Newcombe's hybrid score interval for ``best.rate - other.rate`` (method 10, from the two
    Wilson intervals) is above 0."""
    d = best.rate - other.rate
    return d - math.hypot(best.rate - best.low, other.high - other.rate) > 1e-12


def _recommend(stats: list[PairStats]) -> tuple[str | None, str]:
    ran = [s for s in stats if s.runs and s.mean_cost is not None]
    if not ran:
        return None, "no pair has results with a known cost"
    best = max(ran, key=lambda s: (s.rate, -(s.mean_cost or 0.0)))
    unknown = [s for s in stats if s.runs and s.mean_cost is None and s.rate > best.rate]
    aside = (f"; not ranked, cost unknown: {', '.join(s.pair for s in unknown)} "
             f"({', '.join(f'{s.rate:.0%}' for s in unknown)} success)") if unknown else ""
    if not best.successes:
        return None, "no pair succeeded on any task" + aside
    fine = [s for s in ran if not worse(best, s)]
    pick = min(fine, key=lambda s: (s.mean_cost or 0.0, -s.rate))
    if pick is best:
        what = "the highest success" if not unknown else "the highest success of known cost"
        why = f"{pick.pair}: {what} ({pick.rate:.0%}, 95% CI {pick.low:.0%}-{pick.high:.0%})"
        cheaper = [s for s in ran if (s.mean_cost or 0.0) < (pick.mean_cost or 0.0)]
        if cheaper:
            why += ("; every cheaper pair succeeds significantly less often")
        return pick.pair, why + aside
    ratio = (pick.mean_cost or 0.0) / best.mean_cost if best.mean_cost else 0.0
    return pick.pair, (f"{pick.pair}: same success as {best.pair} within the 95% interval "
                       f"({pick.rate:.0%} vs {best.rate:.0%}) at {ratio:.2f}x the cost" + aside)


CSV_COLUMNS = ("pair", "runs", "successes", "success_rate", "ci95_low", "ci95_high",
               "mean_cost_usd", "total_cost_usd", "cost_per_success_usd", "mean_turns",
               "seconds", "frontier")


def to_csv(report: Report) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for p in report.pairs:
        d = p.to_dict()
        w.writerow([p.pair, p.runs, p.successes, d["success_rate"], d["ci95"][0], d["ci95"][1],
                    _blank(d["mean_cost_usd"]), _blank(d["total_cost_usd"]),
                    _blank(d["cost_per_success_usd"]), d["mean_turns"], d["seconds"],
                    "yes" if p.frontier else ""])
    return buf.getvalue()


def _blank(x: object) -> object:
    return "" if x is None else x


def to_html(report: Report, title: str = "burnless eval") -> str:
    """One self-contained page: the frontier chart (mean cost vs success, 95% interval bars,
    frontier pairs joined) and the table. Inline SVG; no script, font or network."""
    from html import escape

    ran = [p for p in report.pairs if p.runs and p.mean_cost is not None]
    w, h, left, bottom, top, right = 720, 420, 70, 50, 20, 30
    xmax = max([p.mean_cost or 0.0 for p in ran] + [1e-9]) * 1.15

    def x(c: float) -> float:
        return left + (w - left - right) * c / xmax

    def y(r: float) -> float:
        return top + (h - top - bottom) * (1 - r)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}" role="img" aria-label="cost vs success per pair">',
             f'<rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/>']
    for i in range(6):  # gridlines: success 0..100%
        yy = y(i / 5)
        parts.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{w - right}" y2="{yy:.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end" font-size="12" '
                     f'font-family="sans-serif">{i * 20}%</text>')
    for i in range(5):
        c = xmax * i / 4
        parts.append(f'<text x="{x(c):.1f}" y="{h - bottom + 18}" text-anchor="middle" '
                     f'font-size="12" font-family="sans-serif">${c:.4f}</text>')
    parts.append(f'<text x="{(left + w - right) / 2:.1f}" y="{h - 10}" text-anchor="middle" '
                 'font-size="13" font-family="sans-serif">mean cost per task (USD)</text>')
    parts.append(f'<text x="16" y="{(top + h - bottom) / 2:.1f}" font-size="13" '
                 'font-family="sans-serif" transform="rotate(-90 16 '
                 f'{(top + h - bottom) / 2:.1f})" text-anchor="middle">success rate</text>')
    frontier = sorted((p for p in ran if p.frontier), key=lambda p: p.mean_cost or 0.0)
    if len(frontier) > 1:
        pts = " ".join(f"{x(p.mean_cost or 0.0):.1f},{y(p.rate):.1f}" for p in frontier)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#2a7" '
                     'stroke-dasharray="4 3"/>')
    for p in ran:
        cx = x(p.mean_cost or 0.0)
        color = "#2a7" if p.frontier else "#888"
        mark = ' stroke="#000" stroke-width="2"' if p.pair == report.recommended else ""
        parts.append(f'<line x1="{cx:.1f}" y1="{y(p.low):.1f}" x2="{cx:.1f}" '
                     f'y2="{y(p.high):.1f}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<circle cx="{cx:.1f}" cy="{y(p.rate):.1f}" r="6" fill="{color}"{mark}/>')
        parts.append(f'<text x="{cx + 9:.1f}" y="{y(p.rate) - 8:.1f}" font-size="12" '
                     f'font-family="sans-serif">{escape(p.pair)}</text>')
    parts.append("</svg>")
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
            p.pair + (" (recommended)" if p.pair == report.recommended else ""), p.runs,
            f"{p.rate:.0%}", f"{p.low:.0%}-{p.high:.0%}", _usd(p.mean_cost), _usd(p.total_cost),
            _usd(p.cost_per_success), f"{p.mean_turns:.1f}", "yes" if p.frontier else ""))
        + "</tr>" for p in report.pairs)
    head = "".join(f"<th>{c}</th>" for c in ("pair", "runs", "success", "95% CI", "mean cost",
                                             "total cost", "cost / success", "turns",
                                             "frontier"))
    note = escape(report.stopped) if report.stopped else ""
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;margin:24px}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(report.reason)}</p>"
        f"<p>{report.done} of {report.total} jobs. {note}</p>{''.join(parts)}"
        f"<table><tr>{head}</tr>{rows}</table></body></html>\n"
    )


def _usd(x: float | None) -> str:
    return "unknown" if x is None else f"${x:.4f}"
