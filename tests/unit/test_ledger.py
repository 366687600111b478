"""The ledger write (SPEC section 9): every field the spec names, and the append under torn
lines, symbolic links, a full disk and 8 concurrent writers of large records."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from burnless.accounting import ledger
from burnless.accounting.index import spend_for
from tests.conftest import Workspace, fake, record, tier_line, today

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
