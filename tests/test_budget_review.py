"""Adversarial review of budget enforcement and ledger writing (SPEC sections 3 and 9).

Real `burnless run` processes against day / session budgets, a run SIGKILLed between its
reservation and its settle, pid reuse, midnight, costs above the reservation, and the ledger
under torn lines, symbolic links, a full disk and 8 concurrent writers of large records.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
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
from tests.conftest import Workspace, fake

# A huge price makes the worst case of one call ~$1.00 (the output cap) with no prompt tokens.
PRICE = "price: {input: 1000, output: 1000}, max_output_tokens: 1000"


def tier_line(name: str, cmd: str, extra: str = "") -> str:
    return f"  {name}: {{command: {orjson.dumps(cmd).decode()}{', ' + extra if extra else ''}}}\n"


def guard(ws: Workspace, limits: str) -> Guard:
    ws.config("tiers:\n" + tier_line("silver", fake("honest"), PRICE) + f"budget: {limits}\n")
    return Guard(load_config(cwd=ws.root))


def record(cost: float | None, session: str = "s", **kw: object) -> LedgerRecord:
    base: dict = dict(run_id="r-20261128T120000-abcdef", session=session, role="execution",
                      tier="silver", model="m", status="ok", tokens=Tokens(1, 1),
                      cost_usd=cost, cost_source="priced")
    base.update(kw)
    return LedgerRecord(**base)


def open_reservations(ws: Workspace) -> dict:
    path = ws.state / "reservations.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


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


# --------------------------------------------------------------------------- ledger


SPEC_FIELDS = {"v", "ts", "run_id", "session", "seq", "role", "tier", "model", "status",
               "audit", "exit", "tokens", "cost_usd", "cost_source", "duration_s", "route",
               "redactions", "cached"}


def test_ledger_record_has_every_spec_field(ws: Workspace) -> None:
    ws.config("tiers:\n" + tier_line("silver", fake("honest"), "model: claude-haiku-4-5")
              + "budget: {max_cost_per_day: 5}\n")
    assert ws.run("run", "write f.txt hello", "--no-plan").returncode == 0
    (r,) = ws.ledger()
    assert SPEC_FIELDS <= set(r)
    assert set(r["tokens"]) == {"input", "output", "cache_read", "cache_write"}
    assert r["role"] == "execution" and r["status"] == "ok" and r["audit"] == "passed"
    assert r["cost_source"] == "estimated" and r["cost_usd"] > 0 and r["exit"] == 0
    assert r["ts"].endswith("Z") and r["route"]["tier"] == "silver"


_HOLD_AND_TEAR = """
import os, sys, time
from pathlib import Path
from burnless.storage import jsonl
path = Path(sys.argv[1])
with jsonl.locked(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b'{"v": 1, "session": "torn", "cost_')
    print("torn", flush=True)
    time.sleep(30)
