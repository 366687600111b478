"""`burnless demo`: the README's main job, offline, through the whole pipeline."""

from __future__ import annotations

import subprocess
import sys
import time


def test_demo_runs_offline_and_labels_everything_simulated() -> None:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "burnless", "demo"], capture_output=True,
                       text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert elapsed < 30
    out = p.stdout
    assert "simulated" in out.lower() and "SIMULATED" in p.stderr
    assert "plan gold + exec silver" in out  # the planner fired on gold, then the executor
    assert "failed (missing inventory/api.py)" in out  # the lying turn caught by the audit
    assert "full transcript, prompt caching" in out and "full transcript, no caching" in out
    assert "Verdict (simulated):" in out and "1 false claim(s) caught" in out


def test_demo_report_figures_add_up() -> None:
    from burnless.demo import run_demo

    report = run_demo()
    assert len(report.rows) == 8
    assert [r.exit_code for r in report.rows].count(3) == 1
    assert sum(r.cost or 0 for r in report.rows) == report.burnless_cost
    (cached_tokens, cached_cost), (uncached_tokens, uncached_cost) = (
        report.replay_cached, report.replay_uncached)
    # The same transcript: the same input tokens in all, billed differently.
    assert cached_tokens.total_input == uncached_tokens.total_input
    assert uncached_tokens.cache_read == 0 and cached_tokens.cache_read > 0
    assert cached_cost < uncached_cost
    # From turn 2 on, the executor reads burnless's stable prefix from the cache.
    assert all(r.usage.cache_read > 0 for r in report.rows[1:])
