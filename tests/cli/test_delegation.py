"""Delegation trees and per-call ceilings.

A burnless run started from inside a worker records its parent and root call; one budget
(`max_cost_per_task`) covers the whole tree under its root; an agent CLI's call reserves what
it may really cost (a loop of requests, not one prompt), so parallel calls cannot overspend.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.conftest import Workspace, fake, quoted

PRICE = "price: {input: 1000, output: 1000}, max_output_tokens: 100"


def _worst_case(tmp_path: Path, *run: str) -> float:
    """What one call of ``run`` may cost on PRICE (its prompt and the whole output cap), from
    the prompt of a calibration run of it in a workspace of its own."""
    calib = Workspace(tmp_path / "calib")
    calib.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, {PRICE}}}\n"
                 "planner: null\n")
    assert calib.run("run", *run).returncode == 0
    return (calib.ledger()[0]["tokens"]["input"] + 100) * 1000 / 1e6


def test_a_nested_run_records_its_parent_and_root(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('nested', '--record', str(rec)))}}}\n"
              f"  bronze: {{command: {quoted(fake('honest'))}}}\n"
              "planner: null\nrouting: {rules: [{regex: '^inner', tier: bronze}]}\n")
    p = ws.run("run", "nest child inner write c.txt x")
    assert p.returncode == 0, p.stderr
    assert (rec / "nested-exit").read_text().startswith("0")
    outer, inner = sorted(ws.ledger(), key=lambda r: "parent_run_id" in r)
    assert "parent_run_id" not in outer and "root_run_id" not in outer
    assert inner["parent_run_id"] == outer["run_id"] == inner["root_run_id"]
    assert inner["depth"] == 1 and inner["session"] == "child"


def test_max_cost_per_task_covers_the_tree_under_its_root(ws: Workspace, tmp_path: Path) -> None:
    """The child would push its root's tree over max_cost_per_task: refused, nothing sent."""
    rec, child_rec = tmp_path / "rec", tmp_path / "child"
    worst = _worst_case(tmp_path, "nest child inner write c.txt x")
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('nested', '--record', str(rec)))}, "
              f"{PRICE}}}\n"
              f"  bronze: {{command: {quoted(fake('honest', '--record', str(child_rec)))}, "
              f"{PRICE}}}\n"
              "planner: null\nrouting: {rules: [{regex: '^inner', tier: bronze}]}\n"
              f"budget: {{max_cost_per_task: {1.5 * worst:.6f}}}\n")
    p = ws.run("run", "nest child inner write c.txt x")
    assert p.returncode == 0, p.stderr  # the root itself fits
    code, err = (rec / "nested-exit").read_text().split("\n", 1)
    assert code == "4" and "max_cost_per_task" in err and "task tree" in err, err
    assert not child_rec.exists()  # the child was never dispatched
    refused = [r for r in ws.ledger() if r["status"] == "refused"]
    assert len(refused) == 1 and refused[0]["refused_by"] == "budget"
    assert refused[0]["parent_run_id"] == refused[0]["root_run_id"]
    # a run of its own (no tree) with the same budget is not held back by the old tree
    assert ws.run("run", "write solo.txt x", "--tier", "bronze").returncode == 0
    assert not list((ws.state / "cache" / "trees").glob("*.json"))  # the root forgot its tree


def test_concurrent_children_of_one_tree_cannot_overspend(ws: Workspace, tmp_path: Path) -> None:
    worst = _worst_case(tmp_path, "write p0.txt x", "--session", "p0")
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('slow'))}, {PRICE}}}\n"
              f"planner: null\nbudget: {{max_cost_per_task: {2.2 * worst:.6f}}}\n")
    tree = {"BURNLESS_PARENT_RUN": "r-20261201T000000-abcdef",
            "BURNLESS_ROOT_RUN": "r-20261201T000000-abcdef", "BURNLESS_TREE": "t-0123456789ab",
            "BURNLESS_DEPTH": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write p{i}.txt x",
                               "--session", f"p{i}"], cwd=ws.root, env={**os.environ, **tree},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(6)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    assert codes.count(0) <= 2 and set(codes) <= {0, 4}, codes
    spent = sum(r["cost_usd"] for r in ws.ledger() if r["status"] == "ok")
    assert spent <= 2.2 * worst + 1e-9
    assert all(r.get("root_run_id") == tree["BURNLESS_ROOT_RUN"] for r in ws.ledger())


