"""`cache.responses`: the same read-only prompt to the same tier is answered without a call."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Workspace, fake, quoted


def config(ws: Workspace, rec: Path, extra: str = "") -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest', '--record', str(rec)))}}}\n"
              "planner: null\ncache: {responses: true}\n" + extra)


def test_a_thought_turn_is_answered_from_the_cache(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec)
    code, first = ws.json("run", "explain the retry policy", "--session", "a")
    assert code == 0 and first["calls"][0]["run_id"]
    code, second = ws.json("run", "explain the retry policy", "--session", "b")
    assert code == 0
    assert len(list(rec.glob("prompt-*.txt"))) == 1  # the worker ran once
    assert second["summary"] == first["summary"]
    records = ws.ledger()
    assert [r["cached"] for r in records] == [False, True]
    assert records[1]["cost_usd"] == 0.0 and records[1]["tokens"]["input"] == 0
    # A different session state is a different prompt: no hit.
    ws.json("run", "explain the retry policy", "--session", "a")
    assert len(list(rec.glob("prompt-*.txt"))) == 2


def test_execution_turns_are_never_cached(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec)
    assert ws.run("run", "write x.txt x", "--session", "a").returncode == 0
    assert ws.run("run", "write x.txt x", "--session", "b").returncode == 0
    assert len(list(rec.glob("prompt-*.txt"))) == 2
    assert [r["cached"] for r in ws.ledger()] == [False, False]


def test_expired_entries_are_not_used(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, extra="")
    ws.config((ws.state / "config.yaml").read_text().replace("{responses: true}",
                                                              "{responses: true, ttl: 0}"))
    ws.run("run", "explain it", "--session", "a")
    ws.run("run", "explain it", "--session", "b")
    assert len(list(rec.glob("prompt-*.txt"))) == 2
