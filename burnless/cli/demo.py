"""burnless demo: a real multi-turn session against the built-in simulator (offline)."""

from __future__ import annotations

from burnless.cli import console


def demo() -> None:
    """Run a simulated session end to end and compare its cost with a full-transcript replay."""
    from burnless.demo import run_demo

    console.err("burnless demo — SIMULATED model and costs (offline simulator on 127.0.0.1)")
    report = run_demo(progress=lambda line: console.err(f"  {line}"))

    def money(v: float | None) -> str:
        return "unknown" if v is None else f"${v:.4f}"

    rows = []
    for r in report.rows:
        u = r.usage
        verdict = r.audit + (f" ({r.note})" if r.note else "")
        rows.append([str(r.n), r.title[:38], r.calls, r.status, verdict, str(r.exit_code),
                     f"{u.input:,}", f"{u.cache_write:,}", f"{u.cache_read:,}", f"{u.output:,}",
                     money(r.cost)])
    console.print_table(
        "burnless session (simulated)",
        ["#", "turn", "calls", "status", "audit", "exit", "input", "cache write",
         "cache read", "output", "cost"],
        rows, right=frozenset({0, 5, 6, 7, 8, 9, 10}),
    )
    t = report.burnless_tokens
    (ct, cc), (ut, uc) = report.replay_cached, report.replay_uncached
    console.out("")
    console.print_table(
        "same session, simulated costs",
        ["strategy", "input", "cache write", "cache read", "output", "cost"],
        [
            ["burnless (planner gold, executor silver)", f"{t.input:,}", f"{t.cache_write:,}",
             f"{t.cache_read:,}", f"{t.output:,}", money(report.burnless_cost)],
            ["full transcript, prompt caching", f"{ct.input:,}", f"{ct.cache_write:,}",
             f"{ct.cache_read:,}", f"{ct.output:,}", money(cc)],
            ["full transcript, no caching", f"{ut.input:,}", f"{ut.cache_write:,}",
             f"{ut.cache_read:,}", f"{ut.output:,}", money(uc)],
        ],
        right=frozenset({1, 2, 3, 4, 5}),
    )
    caught = [r for r in report.rows if r.exit_code == 3]
    console.out("")
    console.out(
        f"Verdict (simulated): burnless cost {money(report.burnless_cost)} = "
        f"{report.burnless_cost / cc:.2f}x the cached full transcript and "
        f"{report.burnless_cost / uc:.2f}x the uncached one; "
        f"{len(caught)} false claim(s) caught by the audit (exit 3); {report.seconds:.1f}s."
    )
