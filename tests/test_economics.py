"""benchmarks/economics.py: the workload, the strategies' arithmetic and the report, on a few turns.

The full 40-turn run takes seconds; these tests run the same code on 2-8 turns and check what
must hold whatever the figures: conservation of tokens, the order uncached >= cached >= bound,
full replay's quadratic growth computed by hand, burnless's one-planner-per-epoch structure.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnless.accounting.pricing import price_for
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.config import CompactionSettings

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "economics.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("burnless_bench_economics", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


econ = _load()


@pytest.fixture(scope="module")
def small() -> object:
    return econ.run(seed=3, turns=5, steps=3)


def _replay(report: object, model: str, cached: bool) -> object:
    return report.get("full replay, " + ("cached" if cached else "no cache"), model)


# --------------------------------------------------------------------------- the workload


def test_workload_is_seeded_and_sized_as_documented() -> None:
    a = econ.make_workload(seed=11, turns=6, steps=4)
    b = econ.make_workload(seed=11, turns=6, steps=4)
    c = econ.make_workload(seed=12, turns=6, steps=4)
    assert a == b
    assert a.turns[0].task != c.turns[0].task
    assert estimate_tokens(a.system) == econ.PREFIX_TOKENS
    for t in a.turns:
        material = "".join(t.material)
        assert 4 * 2000 <= len(material.encode()) <= 4 * 10000
        assert 200 <= estimate_tokens(t.answer) <= 1500
        assert 40 <= estimate_tokens(t.task) <= 150  # strip() may take a few bytes off
        assert len(t.material) == 3 and len(t.tool_calls) == 3 and len(t.seconds) == 4
        assert all(20.0 <= s <= 60.0 for s in t.seconds)


def test_steps_change_only_the_chunking_not_the_work() -> None:
    one = econ.make_workload(seed=5, turns=4, steps=1)
    four = econ.make_workload(seed=5, turns=4, steps=4)
    for t1, t4 in zip(one.turns, four.turns, strict=True):
        assert "".join(t1.material) == "".join(t4.material)
        assert (t1.task, t1.answer, t1.summary) == (t4.task, t4.answer, t4.summary)
        assert len(t1.material) == 1 and t1.tool_calls == ()
        assert t1.seconds[0] == t4.seconds[0]  # the same clock stream, cut shorter


# --------------------------------------------------------------------------- full replay


def test_full_replay_resends_the_whole_transcript(small: object) -> None:
    """Each request's size, computed by hand from the workload (k = 1: no tool blocks)."""
    report = econ.run(seed=3, turns=4, steps=1)
    work = report.work
    calls = _replay(report, econ.GOLD, cached=False).calls
    system = estimate_tokens(work.system)
    history = 0
    for turn, call in zip(work.turns, calls, strict=True):
        now = estimate_tokens(turn.task) + estimate_tokens(turn.material[0])
        assert call.tokens == Tokens(
            input=system + history + now, output=estimate_tokens(turn.answer)
        )
        history += now + estimate_tokens(turn.answer)


@pytest.mark.parametrize("model", ["claude-opus-4-8", "claude-sonnet-4-6"])
def test_caching_moves_tokens_between_rates_and_never_loses_one(small: object, model: str) -> None:
    plain = _replay(small, model, cached=False)
    cached = _replay(small, model, cached=True)
    assert len(plain.calls) == len(cached.calls) == 5 * 3
    for p, c in zip(plain.calls, cached.calls, strict=True):
        assert p.tokens.cache_read == p.tokens.cache_write == 0
        assert c.tokens.total_input == p.tokens.input  # same request, same tokens
        assert c.tokens.output == p.tokens.output
    # From the second request on, everything up to the previous request's end is read.
    for prev, c in pairwise(cached.calls):
        assert c.tokens.cache_read == prev.tokens.total_input
    assert plain.cost > cached.cost


def test_prices_come_from_the_table(small: object) -> None:
    call = _replay(small, econ.GOLD, cached=True).calls[1]
    t = call.tokens
    assert (t.cache_read, t.cache_write) > (0, 0)
    expected = (t.cache_read * 0.5 + t.cache_write * 6.25 + t.output * 25.0) / 1e6  # opus 4.8
    one = econ.Strategy("x", econ.GOLD, (call,))
    assert one.cost == pytest.approx(expected)
    assert price_for(econ.SILVER).input == 3.0  # the mid model is Sonnet 4.6 at its list price


# --------------------------------------------------------------------------- burnless and bound


def test_burnless_structure_and_token_conservation(small: object) -> None:
    bl, bound = small.burnless, small.bound
    roles = [(c.turn, c.role, c.model) for c in bl.calls]
    assert roles[0] == (1, "planner", econ.GOLD)
    assert roles[1:] == [(n, "executor", econ.SILVER) for n in range(1, 6) for _ in range(3)]
    # Two independent counts of every request (the billing engine, the bound's own walk).
    for a, b in zip(bl.calls, bound.calls, strict=True):
        assert a.tokens.total_input == b.tokens.total_input
        assert a.tokens.output == b.tokens.output
        assert b.tokens.cache_read >= a.tokens.cache_read  # the bound reads at least as much
    # Same outputs as full replay (same turns), plus the plan.
    replay_out = _replay(small, econ.GOLD, cached=True).tokens.output
    assert bl.tokens.output == replay_out + econ.PLAN_ANSWER_TOKENS


