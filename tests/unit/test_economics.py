"""benchmarks/economics.py: the workload, the strategies' arithmetic and the report, on a few turns.

The full 40-turn run takes seconds; these tests run the same code on 2-12 turns and check what
must hold whatever the figures: conservation of tokens, the order uncached >= cached >= bound,
the uncapped replay's growth computed by hand, the compacting replay's cap, one model on both
sides of the headline, burnless's one-planner-per-epoch structure, the checks as documented.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnless.accounting.pricing import price_for
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.settings import CompactionSettings
from burnless.sim.replay import CONTEXT_WINDOW, NEVER
from burnless.sim.replay import Compaction as ReplayCompaction

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "economics.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("burnless_bench_economics", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


econ = _load()


@pytest.fixture(scope="module")
def small() -> Any:
    return econ.run(seed=3, turns=5, steps=3)


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


def test_the_light_session_draws_500_to_2000_tokens_of_material_per_turn() -> None:
    light = econ.make_workload(seed=1, turns=10, steps=4, material_tokens=(500, 2000))
    normal = econ.make_workload(seed=1, turns=10, steps=4)
    assert econ.LIGHT_MATERIAL_TOKENS == (500, 2000)
    for lt, nt in zip(light.turns, normal.turns, strict=True):
        assert 500 <= lt.material_tokens <= 2000
        assert lt.material_tokens < nt.material_tokens
        assert lt.seconds == nt.seconds  # the clock has a stream of its own per turn


def test_steps_change_only_the_chunking_not_the_work() -> None:
    one = econ.make_workload(seed=5, turns=4, steps=1)
    four = econ.make_workload(seed=5, turns=4, steps=4)
    for t1, t4 in zip(one.turns, four.turns, strict=True):
        assert "".join(t1.material) == "".join(t4.material)
        assert (t1.task, t1.answer, t1.summary) == (t4.task, t4.answer, t4.summary)
        assert len(t1.material) == 1 and t1.tool_calls == ()
        assert t1.seconds[0] == t4.seconds[0]  # the same clock stream, cut shorter


# --------------------------------------------------------------------------- the replays


def test_uncapped_replay_resends_the_whole_transcript() -> None:
    """Each request's size, computed by hand from the workload (k = 1: no tool blocks)."""
    work = econ.make_workload(seed=3, turns=4, steps=1)
    calls = econ.replay(work, econ.GOLD, cached=False, compaction=NEVER).calls
    system = estimate_tokens(work.system)
    history = 0
    for turn, call in zip(work.turns, calls, strict=True):
        now = estimate_tokens(turn.task) + estimate_tokens(turn.material[0])
        assert call.tokens == Tokens(
            input=system + history + now, output=estimate_tokens(turn.answer)
        )
        history += now + estimate_tokens(turn.answer)


@pytest.fixture(scope="module")
def forty() -> Any:
    """The main session's workload (seed 1, 40 turns, k = 4) and its replays."""
    work = econ.make_workload(seed=1, turns=40, steps=4)
    return (
        work,
        econ.replay(work, econ.SILVER, cached=True),
        econ.replay(work, econ.SILVER, cached=True, compaction=NEVER),
    )


def test_the_floor_of_a_strategy_that_forgets_earlier_turns_is_under_every_strategy() -> None:
    """The floor printed against the 40-turn target: under burnless, its own cache-optimal
    bound and the replay, and above what the steps' output and the prefix reads alone cost."""
    for steps in (1, 2, 4):
        s = econ.run_session("t", seed=2, turns=12, steps=steps)
        floor = econ.forgetful_floor(s)
        assert floor <= s.bound.cost <= s.burnless.cost + 1e-9
        assert floor < s.cached.cost
        price = price_for(s.model)
        executor = [c for c in s.burnless.calls if c.role == "executor"]
        out = sum(c.tokens.output for c in executor) * price.output / 1e6
        material = sum(t.material_tokens for t in s.work.turns) * price.input / 1e6
        assert floor > out + material  # every token of material paid at least once


def test_the_compacting_replay_never_sends_a_request_above_the_window(forty: Any) -> None:
    work, capped, uncapped = forty
    rule = ReplayCompaction()
    assert uncapped.over_window() > 0  # the old baseline did; that is what is being fixed
    assert capped.over_window() == 0 and capped.largest_request <= CONTEXT_WINDOW
    assert capped.compactions >= 1
    for c in capped.calls:
        if c.role == "replay":
            assert c.tokens.total_input < rule.compact_at
        else:
            assert c.role == "compaction"
            assert c.tokens.total_input >= rule.compact_at
            assert c.tokens.output == rule.summary_tokens  # the summary is billed as output
    # Same work, same answers: only the compactions' summaries add output.
    assert capped.tokens.output == uncapped.tokens.output + capped.compactions * rule.summary_tokens
    assert capped.cost < uncapped.cost


