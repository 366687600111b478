"""`burnless demo`: the README's main job, offline, through the whole pipeline.

The demo runs twice here, as a user runs it: once as text, once with ``--json``. The figures
are checked against each other (per turn against totals, the verdict against the figures it
states), and the verdict's wording is checked on reports built to land in each regime.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.demo import (
    BASELINE_MODEL,
    GOLD,
    SILVER,
    TURNS,
    Baseline,
    DemoReport,
    Spend,
    TurnRow,
    legacy_source,
    turn_prompt,
)
from burnless.sim.model import parse_actions
from burnless.sim.replay import COMPACT_AT, CONTEXT_WINDOW


def _demo(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "burnless", "demo", *args], capture_output=True,
                       text=True, timeout=120)
    return p, time.monotonic() - t0


@pytest.fixture(scope="module")
def text_run() -> tuple[subprocess.CompletedProcess[str], float]:
    return _demo()


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    p, _ = _demo("--json")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no progress lines under --json
    out = orjson.loads(p.stdout)  # one JSON object, nothing else
    assert isinstance(out, dict)
    return out


def test_demo_runs_offline_and_labels_everything_simulated(
    text_run: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    p, elapsed = text_run
    assert p.returncode == 0, p.stderr
    assert elapsed < 30
    out = p.stdout
    assert "SIMULATED" in p.stderr
    heads = ("burnless session", "the same")
    titles = [line for line in out.splitlines() if line.startswith(heads)]
    assert len(titles) == 2 and all("simulated" in t for t in titles)
    assert "plan gold + exec silver" in out  # the planner fired on gold, then the executor
    assert "failed (missing inventory/api.py)" in out  # the lying turn caught by the audit
    assert f"one conversation on {SILVER}, compacting, cached" in out
    assert f"one conversation on {SILVER}, compacting, no caching" in out
    assert "Verdict (simulated):" in out and "1 false claim(s) caught" in out


def test_demo_json_is_the_same_story(data: dict[str, Any]) -> None:
    assert data["simulated"] is True
    assert len(data["turns"]) == len(TURNS) >= 10
    assert [t["exit_code"] for t in data["turns"]].count(3) == data["false_claims_caught"] == 1
    assert data["burnless"]["planner"] == GOLD and data["burnless"]["executor"] == SILVER
    assert data["verdict"].startswith("Verdict (simulated):")


def test_the_figures_add_up(data: dict[str, Any]) -> None:
    turns = data["turns"]
    for key, total in (("burnless", data["burnless"]),
                       ("baseline_cached", data["baseline"]["cached"]),
                       ("baseline_uncached", data["baseline"]["uncached"])):
        for field in ("input", "output", "cache_read", "cache_write"):
            assert sum(t[key][field] for t in turns) == total[field], (key, field)
        assert sum(t[key]["cost_usd"] for t in turns) == pytest.approx(total["cost_usd"])
    cached, uncached = data["baseline"]["cached"], data["baseline"]["uncached"]

    def sent(d: dict[str, int]) -> int:
        return d["input"] + d["cache_read"] + d["cache_write"]

    # The same conversation, billed with and without prompt caching.
    assert sent(cached) == sent(uncached) and uncached["cache_read"] == 0
    assert cached["cache_read"] > 0 and cached["cost_usd"] < uncached["cost_usd"]
    # From turn 2 on, burnless's executor reads its stable prefix from the cache.
    assert all(t["burnless"]["cache_read"] > 0 for t in turns[1:])
    assert 0 < data["burnless"]["planner_cost_usd"] < data["burnless"]["cost_usd"]


def test_the_baseline_is_one_compacting_conversation_on_the_executors_model(
    data: dict[str, Any],
) -> None:
    base = data["baseline"]
    assert BASELINE_MODEL == SILVER == data["burnless"]["executor"]
    for b in (base["cached"], base["uncached"]):
        assert b["model"] == SILVER
        assert b["largest_request"] <= base["window"] == CONTEXT_WINDOW
    assert base["compact_at"] == COMPACT_AT
    # Every turn's requests carry every file read so far: the transcript is replayed.
    read_so_far = 0
    for t in data["turns"]:
        read_so_far += t["read_tokens"]
        c = t["baseline_cached"]
        assert c["input"] + c["cache_read"] + c["cache_write"] >= read_so_far
    # ... which burnless does not: its last turn sends less than the conversation's.
    last = data["turns"][-1]
    assert sum(last["burnless"][k] for k in ("input", "cache_read", "cache_write")) < sum(
        last["baseline_cached"][k] for k in ("input", "cache_read", "cache_write"))


def test_the_verdict_states_the_demos_own_figures(data: dict[str, Any]) -> None:
    verdict = data["verdict"]
    ratio = data["burnless"]["cost_usd"] / data["baseline"]["cached"]["cost_usd"]
    assert data["ratio_vs_cached"] == pytest.approx(ratio, abs=1e-4)
    stated = [float(x) for x in re.findall(r"(\d+\.\d+)x", verdict)]
    assert stated[:2] == [
        round(ratio, 2),
        round(data["burnless"]["cost_usd"] / data["baseline"]["uncached"]["cost_usd"], 2),
    ]
    first, last = data["turns"][0], data["turns"][-1]
    for t in (first, last):
        c = t["baseline_cached"]
        assert f"{c['input'] + c['cache_read'] + c['cache_write']:,}" in verdict
    if ratio < 0.95:
        assert f"burnless cost {ratio:.2f}x what the same turns cost" in verdict
    assert f"${data['burnless']['planner_cost_usd']:.4f} for its planner on {GOLD}" in verdict


def _report(burnless_cost: float, cached_cost: float, compactions: int = 0) -> DemoReport:
    def spend(cost: float, sent: int) -> Spend:
        return Spend(Tokens(cache_read=sent), cost)

    row = TurnRow(1, "t", "exec silver", "ok", "passed", 0, 10, spend(burnless_cost, 100),
                  spend(cached_cost, 200), spend(cached_cost * 5, 200))
    base = Baseline(SILVER, True, spend(cached_cost, 200), compactions, 200)
    return DemoReport((row,), spend(burnless_cost, 100), 0.001, base,
                      Baseline(SILVER, False, spend(cached_cost * 5, 200), compactions, 200),
                      CONTEXT_WINDOW, COMPACT_AT, 1.0)


@pytest.mark.parametrize(
    ("burnless", "cached", "says"),
    [
        (0.5, 1.0, "burnless cost 0.50x what the same turns cost"),
        (1.0, 1.0, "burnless cost about the same (1.00x) as the same turns"),
        (1.3, 1.0, "burnless cost more, 1.30x what the same turns cost"),
    ],
)
def test_the_verdict_never_claims_a_saving_the_figures_do_not_show(
    burnless: float, cached: float, says: str
) -> None:
    verdict = _report(burnless, cached).verdict()
    assert says in verdict
    assert "never reached the 160,000-token compaction point" in verdict
    assert "compacted 2 time(s)" in _report(burnless, cached, compactions=2).verdict()


def test_each_turn_reads_its_files_from_disk(tmp_path: Path) -> None:
    (tmp_path / "legacy").mkdir()
    text = legacy_source("stock")
    (tmp_path / "legacy" / "stock.py").write_text(text, encoding="utf-8")
    (tmp_path / "legacy" / "settings.py").write_text("X = 1\n", encoding="utf-8")
    prompt, read = turn_prompt(TURNS[0], tmp_path)
    assert prompt.startswith(TURNS[0].task)
    assert text in prompt and "X = 1\n" in prompt
    assert read == estimate_tokens(text) + estimate_tokens("X = 1\n")


def test_the_files_read_are_not_taken_for_instructions(tmp_path: Path) -> None:
    """The simulated model acts on the turn's instruction only, not on the code it reads."""
    for name in ("settings", "stock", "models", "storage", "api", "pricing", "reports", "sync",
                 "cli", "audit_log", "orders", "suppliers"):
        (tmp_path / "legacy").mkdir(exist_ok=True)
        (tmp_path / "legacy" / f"{name}.py").write_text(legacy_source(name), encoding="utf-8")
    for turn in TURNS:
        for rel in turn.reads:
            path = tmp_path / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("# written by an earlier turn\n", encoding="utf-8")
        prompt, read = turn_prompt(turn, tmp_path)
        assert read > 0
        assert parse_actions(prompt) == parse_actions(turn.task) != ()