def _agent_tier(extra: str = "") -> str:
    return (f"tiers:\n  silver: {{command: {quoted(fake('claude-json'))}, "
            f"format: claude-json, price: {{input: 1, output: 5}}{extra}}}\nplanner: null\n")


def test_an_agent_cli_call_reserves_what_the_budget_has_left(ws: Workspace) -> None:
    """One prompt is not an agent loop's worst case: without max_cost_per_call the call may
    cost whatever is left, so a second call in flight is refused rather than overspending."""
    ws.config(_agent_tier() + "budget: {max_cost_per_day: 0.5}\n")
    from burnless.accounting.budget import Guard
    from burnless.config import load_config

    cfg = load_config(cwd=ws.root)
    g = Guard(cfg)
    first = g.reserve(session="a", tier=cfg.tiers["silver"], prompt_tokens=100, task_spent=0)
    assert first is not None and abs(first.amount - 0.5) < 1e-9
    p = ws.run("run", "write b.txt x", "--session", "b")
    assert p.returncode == 4 and "reserved by runs in flight" in p.stderr, p.stderr
    g.release(first)
    assert ws.run("run", "write b.txt x", "--session", "b").returncode == 0


def test_max_cost_per_call_lets_agent_calls_run_side_by_side(ws: Workspace) -> None:
    ws.config(_agent_tier(", max_cost_per_call: 0.1") + "budget: {max_cost_per_day: 0.25}\n")
    from burnless.accounting.budget import Guard
    from burnless.config import load_config

    cfg = load_config(cwd=ws.root)
    g = Guard(cfg)
    held = [g.reserve(session=f"s{i}", tier=cfg.tiers["silver"], prompt_tokens=100,
                      task_spent=0) for i in range(2)]
    assert [round(r.amount, 6) for r in held if r] == [0.1, 0.1]
    p = ws.run("run", "write c.txt x", "--session", "c")
    assert p.returncode == 4 and "reserves up to $0.1000" in p.stderr, p.stderr
    reservations = orjson.loads((ws.state / "reservations.json").read_bytes())
    assert len(reservations) == 2


def test_a_stream_json_call_is_stopped_when_its_reported_cost_passes_its_ceiling(
        ws: Workspace, tmp_path: Path) -> None:
    """Claude Code's stream-json reports usage per model request: the call is stopped as soon
    as what it reported, priced, passes max_cost_per_call, and the ledger says why."""
    done = tmp_path / "finished"
    worker = tmp_path / "loop.py"
    worker.write_text(
        "import json, sys, time\n"
        "sys.stdin.read()\n"
        "for i in range(1, 40):\n"
        "    print(json.dumps({'type': 'assistant', 'message': {'id': f'm{i}', "
        "'model': 'claude-sonnet-4-6', 'content': [], 'usage': {'input_tokens': 10000, "
        "'output_tokens': 1000, 'cache_read_input_tokens': 0, "
        "'cache_creation_input_tokens': 0}}}), flush=True)\n"
        "    time.sleep(0.1)\n"
        f"open({str(done)!r}, 'w').write('x')\n")
    # sonnet: $3 / $15 per million: each request costs $0.045; the ceiling allows two
    ws.config(f"tiers:\n  silver: {{command: {quoted(sys.executable + ' ' + str(worker))}, "
              "format: claude-stream-json, model: claude-sonnet-4-6, max_cost_per_call: 0.1}\n"
              "planner: null\n")
    p = ws.run("run", "loop", "--json")
    assert p.returncode == 1, p.stderr
    out = orjson.loads(p.stdout)
    assert "past the call's ceiling of $0.1000" in out["summary"]
    assert not done.exists()  # the worker was stopped, not left to finish
    (rec,) = ws.ledger()
    assert rec["status"] == "failed" and "ceiling" in rec["reason"]
    assert 0.1 < rec["cost_usd"] < 0.2  # what it had spent when stopped


# -- adversarial cases (review)