def test_a_compaction_replaces_the_transcript_by_the_summary(forty: Any) -> None:
    work, capped, uncapped = forty
    rule = ReplayCompaction()
    calls = list(capped.calls)
    i = next(i for i, c in enumerate(calls) if c.role == "compaction")
    compact, after = calls[i], calls[i + 1]
    # The compaction reads the conversation as it stood (warm cache) and writes only what is new.
    assert compact.tokens.cache_read == calls[i - 1].tokens.total_input
    assert compact.tokens.cache_write < 12_000
    # The next request: system + summary + the current turn so far, far below the threshold.
    turn = work.turns[compact.turn - 1]
    step = sum(1 for c in calls[:i] if c.turn == compact.turn and c.role == "replay")
    current = estimate_tokens(turn.task) + sum(
        estimate_tokens(econ._block_text(econ._result(call, chunk)))
        + estimate_tokens(econ._block_text(call))
        for call, chunk in list(zip(turn.tool_calls, turn.material, strict=True))[:step]
    )
    assert after.tokens.total_input == econ.PREFIX_TOKENS + rule.summary_tokens + current
    assert after.tokens.cache_read == econ.PREFIX_TOKENS  # only the system prompt is read back


@pytest.mark.parametrize("model", ["claude-opus-4-8", "claude-sonnet-4-6"])
def test_caching_moves_tokens_between_rates_and_never_loses_one(model: str) -> None:
    work = econ.make_workload(seed=3, turns=5, steps=3)
    plain = econ.replay(work, model, cached=False)
    cached = econ.replay(work, model, cached=True)
    assert len(plain.calls) == len(cached.calls) == 5 * 3
    for p, c in zip(plain.calls, cached.calls, strict=True):
        assert p.tokens.cache_read == p.tokens.cache_write == 0
        assert c.tokens.total_input == p.tokens.input  # same request, same tokens
        assert c.tokens.output == p.tokens.output
    # From the second request on, everything up to the previous request's end is read.
    for prev, c in pairwise(cached.calls):
        assert c.tokens.cache_read == prev.tokens.total_input
    assert plain.cost > cached.cost


def test_prices_come_from_the_table() -> None:
    work = econ.make_workload(seed=3, turns=2, steps=3)
    call = econ.replay(work, econ.GOLD, cached=True).calls[1]
    t = call.tokens
    assert (t.cache_read, t.cache_write) > (0, 0)
    expected = (t.cache_read * 0.5 + t.cache_write * 6.25 + t.output * 25.0) / 1e6  # opus 4.8
    one = econ.Strategy("x", econ.GOLD, (call,))
    assert one.cost == pytest.approx(expected)
    assert price_for(econ.SILVER).input == 3.0  # the mid model is Sonnet 4.6 at its list price


# --------------------------------------------------------------------------- burnless and bound


def test_the_same_model_comparison_uses_one_model(small: Any) -> None:
    for s in small.sessions:
        assert s.model == econ.SILVER
        for strategy in (s.burnless, s.bound, s.cached, s.uncached):
            assert strategy.model_set == {econ.SILVER}, strategy.name
        # The planner ran, on the same model as everything else.
        assert any(c.role == "planner" for c in s.burnless.calls)
    # The model mix is the other line: the planner on gold, the executor on silver.
    assert small.mix.model_set == {econ.GOLD, econ.SILVER}
    assert {c.model for c in small.mix.calls if c.role == "planner"} == {econ.GOLD}
    assert small.mix_replay_gold.model_set == {econ.GOLD}


def test_burnless_structure_and_token_conservation(small: Any) -> None:
    s = small.long
    bl, bound = s.burnless, s.bound
    roles = [(c.turn, c.role, c.model) for c in bl.calls]
    assert roles[0] == (1, "planner", econ.SILVER)
    assert roles[1:] == [(n, "executor", econ.SILVER) for n in range(1, 6) for _ in range(3)]
    # Two independent counts of every request (the billing engine, the bound's own walk).
    for a, b in zip(bl.calls, bound.calls, strict=True):
        assert a.tokens.total_input == b.tokens.total_input
        assert a.tokens.output == b.tokens.output
        assert b.tokens.cache_read >= a.tokens.cache_read  # the bound reads at least as much
    # Same outputs as the replay (same turns), plus the plan (no compaction in 5 turns).
    assert s.cached.compactions == 0
    assert bl.tokens.output == s.cached.tokens.output + econ.PLAN_ANSWER_TOKENS


