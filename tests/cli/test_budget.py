"""Budget guards through the real CLI: refuse before dispatch, settle after, never overspend;
parallel runs on one session, a run SIGKILLed between its reservation and its settle, pid reuse,
midnight, costs above the reservation (SPEC section 3)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from burnless import runs
from burnless.accounting import budget, ledger
from burnless.accounting.budget import Guard
from burnless.accounting.index import spend_for
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from burnless.config import load_config
from burnless.errors import BudgetExceeded
from tests.conftest import Workspace, fake, record, tier_line, today


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


# A huge price makes the worst case of one call ~$1.00 (the output cap) with no prompt tokens.
PRICE = "price: {input: 1000, output: 1000}, max_output_tokens: 1000"


def guard(ws: Workspace, limits: str) -> Guard:
    ws.config("tiers:\n" + tier_line("silver", fake("honest"), PRICE) + f"budget: {limits}\n")
    return Guard(load_config(cwd=ws.root))



def open_reservations(ws: Workspace) -> dict:
    path = ws.state / "reservations.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}



# --------------------------------------------------------------------------- parallel runs


def test_parallel_runs_on_one_session_overshoot_is_recorded_and_seen(ws: Workspace) -> None:
    # claude-json reports $0.0123 a call, more than the worst case reserved for it (~$0.002:
    # its cache tokens are not in the prompt). Three fit under $0.03 (0.0246 + 0.002 <= 0.03);
    # the fourth and fifth see the overshoot of the third and are refused, each with a record.
    ws.config("tiers:\n" + tier_line("silver", fake("claude-json"),
                                     "model: claude-haiku-4-5, max_output_tokens: 100")
              + "budget: {max_cost_per_session: 0.03}\n")
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write q{i}.txt x",
                               "--session", "shared"], cwd=ws.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(5)]
    outcomes = [(p.wait(timeout=60), p.communicate()[1]) for p in procs]
    assert sorted(c for c, _ in outcomes) == [0, 0, 0, 4, 4], outcomes
    settled = [r for r in ws.ledger() if r["status"] != "refused"]
    refused = [r for r in ws.ledger() if r["status"] == "refused"]
    assert len(settled) == 3 and len(refused) == 2
    assert all(r["refused_by"] == "budget" and "max_cost_per_session" in r["reason"]
               for r in refused)
    total = sum(r["cost_usd"] for r in settled)
    # The overshoot is bounded by one call's excess over its reservation, and recorded.
    assert 0.03 < total <= 0.03 + 0.0123
    assert spend_for(ws.state, session="shared", day=today()).session_cost == pytest.approx(total)
    assert open_reservations(ws) == {}


@pytest.mark.in_process
def test_sigkilled_run_between_reserve_and_settle_is_charged_its_reservation(
        ws: Workspace, tmp_path: Path) -> None:
    # The dead run's reservation is released, and its call (dispatched, never recorded) is
    # charged at that worst case by a `lost` record: money it may have spent is not unseen.
    rec = tmp_path / "rec"
    ws.config("tiers:\n" + tier_line("silver", fake("sleeper", "--record", str(rec)), PRICE)
              + tier_line("bronze", fake("honest"), PRICE)
              + "budget: {max_cost_per_day: 1.5}\n")
    a = subprocess.Popen([sys.executable, "-m", "burnless", "run", "think", "--session", "a",
                          "--no-plan"], cwd=ws.root, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    worker_pid = 0
    try:
        deadline = time.monotonic() + 20
        while not (rec / "pids").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        worker_pid = int((rec / "pids").read_text().split()[0])
        (res,) = open_reservations(ws).values()
        assert res["pid"] == a.pid and res["amount"] > 1.0
        # In flight: its reservation blocks a second call on another session.
        p = ws.run("run", "write b.txt x", "--session", "b", "--tier", "bronze", "--no-plan")
        assert p.returncode == 4 and "reserved by runs in flight" in p.stderr, p.stderr
        a.send_signal(signal.SIGKILL)  # not reaped yet: a zombie must not hold the budget
        time.sleep(0.1)
        p = ws.run("run", "write c.txt x", "--session", "c", "--tier", "bronze", "--no-plan")
        assert p.returncode == 4 and "has spent $" + f"{res['amount']:.4f}" in p.stderr, p.stderr
        assert "reserved by runs in flight" not in p.stderr
    finally:
        a.kill()
        a.wait(timeout=10)
        if worker_pid:
            try:
                os.killpg(os.getpgid(worker_pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    statuses = sorted((r["session"], r["status"]) for r in ws.ledger())
    assert statuses == [("a", "lost"), ("b", "refused"), ("c", "refused")]
    (lost,) = [r for r in ws.ledger() if r["status"] == "lost"]
    assert lost["cost_usd"] == pytest.approx(res["amount"]) and lost["cost_source"] == "estimated"
    assert open_reservations(ws) == {}  # the dead run's reservation was dropped, once


# --------------------------------------------------------------------------- reservations


def test_reservation_of_a_reused_pid_is_stale(ws: Workspace) -> None:
    g = guard(ws, "{max_cost_per_day: 1.5}")
    tier = g.cfg.tiers["silver"]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = runs.start_ticks(other.pid)
        assert start is not None
        entry = {"session": "x", "day": today(), "amount": 1.0, "pid": other.pid,
                 "created": time.time() - 3600}
        path = ws.state / "reservations.json"
        # The same process: still in flight, it blocks.
        path.write_bytes(orjson.dumps({"live": {**entry, "start": start}}))
        with pytest.raises(BudgetExceeded, match="reserved by runs in flight"):
            g.reserve(session="s", tier=tier, prompt_tokens=0, task_spent=0.0)
        # The pid now names a later process than the one that reserved: the run is gone.
        path.write_bytes(orjson.dumps({"reused": {**entry, "start": start - 1}}))
        res = g.reserve(session="s", tier=tier, prompt_tokens=0, task_spent=0.0)
        assert res is not None and list(open_reservations(ws)) == [res.id]
        g.release(res)
    finally:
        other.kill()
        other.wait()
    assert open_reservations(ws) == {}


def test_release_and_settle_are_idempotent_and_touch_only_their_own(ws: Workspace) -> None:
    g = guard(ws, "{max_cost_per_day: 10}")
    tier = g.cfg.tiers["silver"]
    mine = g.reserve(session="s", tier=tier, prompt_tokens=0, task_spent=0.0)
    theirs = g.reserve(session="t", tier=tier, prompt_tokens=0, task_spent=0.0)
    assert mine and theirs
    g.release(mine)
    g.release(mine)
    # after a release: recorded once, nothing else released
    ledger.record_call(g.state_dir, record(0.5), g.settling(mine))
    assert list(open_reservations(ws)) == [theirs.id]
    assert len(ws.ledger()) == 1
    ledger.record_call(g.state_dir, record(0.5, session="t"), g.settling(theirs))
    assert open_reservations(ws) == {} and len(ws.ledger()) == 2


def test_cost_above_the_reservation_is_recorded_and_the_next_call_sees_it(
        ws: Workspace) -> None:
    g = guard(ws, "{max_cost_per_day: 3.5, max_cost_per_session: 100}")
    tier = g.cfg.tiers["silver"]
    res = g.reserve(session="s", tier=tier, prompt_tokens=0, task_spent=0.0)
    assert res is not None and res.amount == pytest.approx(1.0)
    # e.g. an API tier that wrote the whole prompt to the 1-hour cache (2x input)
    ledger.record_call(g.state_dir, record(2.6), g.settling(res))
    with pytest.raises(BudgetExceeded, match=r"has spent \$2\.6000"):
        g.reserve(session="other", tier=tier, prompt_tokens=0, task_spent=0.0)
    # per task: the run's own settled spend
    g2 = guard(ws, "{max_cost_per_task: 2.0}")
    with pytest.raises(BudgetExceeded, match="max_cost_per_task"):
        g2.reserve(session="s", tier=tier, prompt_tokens=0, task_spent=1.2)


def test_worst_case_is_prompt_at_input_price_plus_output_cap(ws: Workspace) -> None:
    g = guard(ws, "{max_cost_per_day: 10}")
    tier = g.cfg.tiers["silver"]
    assert budget.worst_case(tier, 500) == pytest.approx((500 + 1000) * 1000 / 1e6)
    ws.config("tiers:\n" + tier_line("silver", fake("honest")))  # no model, no price
    cfg = load_config(cwd=ws.root)
    assert budget.worst_case(cfg.tiers["silver"], 500) is None


def test_unknown_price_under_a_budget_is_refused_with_a_record(ws: Workspace) -> None:
    ws.config("tiers:\n" + tier_line("silver", fake("honest"), "model: no-such-model-9")
              + "budget: {max_calls_per_session: 5, max_cost_per_session: 1}\n")
    p = ws.run("run", "write u.txt x", "--no-plan")
    assert p.returncode == 4 and "no price known" in p.stderr
    (r,) = ws.ledger()
    assert r["status"] == "refused" and r["refused_by"] == "budget" and r["model"]
    assert not (ws.root / "u.txt").exists()


def test_a_call_reserved_before_midnight_counts_against_the_next_day(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    g = guard(ws, "{max_cost_per_day: 1.5}")
    tier = g.cfg.tiers["silver"]
    monkeypatch.setattr(budget, "today", lambda: "2031-01-01")
    late = g.reserve(session="a", tier=tier, prompt_tokens=0, task_spent=0.0)
    assert late is not None
    # 00:00:01 UTC: the first call is still running and will settle (land) today.
    monkeypatch.setattr(budget, "today", lambda: "2031-01-02")
    with pytest.raises(BudgetExceeded, match="max_cost_per_day"):
        g.reserve(session="b", tier=tier, prompt_tokens=0, task_spent=0.0)
    g.release(late)
    assert g.reserve(session="b", tier=tier, prompt_tokens=0, task_spent=0.0) is not None
