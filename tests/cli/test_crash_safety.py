"""Nothing lost, nothing misreported when burnless dies mid-turn or cannot write its state.

Each case kills a real `burnless run` (SIGKILL, at a crash point or while its worker runs) or
makes its ledger immutable, then checks what the next run finds: every dispatched call is in
the ledger (its real record, or a `lost` one charged at its worst case), every paid turn's
capsule is in its session, and no seq is used twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Workspace, fake, quoted

PRICE = "price: {input: 3, output: 15}, max_output_tokens: 1000"


def _config(ws: Workspace, command: str, extra: str = "") -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(command)}, {PRICE}}}\n"
              "planner: null\n" + extra)


def test_a_turn_killed_between_its_ledger_record_and_its_capsule_is_restored(
        ws: Workspace) -> None:
    _config(ws, fake("honest"))
    assert ws.run("run", "write out/a.txt one", "--session", "s").returncode == 0
    killed = ws.run("run", "write out/b.txt two", "--session", "s",
                    env={"BURNLESS_FAULT": "after-ledger"})
    assert killed.returncode == -signal.SIGKILL
    assert [c["seq"] for c in ws.capsules("s")] == [1]  # the capsule never made it
    p = ws.run("run", "write out/c.txt three", "--session", "s")
    assert p.returncode == 0, p.stderr
    assert "restored capsule 2" in p.stderr
    caps = ws.capsules("s")
    assert [(c["seq"], c["files"]) for c in caps] == [
        (1, ["out/a.txt"]), (2, ["out/b.txt"]), (3, ["out/c.txt"])]
    assert "restored by a later run" in caps[1]["notes"][-1]
    assert [r["seq"] for r in ws.ledger()] == [1, 2, 3]  # one record each, no seq reused
    assert not list((ws.state / "inflight").iterdir())


def test_another_session_restores_a_killed_turn_when_its_session_is_free(
        ws: Workspace) -> None:
    _config(ws, fake("honest"))
    killed = ws.run("run", "write out/b.txt two", "--session", "s",
                    env={"BURNLESS_FAULT": "after-ledger"})
    assert killed.returncode == -signal.SIGKILL
    assert ws.run("run", "write out/x.txt x", "--session", "other").returncode == 0
    assert [c["files"] for c in ws.capsules("s")] == [["out/b.txt"]]
    assert len(ws.ledger()) == 2


def _kill_during_the_call(ws: Workspace, tmp_path: Path) -> None:
    """Start a run whose worker sleeps, SIGKILL burnless while the worker runs."""
    started = tmp_path / "started"
    worker = tmp_path / "slow_worker.py"
    worker.write_text(
        "import sys, time, pathlib\n"
        f"pathlib.Path({str(started)!r}).write_text('x')\n"
        "sys.stdin.read(); time.sleep(30)\n"
    )
    _config(ws, f"{sys.executable} {worker}")
    p = subprocess.Popen([sys.executable, "-m", "burnless", "run", "write a.txt x",
                          "--session", "s"], cwd=ws.root, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_a_call_cut_off_by_sigkill_is_recorded_as_lost_at_its_worst_case(
        ws: Workspace, tmp_path: Path) -> None:
    _kill_during_the_call(ws, tmp_path)
    assert ws.ledger() == []  # the killed run recorded nothing
    _config(ws, fake("honest"), "budget: {max_cost_per_day: 100}\n")
    p = ws.run("run", "write b.txt y", "--session", "t")
    assert p.returncode == 0, p.stderr
    assert "left unrecorded as lost" in p.stderr
    lost = [r for r in ws.ledger() if r["status"] == "lost"]
    assert len(lost) == 1
    rec = lost[0]
    assert rec["session"] == "s" and rec["cost_source"] == "estimated"
    # the worst case: the prompt at the input rate and the whole output cap
    worst = (rec["tokens"]["input"] * 3 + 1000 * 15) / 1e6
    assert rec["cost_usd"] == pytest.approx(worst, rel=1e-6) and rec["cost_usd"] > 0.015
    # and budgets count it: settled spend of the day includes the lost call
    from burnless.accounting.budget import today
    from burnless.accounting.index import spend_for

    spent = spend_for(ws.state, session="s", day=today())
    assert spent.session_cost == pytest.approx(rec["cost_usd"]) and spent.session_calls == 1


def test_a_lost_call_is_recorded_once_by_concurrent_runs(ws: Workspace, tmp_path: Path) -> None:
    _kill_during_the_call(ws, tmp_path)
    _config(ws, fake("honest"))
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write f{i}.txt x",
                               "--session", f"p{i}"], cwd=ws.root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(6)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    assert [r["status"] for r in ws.ledger()].count("lost") == 1


chattr = pytest.mark.skipif(
    os.geteuid() != 0 or subprocess.run(["which", "chattr"], capture_output=True).returncode,
    reason="needs root and chattr for an immutable file")


@chattr
def test_an_immutable_ledger_refuses_the_call_before_it_is_dispatched(
        ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    _config(ws, fake("honest", "--record", str(rec)))
    assert ws.run("run", "write out/a.txt a").returncode == 0
    ledger = ws.state / "ledger.jsonl"
    subprocess.run(["chattr", "+i", str(ledger)], check=True)
    try:
        p = ws.run("run", "write out/b.txt b", "--json")
    finally:
        subprocess.run(["chattr", "-i", str(ledger)], check=True)
    assert p.returncode == 2, p.stderr
    assert "append to the ledger" in p.stdout and "ledger.jsonl" in p.stdout
    assert "nothing was dispatched" in p.stdout and "lock" not in p.stdout
    assert not (ws.root / "out" / "b.txt").exists()
    assert len(list(rec.iterdir())) == 3  # the first run's prompt, argv, env: no second call
    assert "Traceback" not in p.stderr


@chattr
def test_a_ledger_that_turns_immutable_during_the_call_keeps_the_record_for_later(
        ws: Workspace, tmp_path: Path) -> None:
    _config(ws, fake("honest"))
    assert ws.run("run", "write out/a.txt a").returncode == 0
    ledger = ws.state / "ledger.jsonl"
    worker = tmp_path / "freeze.py"
    worker.write_text(
        "import subprocess, sys, json\n"
        "sys.stdin.read()\n"
        f"subprocess.run(['chattr', '+i', {str(ledger)!r}], check=True)\n"
        "print(json.dumps({'status': 'ok', 'kind': 'thought', 'summary': 'done'}))\n")
    _config(ws, f"{sys.executable} {worker}")
    try:
        p = ws.run("run", "answer something", "--json", "--session", "f")
    finally:
        subprocess.run(["chattr", "-i", str(ledger)], check=True)
    assert p.returncode == 1, p.stderr  # the call was made: not "nothing dispatched" (2)
    assert "was made, but its ledger record could not be written" in p.stdout
    assert "ledger.jsonl" in p.stdout and "inflight" in p.stdout and "lock" not in p.stdout
    assert "Traceback" not in p.stderr
    assert len(ws.ledger()) == 1
    _config(ws, fake("honest"))
    assert ws.run("run", "write out/c.txt c").returncode == 0
    recs = ws.ledger()
    assert [r["status"] for r in recs] == ["ok", "ok", "ok"]
    assert "recorded by a later run" in recs[1]["reason"]
    assert [c["seq"] for c in ws.capsules()] == [1, 2]
    assert [c["seq"] for c in ws.capsules("f")] == [1]  # the frozen turn's capsule, restored