def test_a_small_max_cost_per_call_does_not_shrink_a_one_request_reservation(
        ws: Workspace, tmp_path: Path) -> None:
    """A plain command tier makes one request: its worst case is a true bound, and nothing
    stops it at max_cost_per_call. A smaller cap must not become its reservation, or parallel
    runs each reserve the cap, spend the worst case, and overspend the budget."""
    worst = _worst_case(tmp_path, "write p0.txt x", "--session", "p0")
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('slow'))}, {PRICE}, "
              f"max_cost_per_call: {worst:.6f}}}\n"
              f"planner: null\nbudget: {{max_cost_per_day: {2.2 * worst:.6f}}}\n")
    # the cap holds one call: a reservation of $0.000001 would let all six through
    ws.config((ws.state / "config.yaml").read_text().replace(f"{worst:.6f}}}", "0.000001}", 1))
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write p{i}.txt x",
                               "--session", f"p{i}"], cwd=ws.root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(6)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    spent = sum(r["cost_usd"] for r in ws.ledger() if r["status"] == "ok")
    assert spent <= 2.2 * worst + 1e-9, (codes, spent, worst)


def test_a_one_request_call_whose_worst_case_passes_max_cost_per_call_is_refused(
        ws: Workspace, tmp_path: Path) -> None:
    """max_cost_per_call is enforced where it can be: for a one-request tier, before the
    call, since its worst case is known (and nothing could stop it half-way)."""
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest', '--record', str(rec)))}, "
              f"{PRICE}, max_cost_per_call: 0.001}}\nplanner: null\n")
    p = ws.run("run", "write a.txt x")
    assert p.returncode == 4, p.stderr
    assert "max_cost_per_call" in p.stderr and "max_output_tokens" in p.stderr
    assert not rec.exists()
    (refused,) = ws.ledger()
    assert refused["status"] == "refused" and refused["refused_by"] == "budget"


def test_a_tree_file_that_is_a_fifo_does_not_hang_every_reservation(ws: Workspace) -> None:
    """The tree's running total is read under the budget lock: a FIFO there (planted by a
    worker that knows its tree id) used to block that read, and with it every run of the
    workspace. It reads as no spend yet, and the next settle replaces it."""
    tree = {"BURNLESS_PARENT_RUN": "r-20261201T000000-abcdef",
            "BURNLESS_ROOT_RUN": "r-20261201T000000-abcdef", "BURNLESS_TREE": "t-0123456789ab",
            "BURNLESS_DEPTH": "1"}
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, {PRICE}}}\n"
              "planner: null\nbudget: {max_cost_per_task: 100}\n")
    fifo = ws.state / "cache" / "trees" / "t-0123456789ab.json"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    p = ws.run("run", "write a.txt x", "--session", "c", env=tree, timeout=30)
    assert p.returncode == 0, p.stderr
    assert orjson.loads(fifo.read_bytes())["spent"] > 0


def test_a_child_of_an_uncapped_agent_cli_root_is_told_what_to_set(ws: Workspace,
                                                                   tmp_path: Path) -> None:
    """Under max_cost_per_task, a root call on an agent CLI (Claude Code calling burnless
    through MCP) with no max_cost_per_call reserves the whole task budget: every call it
    delegates is refused. The refusal must say so and what to set; with the cap set, the
    child runs."""
    rec = tmp_path / "rec"
    tiers = (f"tiers:\n  silver: {{command: {quoted(fake('nested', '--record', str(rec)))}, "
             "format: claude-json, price: {input: 1, output: 5}EXTRA}\n"
             f"  bronze: {{command: {quoted(fake('honest'))}, price: {{input: 1, output: 5}}}}\n"
             "planner: null\nrouting: {rules: [{regex: '^inner', tier: bronze}]}\n"
             "budget: {max_cost_per_task: 1.0}\n")
    ws.config(tiers.replace("EXTRA", ""))
    assert ws.run("run", "nest child inner write c.txt x").returncode == 0
    code, err = (rec / "nested-exit").read_text().split("\n", 1)
    assert code == "4" and "set tiers.silver.max_cost_per_call" in err, err
    ws.config(tiers.replace("EXTRA", ", max_cost_per_call: 0.5"))
    assert ws.run("run", "nest child2 inner write d.txt x").returncode == 0
    assert (rec / "nested-exit").read_text().startswith("0")