def test_sessions_are_the_ones_documented(small: Any) -> None:
    long, short, light = small.sessions
    assert len(long.work.turns) == 5 and long.work.material_range == econ.MATERIAL_TOKENS
    assert short.work.turns == long.work.turns[: len(short.work.turns)]
    assert light.work.material_range == econ.LIGHT_MATERIAL_TOKENS
    assert len(light.work.turns) == len(short.work.turns) == 5  # min(10, turns)


def test_checks_are_the_three_targets_computed_as_documented(small: Any) -> None:
    long, light = small.long, small.light
    checks = small.checks()
    assert [(c.limit, c.value) for c in checks] == [
        (0.3, long.burnless.cost / long.cached.cost),
        (0.85, light.burnless.cost / light.cached.cost),
        (1.05, long.burnless.input_cost / long.bound.input_cost),
    ]
    for c in checks:
        assert c.passed == (c.value <= c.limit)
    assert long.uncached.cost >= long.cached.cost
    assert long.burnless.input_cost >= long.bound.input_cost > 0


def test_burnless_input_stays_flat_while_replay_grows() -> None:
    s = econ.run_session("x", seed=2, turns=8, steps=2)
    bl = [s.burnless.turn_tokens(n).total_input for n in range(2, 9)]
    fr = [s.cached.turn_tokens(n).total_input for n in range(2, 9)]
    assert all(b2 > b1 for b1, b2 in pairwise(fr))  # replay: every turn carries all before
    assert fr[-1] > 2 * max(bl)
    # burnless: the stable prefix and a capsule per turn; the material varies, not the history.
    steps, prefix, material = 2, econ.PREFIX_TOKENS, 10000
    assert max(bl) < steps * (prefix + 8 * 400) + material


def test_next_turn_reads_the_previous_context_from_cache(small: Any) -> None:
    first_steps = [c for c in small.long.burnless.calls if c.role == "executor"][::3]
    for prev, now in pairwise(first_steps):
        # Everything the previous turn's first request sent before its task is read back.
        assert now.tokens.cache_read >= econ.PREFIX_TOKENS
        assert now.tokens.cache_write < 400  # one capsule and the task
        assert now.tokens.cache_read + now.tokens.cache_write > prev.tokens.cache_read


def test_compaction_replans_and_the_expired_planner_prefix_shows_against_the_bound() -> None:
    s = econ.run_session(
        "x", seed=4, turns=12, steps=3, compaction=CompactionSettings(max_context_tokens=900)
    )
    planners = [c for c in s.burnless.calls if c.role == "planner"]
    assert s.compactions >= 1
    assert s.plans == len(planners) == 1 + s.compactions
    # A re-plan more than 5 minutes after the last planner call finds the planner prefix
    # expired: the simulator writes it again while the bound (no TTL) reads it.
    bound = [b for b in s.bound.calls if b.role == "planner"]
    expired = 0
    for (prev, now), bd in zip(pairwise(planners), bound[1:], strict=True):
        assert bd.tokens.cache_read > 5000
        if now.at - prev.at > 300:
            expired += 1
            assert now.tokens.cache_read == 0
        else:
            assert now.tokens.cache_read == bd.tokens.cache_read
    assert expired >= 1
    assert s.burnless.input_cost > s.bound.input_cost


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
    s = econ.run_session("x", seed=seed, turns=3, steps=steps, prefix_tokens=1500)
    assert s.uncached.tokens.input == s.cached.tokens.total_input
    assert s.uncached.cost >= s.cached.cost
    assert s.burnless.tokens.total_input == s.bound.tokens.total_input
    assert s.burnless.input_cost >= s.bound.input_cost
    assert 0 < s.burnless.read_share(2) <= s.bound.read_share(2) <= 1


# --------------------------------------------------------------------------- the report


def test_main_prints_the_sessions_the_table_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
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
    assert len(verdicts) == 3
    assert rc == (1 if "FAIL" in verdicts else 0)
    # A failed headline says why, with the floor under burnless's cost.
    assert ("why the first target fails" in out) == (verdicts[0] == "FAIL")
    # The short sessions are always printed next to the long one, the model mix on its own.
    assert "long (main)" in out and "short (turns 1-3 of it)" in out and "short, light" in out
    assert "model mix (separate from the headline" in out
    assert "k = 1 (one call per turn)" in out and "k = 2 (main)" in out
    assert "replay compacts at 167,000" in out


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
    assert "burnless / compacting cached replay, same model" in p.stdout