"""


def test_sigkill_mid_append_leaves_a_torn_line_that_the_next_writer_moves(
        tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    ledger.record_call(state, record(0.5))
    p = subprocess.Popen([sys.executable, "-c", _HOLD_AND_TEAR, str(ledger.ledger_path(state))],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "torn"
        p.kill()  # dies holding the lock, its line half written
    finally:
        p.kill()
        p.communicate(timeout=10)
    assert len(ledger.read(state)) == 1  # readers skip the torn tail
    ledger.record_call(state, record(0.25))  # the kernel released the lock; the tail is repaired
    recs = ledger.read(state)
    assert [r["cost_usd"] for r in recs] == [0.5, 0.25]
    assert (state / "ledger.jsonl.torn").read_bytes().startswith(b'{"v": 1, "session": "torn"')
    assert spend_for(state, session="s", day=today()).session_cost == pytest.approx(0.75)


def test_symlinked_ledger_is_refused_and_its_target_untouched(ws: Workspace,
                                                             tmp_path: Path) -> None:
    outside = tmp_path / "bashrc"
    outside.write_bytes(b"export A=1\nalias x=y")  # no trailing newline: looks torn
    ledger_file = ws.state / "ledger.jsonl"
    ledger_file.symlink_to(outside)
    with pytest.raises(OSError) as exc:
        ledger.record_call(ws.state, record(0.5))
    assert exc.value.errno == errno.ELOOP
    assert outside.read_bytes() == b"export A=1\nalias x=y"
    assert not (ws.state / "ledger.jsonl.torn").exists()
    # Through the CLI: refused before the worker is dispatched.
    rec = tmp_path / "rec"
    ws.config("tiers:\n" + tier_line("silver", fake("honest", "--record", str(rec))))
    p = ws.run("run", "write s.txt x", "--no-plan")
    assert p.returncode != 0 and "symbolic link" in p.stderr, p.stderr
    assert not rec.exists() and not (ws.root / "s.txt").exists()
    assert outside.read_bytes() == b"export A=1\nalias x=y"


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from burnless.accounting import ledger
from burnless.accounting.ledger import LedgerRecord
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
state = Path(sys.argv[1])
size = ledger.ledger_path(state).stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, size + 100))
try:
    ledger.record_call(state, LedgerRecord(run_id="r-20261128T120000-abcdef", session="s",
                  role="execution", tier="silver", model="m", status="ok", cost_usd=1.0,
                  cost_source="priced", reason="x" * 250))
except OSError as exc:
    print("errno", exc.errno)
    sys.exit(0)
print("written")
"""


def test_full_disk_append_fails_loudly_and_loses_no_complete_record(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    for _ in range(3):
        ledger.record_call(state, record(0.5))
    before = ledger.ledger_path(state).read_bytes()
    p = subprocess.run([sys.executable, "-c", _FULL_DISK, str(state)], capture_output=True,
                       text=True, timeout=30)
    assert p.stdout.strip() == f"errno {errno.EFBIG}", (p.stdout, p.stderr)
    after = ledger.ledger_path(state).read_bytes()
    assert after.startswith(before)  # nothing complete lost or rewritten
    assert len(ledger.read(state)) == 3
    ledger.record_call(state, record(0.25))  # space again: a torn fragment, if any, moves away
    assert [r["cost_usd"] for r in ledger.read(state)] == [0.5, 0.5, 0.5, 0.25]
    assert spend_for(state, session="s", day=today()).session_cost == pytest.approx(1.75)


_BIG_WRITER = """
import sys
from pathlib import Path
from burnless.accounting import ledger
from burnless.accounting.ledger import LedgerRecord
state, w = Path(sys.argv[1]), int(sys.argv[2])
for i in range(15):
    ledger.record_call(state, LedgerRecord(run_id="r-20261128T120000-abcdef", session=f"w{w}",
                  role="execution", tier="silver", model="m" * 9000, status="ok",
                  cost_usd=0.01, cost_source="priced", reason=f"{w}:{i}"))
"""


def test_eight_writers_of_large_records_never_interleave(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _BIG_WRITER, str(state), str(w)])
             for w in range(8)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    lines = ledger.ledger_path(state).read_bytes().split(b"\n")
    assert lines[-1] == b""
    recs = [orjson.loads(line) for line in lines[:-1]]  # every line a whole record
    assert len(recs) == 120 and all(len(r["model"]) == 9000 for r in recs)
    assert sorted(r["reason"] for r in recs) == sorted(f"{w}:{i}" for w in range(8)
                                                       for i in range(15))
    assert not (state / "ledger.jsonl.torn").exists()
    for w in range(8):  # each writer's records in its own order
        mine = [int(r["reason"].split(":")[1]) for r in recs if r["session"] == f"w{w}"]
        assert mine == list(range(15))
    rlimit = resource.getrlimit(resource.RLIMIT_FSIZE)
    assert rlimit[0] == resource.RLIM_INFINITY or rlimit[0] > 0  # the test process is unlimited
