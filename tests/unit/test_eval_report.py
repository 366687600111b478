"""The statistics of `burnless eval`: Wilson intervals, the frontier and the recommendation."""

from __future__ import annotations

import math

import pytest

from burnless.evaluation.report import JobResult, summarize, wilson


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # reference values (Wilson score interval, z = 1.96), e.g. from statsmodels proportion_confint
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634),
    (7, 10, 0.3968, 0.8922), (81, 100, 0.7222, 0.8749), (1, 1, 0.2065, 1.0),
])
def test_wilson_matches_reference_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_is_inside_zero_one_and_contains_the_estimate() -> None:
    for n in range(1, 60):
        for k in range(n + 1):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
            assert not math.isnan(lo + hi)
    assert wilson(0, 0) == (0.0, 1.0)


def _jobs(pair: str, wins: int, n: int, cost: float) -> list[JobResult]:
    p, e = pair.split(":")
    return [JobResult(f"t{i}", p, e, 1, i < wins, cost, 1, 1.0, "ok") for i in range(n)]


def test_the_cheaper_pair_is_recommended_when_its_success_is_not_significantly_worse() -> None:
    rep = summarize(_jobs("gold:silver", 9, 10, 0.10) + _jobs("gold:bronze", 8, 10, 0.03),
                    ["gold:silver", "gold:bronze"], 20)
    assert rep.recommended == "gold:bronze"
    assert "same success as gold:silver within the 95% interval" in rep.reason
    assert "0.30x the cost" in rep.reason
    assert all(p.frontier for p in rep.pairs)


def test_a_cheaper_pair_that_fails_significantly_more_is_not_recommended() -> None:
    rep = summarize(_jobs("gold:silver", 20, 20, 0.10) + _jobs("gold:bronze", 6, 20, 0.03),
                    ["gold:silver", "gold:bronze"], 40)
    assert rep.recommended == "gold:silver"
    assert "every cheaper pair succeeds significantly less often" in rep.reason


def test_a_dominated_pair_is_off_the_frontier_and_unknown_cost_is_not_ranked() -> None:
    jobs = (_jobs("a:b", 5, 10, 0.2) + _jobs("c:d", 7, 10, 0.1)
            + [JobResult("t", "e", "f", 1, True, None, 1, 1.0, "ok")])
    rep = summarize(jobs, ["a:b", "c:d", "e:f"], 21)
    frontier = {p.pair: p.frontier for p in rep.pairs}
    assert frontier == {"a:b": False, "c:d": True, "e:f": False}
    ef = next(p for p in rep.pairs if p.pair == "e:f")
    assert ef.total_cost is None and ef.cost_per_success is None
    assert rep.recommended == "c:d"


# -- edge cases (review)


def test_one_failure_in_twenty_is_not_significantly_worse_than_none() -> None:
    """20/20 against 19/20: the difference is well within chance (Newcombe's interval for
    it spans 0). Comparing the cheaper pair's interval with the best pair's point estimate
    (100%) made any pair with a single failure 'significantly' worse."""
    rep = summarize(_jobs("gold:silver", 20, 20, 0.10) + _jobs("gold:bronze", 19, 20, 0.01),
                    ["gold:silver", "gold:bronze"], 40)
    assert rep.recommended == "gold:bronze"
    assert "0.10x the cost" in rep.reason


def test_no_pair_is_recommended_when_none_ever_succeeds() -> None:
    rep = summarize(_jobs("gold:silver", 0, 5, 0.10) + _jobs("gold:bronze", 0, 5, 0.01),
                    ["gold:silver", "gold:bronze"], 10)
    assert rep.recommended is None
    assert "no pair succeeded" in rep.reason


def test_a_better_pair_of_unknown_cost_is_named_not_silently_skipped() -> None:
    jobs = (_jobs("a:b", 3, 10, 0.2)
            + [JobResult(f"t{i}", "c", "d", 1, True, None, 1, 1.0, "ok") for i in range(10)])
    rep = summarize(jobs, ["a:b", "c:d"], 20)
    assert rep.recommended == "a:b"
    assert "the highest success of known cost" in rep.reason  # c:d succeeds more often
    assert "not ranked, cost unknown: c:d (100% success)" in rep.reason


def test_equal_pairs_recommend_the_cheaper_and_a_lone_pair_itself() -> None:
    rep = summarize(_jobs("a:b", 10, 10, 0.2) + _jobs("c:d", 10, 10, 0.1), ["a:b", "c:d"], 20)
    assert rep.recommended == "c:d"
    lone = summarize(_jobs("a:b", 3, 4, 0.2), ["a:b"], 4)
    assert lone.recommended == "a:b"


def test_a_job_that_could_not_run_is_not_a_failure_of_its_pair() -> None:
    jobs = _jobs("a:b", 5, 5, 0.1) + [JobResult("t9", "a", "b", 1, False, None, 0, 0.0, "error",
                                                "git worktree add failed: disk full")]
    rep = summarize(jobs, ["a:b"], 6)
    (ab,) = rep.pairs
    assert (ab.runs, ab.successes, ab.total_cost) == (5, 5, 0.5) and rep.done == 5