def test_cost_order_uncached_cached_burnless_bound(small: object) -> None:
    uncached = _replay(small, econ.GOLD, cached=False).cost
    cached = _replay(small, econ.GOLD, cached=True).cost
    assert uncached >= cached >= small.burnless.cost
    assert small.burnless.input_cost >= small.bound.input_cost > 0
    for check in small.checks():
        assert check.value > 0


def test_burnless_input_stays_flat_while_replay_grows() -> None:
    report = econ.run(seed=2, turns=8, steps=2)
    bl = [report.burnless.turn_tokens(n).total_input for n in range(2, 9)]
    fr = [_replay(report, econ.GOLD, cached=True).turn_tokens(n).total_input for n in range(2, 9)]
    assert all(b2 > b1 for b1, b2 in pairwise(fr))  # replay: every turn carries all before
    assert fr[-1] > 2 * max(bl)
    # burnless: the stable prefix and a capsule per turn; the material varies, not the history.
    steps, prefix, material = 2, econ.PREFIX_TOKENS, 10000
    assert max(bl) < steps * (prefix + 8 * 400) + material


def test_next_turn_reads_the_previous_context_from_cache(small: object) -> None:
    first_steps = [c for c in small.burnless.calls if c.role == "executor"][::3]
    for prev, now in pairwise(first_steps):
        # Everything the previous turn's first request sent before its task is read back.
        assert now.tokens.cache_read >= econ.PREFIX_TOKENS
        assert now.tokens.cache_write < 400  # one capsule and the task
        assert now.tokens.cache_read + now.tokens.cache_write > prev.tokens.cache_read


def test_compaction_replans_and_the_expired_planner_prefix_shows_against_the_bound() -> None:
    report = econ.run(seed=4, turns=12, steps=3, compaction=CompactionSettings(max_context_tokens=900))
    planners = [c for c in report.burnless.calls if c.role == "planner"]
    assert report.compactions >= 1
    assert report.plans == len(planners) == 1 + report.compactions
    # A re-plan more than 5 minutes after the last gold call finds the planner prefix expired:
    # the simulator writes it again while the bound (no TTL) reads it. Within 5 minutes, both read.
    gold = [c for c in report.burnless.calls if c.model == econ.GOLD]
    bound = [b for b in report.bound.calls if b.model == econ.GOLD]
    expired = 0
    for (prev, now), bd in zip(pairwise(gold), bound[1:], strict=True):
        assert bd.tokens.cache_read > 5000
        if now.at - prev.at > 300:
            expired += 1
            assert now.tokens.cache_read == 0
        else:
            assert now.tokens.cache_read == bd.tokens.cache_read
    assert expired >= 1
    assert report.burnless.input_cost > report.bound.input_cost


def test_bound_reads_only_what_the_same_model_was_sent() -> None:
    bound = econ.Bound()
    sys_text = "s" * 4000
    first = econ.request(econ.SILVER, sys_text, [("user", [econ._text("a" * 400)])], cached=False)
    second = econ.request(econ.SILVER, sys_text, [("user", [econ._text("b" * 400)])], cached=False)
    other = econ.request(econ.GOLD, sys_text, [("user", [econ._text("a" * 400)])], cached=False)
    bound.bill(1, "x", first, 0)
    bound.bill(1, "x", second, 0)
    bound.bill(1, "x", other, 0)
    assert [c.tokens for c in bound.calls] == [
        Tokens(cache_write=1100),
        Tokens(cache_read=1000, cache_write=100),
        Tokens(cache_write=1100),
    ]


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 5))
def test_invariants_hold_for_any_seed(seed: int, steps: int) -> None:
    report = econ.run(seed=seed, turns=3, steps=steps, prefix_tokens=1500)
    for model in (econ.GOLD, econ.SILVER):
        plain, cached = _replay(report, model, False), _replay(report, model, True)
        assert plain.tokens.input == cached.tokens.total_input
        assert plain.cost >= cached.cost
    assert report.burnless.tokens.total_input == report.bound.tokens.total_input
    assert report.burnless.input_cost >= report.bound.input_cost
    assert 0 < report.burnless.read_share(2) <= report.bound.read_share(2) <= 1


# --------------------------------------------------------------------------- the report


def test_main_prints_the_command_table_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    rc = econ.main(
        [
            "--turns",
            "3",
            "--steps",
            "2",
            "--sensitivity",
            "1",
            "--compaction-sensitivity",
            "0",
            "--check",
        ]
    )
    out = capsys.readouterr().out
    assert out.startswith("command: python benchmarks/economics.py --seed 1 --turns 3 --steps 2")
    assert "SIMULATED" in out and "cache-optimal bound" in out
    verdicts = [
        line.split()[0]
        for line in out.splitlines()
        if line.startswith("  PASS") or line.startswith("  FAIL")
    ]
    assert len(verdicts) == 4
    assert rc == (1 if "FAIL" in verdicts else 0)
    assert "k = 1 (one call per turn)" in out and "k = 2 (main)" in out
    assert "read share*" in out


def test_script_runs_standalone() -> None:
    p = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--turns",
            "2",
            "--steps",
            "2",
            "--sensitivity",
            "2",
            "--compaction-sensitivity",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "burnless / cached full replay (gold)" in p.stdout
