"""`burnless run` against workers that print a huge line, leave daemons or zombies behind.

Issue 10 (findings 1 and 7) and issue 18 (finding 5), reproduced with real worker programs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from burnless import supervisor
from tests.conftest import Workspace, quoted

ENVELOPE = '{"status": "failed", "kind": "thought", "summary": "tests fail"}'


def tier(ws: Workspace, path: Path, *args: str) -> None:
    command = " ".join([sys.executable, str(path), *args])
    ws.config(f"tiers:\n  silver: {{command: {quoted(command)}, model: claude-sonnet-4-6}}\n"
              "planner: null\n")


def alive(pid: int) -> bool:
    p = supervisor.read_proc(pid)
    return p is not None and p.state not in "ZX"


def test_a_failed_envelope_after_a_24_mb_line_is_honoured(ws: Workspace, tmp_path: Path) -> None:
    """The run reported "ok" with a 0-byte log: the log writer held the line back, and the
    runner closed the pipes and the log under it before the envelope was read."""
    worker = tmp_path / "bigline.py"
    worker.write_text("import sys; sys.stdin.read()\n"
                      "sys.stdout.write('y' * (int(sys.argv[1]) << 20) + '\\n')\n"
                      f"print({ENVELOPE!r})\n")
    tier(ws, worker, "24")
    code, res = ws.json("run", "do it")
    assert (code, res["status"], res["summary"]) == (1, "failed", "tests fail")
    log = (ws.root / res["log"]).read_bytes()
    assert log == b"y" * (24 << 20) + b"\n" + ENVELOPE.encode() + b"\n"


DAEMON = """
import os, sys, time
from pathlib import Path
sys.stdin.read()
rec = Path(sys.argv[1])
if os.fork() == 0:
    os.setsid()
    (rec / "daemon").write_text(str(os.getpid()))
    time.sleep(float(sys.argv[2]))
    (rec / "survived").write_text("written after the run")
    os._exit(0)
while not (rec / "daemon").exists():
    time.sleep(0.01)
if sys.argv[3] == "sleep":
    (rec / "worker").write_text(str(os.getpid()))
    time.sleep(60)
print('{"status": "ok", "kind": "thought", "summary": "started a daemon"}')
"""


def test_a_setsid_daemon_does_not_outlive_the_run(ws: Workspace, tmp_path: Path) -> None:
    worker = tmp_path / "daemon.py"
    worker.write_text(DAEMON)
    tier(ws, worker, str(tmp_path), "1.0", "exit")
    code, res = ws.json("run", "start a daemon")
    assert code == 0 and res["summary"] == "started a daemon"
    assert not alive(int((tmp_path / "daemon").read_text()))
    time.sleep(1.5)
    assert not (tmp_path / "survived").exists()


def test_a_sigkilled_burnless_takes_the_setsid_daemon_with_it(
    ws: Workspace, tmp_path: Path
) -> None:
    worker = tmp_path / "daemon.py"
    worker.write_text(DAEMON)
    tier(ws, worker, str(tmp_path), "60", "sleep")
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "run", "start a daemon"],
                            cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "worker").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        pids = [int((tmp_path / name).read_text()) for name in ("worker", "daemon")]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "a descendant outlived a SIGKILLed burnless"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


ZOMBIE = """
import os, sys, time
from pathlib import Path
t0 = time.monotonic()
sys.stdin.read()
rec = Path(sys.argv[1])
if os.fork() == 0:
    if os.fork() == 0:
        os._exit(0)  # never reaped by its parent: a zombie, in the worker's process group
    os.setsid()  # its parent leaves the group, so the group's SIGTERM does not reach it
    (rec / "parent").write_text(str(os.getpid()))
    time.sleep(30)
    os._exit(0)
while not (rec / "parent").exists():
    time.sleep(0.01)
time.sleep(0.3)
print('{"status": "ok", "kind": "thought", "summary": "left a zombie"}')
(rec / "wall").write_text(str(time.monotonic() - t0))
"""


def test_duration_is_the_workers_own_time_despite_a_zombie(ws: Workspace, tmp_path: Path) -> None:
    """Codex leaves a zombie `git` in its group; the run waited up to 2 s for it to die."""
    worker = tmp_path / "zombie.py"
    worker.write_text(ZOMBIE)
    tier(ws, worker, str(tmp_path))
    code, res = ws.json("run", "leave a zombie")
    assert code == 0 and res["summary"] == "left a zombie"
    (rec,) = ws.ledger()
    wall = float((tmp_path / "wall").read_text())
    assert rec["duration_s"] - wall < 0.3, (rec["duration_s"], wall)
    assert not alive(int((tmp_path / "parent").read_text()))
