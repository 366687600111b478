"""The circuit breaker through the real CLI: skip a failing tier, say why, honour --tier."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from tests.conftest import Workspace, fake


def config(ws: Workspace, rec: Path, *, executor: str, ladder: list[str], cooldown: float = 600,
           **modes: str) -> None:
    lines = ["tiers:"]
    for name, mode in modes.items():
        cmd = fake(mode, "--record", str(rec / name))
        lines.append(f"  {name}: {{command: {orjson.dumps(cmd).decode()}}}")
    lines += [
        f"executor: {executor}",
        "planner: null",
        f"routing: {{ladder: {orjson.dumps(ladder).decode()}, "
        f"breaker: {{failures: 3, cooldown: {cooldown}}}}}",
    ]
    ws.config("\n".join(lines) + "\n")


def calls(rec: Path, tier: str) -> int:
    return len(list((rec / tier).glob("prompt-*.txt")))


def fail_three_times(ws: Workspace) -> None:
    for i in range(3):
        p = ws.run("run", f"write f{i}.txt x")
        assert p.returncode == 1, p.stderr


def test_open_breaker_hands_the_turn_to_the_next_rung(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, executor="bronze", ladder=["bronze", "silver"], bronze="crasher",
           silver="honest")
    fail_three_times(ws)
    assert calls(rec, "bronze") == 3
    code, res = ws.json("run", "write ok.txt served")
    assert code == 0, res
    assert res["tier"] == "silver" and (ws.root / "ok.txt").read_text() == "served"
    assert calls(rec, "bronze") == 3 and calls(rec, "silver") == 1
    last = ws.ledger()[-1]
    assert last["tier"] == "silver" and last["status"] == "ok"
    reasons = " | ".join(last["route"]["reasons"])
    assert "breaker open on bronze: 3 failures in a row" in reasons
    assert "silver serves instead" in reasons


def test_explicit_tier_is_honoured_while_open(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, executor="bronze", ladder=["bronze", "silver"], bronze="crasher",
           silver="honest")
    fail_three_times(ws)
    p = ws.run("run", "write t.txt x", "--tier", "bronze")
    assert p.returncode == 1
    assert calls(rec, "bronze") == 4 and calls(rec, "silver") == 0
    assert ws.ledger()[-1]["tier"] == "bronze"


def test_top_rung_fails_at_once_naming_the_breaker(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, executor="silver", ladder=["bronze", "silver"], bronze="honest",
           silver="crasher")
    fail_three_times(ws)
    p = ws.run("run", "write t.txt x")
    assert p.returncode == 1
    assert "breaker open on silver" in p.stdout + p.stderr
    assert calls(rec, "silver") == 3 and calls(rec, "bronze") == 0  # nothing dispatched
    last = ws.ledger()[-1]
    assert last["status"] == "refused" and last["refused_by"] == "breaker"
    assert "breaker open on silver" in last["reason"]


def test_tier_not_on_the_ladder_fails_at_once(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, executor="local", ladder=["bronze", "silver"], bronze="honest",
           silver="honest", local="crasher")
    fail_three_times(ws)
    code, res = ws.json("run", "write t.txt x")
    assert code == 1 and res["status"] == "failed"
    assert "breaker open on local" in res["summary"]
    assert calls(rec, "local") == 3 and calls(rec, "bronze") == calls(rec, "silver") == 0


def test_breaker_closes_after_the_cooldown(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, executor="bronze", ladder=["bronze", "silver"], cooldown=1.0,
           bronze="crasher", silver="honest")
    fail_three_times(ws)
    time.sleep(1.2)
    p = ws.run("run", "write again.txt x")
    assert p.returncode == 1  # bronze was tried again (and crashed again)
    assert calls(rec, "bronze") == 4 and calls(rec, "silver") == 0


def test_a_success_resets_the_streak(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config(ws, rec, executor="bronze", ladder=["bronze", "silver"], bronze="crasher",
           silver="honest")
    for _ in range(2):
        assert ws.run("run", "write x.txt x").returncode == 1
    config(ws, rec, executor="bronze", ladder=["bronze", "silver"], bronze="honest",
           silver="honest")
    assert ws.run("run", "write y.txt y", "--repin").returncode == 0
    config(ws, rec, executor="bronze", ladder=["bronze", "silver"], bronze="crasher",
           silver="honest")
    for _ in range(2):
        assert ws.run("run", "write z.txt z", "--repin").returncode == 1
    assert ws.ledger()[-1]["tier"] == "bronze"  # 2 + 2 failures, never 3 in a row
    assert calls(rec, "silver") == 0
