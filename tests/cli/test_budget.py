"""Budget guards through the real CLI: refuse before dispatch, settle after, never overspend."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from burnless.accounting import ledger
from burnless.accounting.index import spend_for
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from tests.conftest import Workspace, fake


def tier_line(name: str, cmd: str, extra: str = "") -> str:
    return f"  {name}: {{command: {orjson.dumps(cmd).decode()}{', ' + extra if extra else ''}}}\n"


def ok_records(ws: Workspace) -> list[dict]:
    return [r for r in ws.ledger() if r["status"] != "refused"]


def test_refused_before_dispatch_with_limit_spend_and_reservation(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config("tiers:\n" + tier_line("silver", fake("honest", "--record", str(rec)),
                                     "model: claude-haiku-4-5, max_output_tokens: 100000")
              + "budget: {max_cost_per_task: 0.05}\n")
    p = ws.run("run", "write a.txt hello")
    assert p.returncode == 4, p.stderr
    assert "budget.max_cost_per_task = $0.0500" in p.stderr
    assert "has spent $0.0000" in p.stderr and "reserves up to $0.5" in p.stderr
    assert "nothing was dispatched" in p.stderr
    assert not rec.exists(), "the worker must never start"
    assert not (ws.root / "a.txt").exists()
    (refusal,) = ws.ledger()
    assert refusal["status"] == "refused" and refusal["refused_by"] == "budget"
    assert "max_cost_per_task" in refusal["reason"] and refusal["tier"] == "silver"
    # --json: one object on stdout, same exit code.
    code, res = ws.json("run", "write a.txt hello")
    assert code == 4 and res["ok"] is False and res["error_type"] == "BudgetExceeded"
    assert "max_cost_per_task" in res["error"]


def test_session_spend_so_far_counts(ws: Workspace) -> None:
    # claude-json reports $0.0123 per call; the worst case of one call is about $0.021.
    ws.config("tiers:\n" + tier_line("silver", fake("claude-json"),
                                     "model: claude-haiku-4-5, max_output_tokens: 4000")
              + "budget: {max_cost_per_session: 0.03}\n")
    assert ws.run("run", "write a.txt 1", "--session", "s").returncode == 0
    p = ws.run("run", "write b.txt 2", "--session", "s")
    assert p.returncode == 4, p.stderr
    assert "budget.max_cost_per_session = $0.0300" in p.stderr
    assert "session 's' has spent $0.0123" in p.stderr
    # Another session has its own budget.
    assert ws.run("run", "write c.txt 3", "--session", "other").returncode == 0
    assert sum(r["cost_usd"] for r in ok_records(ws) if r["session"] == "s") <= 0.03


def test_max_calls_per_session(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config("tiers:\n" + tier_line("silver", fake("honest", "--record", str(rec)))
              + "budget: {max_calls_per_session: 2}\n")
    for i in range(2):
        assert ws.run("run", f"write f{i}.txt x", "--session", "c").returncode == 0
    for _ in range(2):  # refusals are not calls: still 2 made, still refused
        p = ws.run("run", "write g.txt x", "--session", "c")
        assert p.returncode == 4 and "max_calls_per_session = 2" in p.stderr
        assert "has made 2 calls" in p.stderr
    assert len(list(rec.glob("prompt-*.txt"))) == 2
    assert ws.run("run", "write h.txt x", "--session", "d").returncode == 0
    statuses = [(r["session"], r["status"]) for r in ws.ledger()]
    assert statuses == [("c", "ok"), ("c", "ok"), ("c", "refused"), ("c", "refused"),
                        ("d", "ok")]


def test_parallel_runs_never_overspend(ws: Workspace, tmp_path: Path) -> None:
    # A huge price makes the worst case (prompt at the input rate + the output cap) dominant
    # and close to what a call really costs (estimated from bytes), so exactly two fit.
    price = "price: {input: 1000, output: 1000}, max_output_tokens: 1000"
    calib = Workspace(tmp_path / "calib")
    calib.config("tiers:\n" + tier_line("silver", fake("honest"), price))
    assert calib.run("run", "write p0.txt x", "--session", "p0").returncode == 0
    prompt_tokens = calib.ledger()[0]["tokens"]["input"]
    worst = (prompt_tokens + 1000) * 1000 / 1e6
    limit = round(2.2 * worst, 4)

    # Each dispatched worker holds its reservation until the refused runs have all ended, so
    # the six runs are truly concurrent however a busy machine staggers their start (a run
    # that settled first would free room: a real call costs less than its worst case).
    go = tmp_path / "go"
    held = " ".join(shlex.quote(a) for a in (
        "sh", "-c", f"i=0; while [ ! -e {shlex.quote(str(go))} ] && [ $i -lt 1200 ]; do "
        'sleep 0.05; i=$((i+1)); done; exec "$0" "$@"', *shlex.split(fake("honest"))))
    ws.config("tiers:\n" + tier_line("silver", held, price)
              + f"budget: {{max_cost_per_day: {limit}}}\n")
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write p{i}.txt x",
                               "--session", f"p{i}"], cwd=ws.root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    deadline = time.monotonic() + 60
    while sum(p.poll() is not None for p in procs) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outcomes = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        outcomes.append((p.returncode, err))
    codes = sorted(c for c, _ in outcomes)
    assert codes == [0, 0, 4, 4, 4, 4], outcomes
    for code, err in outcomes:
        if code == 4:
            assert "max_cost_per_day" in err and "reserves up to" in err
    settled = ok_records(ws)
    assert len(settled) == 2
    assert sum(r["cost_usd"] for r in settled) <= limit
    refused = [r for r in ws.ledger() if r["status"] == "refused"]
    assert len(refused) == 4 and all(r["refused_by"] == "budget" for r in refused)
    assert not (ws.state / "reservations.json").exists() or orjson.loads(
        (ws.state / "reservations.json").read_bytes()) == {}


def test_no_price_is_refused_under_a_budget_and_unknown_without(ws: Workspace,
                                                               tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    tiers = "tiers:\n" + tier_line("silver", fake("honest", "--record", str(rec)))
    ws.config(tiers + "budget: {max_cost_per_day: 100}\n")
    p = ws.run("run", "write n.txt x")
    assert p.returncode == 4 and "no price known" in p.stderr and "silver" in p.stderr
    assert not rec.exists()
    ws.config(tiers)
    code, res = ws.json("run", "write n.txt x")
    assert code == 0 and res["cost_source"] == "unknown" and res["cost_usd"] is None
    assert ws.ledger()[-1]["cost_usd"] is None


# --------------------------------------------------------------------------- spend_for


def test_spend_for_sums_settled_calls_only(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")

    def add(**kw: object) -> None:
        base: dict = dict(run_id="r-20261128T120000-abcdef", session="s", role="execution",
                          tier="silver", model="m", status="ok", tokens=Tokens(1, 1),
                          cost_usd=0.5, cost_source="priced")
        base.update(kw)
        ledger.record_call(state, LedgerRecord(**base))

    add()
    add(status="failed", cost_usd=0.25)
    add(status="refused", refused_by="budget", cost_usd=0.0)
    add(cached=True, cost_usd=0.0)
    add(cost_usd=None, cost_source="unknown")
    add(session="other", cost_usd=2.0)
    add(session="s", cost_usd=4.0, ts="2020-01-01T00:00:00.000Z")
    spend = spend_for(state, session="s", day=day)
    assert spend.session_calls == 4  # ok, failed, unknown cost, the old one
    assert spend.session_cost == pytest.approx(4.75)
    assert spend.day_cost == pytest.approx(2.75)


def test_spend_for_stays_exact_under_concurrent_appends(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    writers, per_writer = 4, 60
    seen: list[float] = []
    stop = threading.Event()

    def write(w: int) -> None:
        for _ in range(per_writer):
            ledger.record_call(state, LedgerRecord(
                run_id="r-20261128T120000-abcdef", session="s", role="execution",
                tier="silver", model="m", status="ok", cost_usd=0.25, cost_source="priced"))

    def read() -> None:
        while not stop.is_set():
            seen.append(spend_for(state, session="s", day=day).session_cost)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    final = spend_for(state, session="s", day=day)
    assert final.session_calls == writers * per_writer
    assert final.session_cost == pytest.approx(0.25 * writers * per_writer)
    assert seen == sorted(seen) and all(s <= final.session_cost + 1e-9 for s in seen)
    # A fresh index (the file deleted) agrees with the one built incrementally.
    for name in ("ledger-index.sqlite", "ledger-index.sqlite-wal", "ledger-index.sqlite-shm"):
        (state / "cache" / name).unlink(missing_ok=True)
    assert spend_for(state, session="s", day=day) == final
