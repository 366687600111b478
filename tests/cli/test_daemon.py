"""`burnless daemon`: a resident process runs `burnless run` for its callers, exactly as they
would have run it, or leaves it to them.

Each test starts a real daemon (`burnless daemon start --foreground`) on the test's own
$BURNLESS_HOME and runs real `burnless run` processes against it; the daemon's log (its
children, one line each) shows which runs went through it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from burnless.runs import alive
from tests.cli.conftest import run_a_sleeper
from tests.conftest import Workspace, fake, quoted, start_daemon

HOME_SOCKET = "daemon.sock"
# These tests start their own daemons: none from BURNLESS_TEST_RESIDENT's pass.
pytestmark = pytest.mark.in_process


@dataclass
class Resident:
    proc: subprocess.Popen[bytes]
    log_path: Path
    socket: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def children(self) -> list[str]:
        """The exit of each command it ran, in order (``exit 0``, ``signal 9``...), once it
        has logged the end of each child it started (a child's caller may exit first)."""
        deadline = time.monotonic() + 10
        while True:
            text = self.log()
            ended = re.findall(r"child \d+ ended: (.+)", text)
            if len(ended) >= text.count(" started\n") or time.monotonic() > deadline:
                return ended
            time.sleep(0.01)

    def refusals(self) -> list[str]:
        return re.findall(r"refused a command: (.+)", self.log())


def _home() -> Path:
    return Path(os.environ["BURNLESS_HOME"])


@contextmanager
def resident(*args: str, env: dict[str, str] | None = None, stops: bool = True
             ) -> Iterator[Resident]:
    """`burnless daemon start --foreground ARGS`, ready once its socket answers; stopped with
    SIGTERM at the end (exit 0, no traceback) unless ``stops`` is false (it stops itself)."""
    home = _home()
    proc = start_daemon(home, *args, env=env)
    log_path = home / "test-daemon.log"
    path = home / HOME_SOCKET
    try:
        yield Resident(proc, log_path, path)
    finally:
        if stops and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    text = log_path.read_text()
    assert proc.returncode == 0 and "Traceback" not in text, text
    assert not path.exists(), "the daemon left its socket behind"


def _same_shape(text: str) -> str:
    """A run's human output without what differs between two runs (ids, times, counts)."""
    text = re.sub(r"r-\d{8}T\d{6}-[0-9a-f]{6}", "RUN", text)
    return re.sub(r"\d[\d,.]*", "N", text)


# ---------------------------------------------------------------------------- the same run


def test_a_run_through_the_daemon_is_the_run_it_replaces(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest', '--record', str(rec)))}, "
              "pass_env: [DAEMON_TEST_VALUE]}\nplanner: null\n")
    secret = "sk-ant-api03-" + "Q" * 40
    env = {"DAEMON_TEST_VALUE": "first", "SOME_TOKEN": secret}
    without = ws.run("run", "write out/a.txt one", "--session", "a",
                     env={**env, "BURNLESS_NO_DAEMON": "1"})
    with resident() as d:
        sub = ws.root / "sub"
        sub.mkdir()
        through = ws.run("run", "write out/a.txt one", "--session", "b", env=env, cwd=sub)
        again = ws.run("run", "write out/b.txt two", "--session", "b",
                       env={**env, "DAEMON_TEST_VALUE": "second"})
        code, res = ws.json("run", "write out/c.txt three", "--session", "b")
        assert d.children() == ["exit 0"] * 3
    assert without.returncode == through.returncode == again.returncode == code == 0
    assert _same_shape(through.stdout).replace("session b", "session a") == _same_shape(
        without.stdout)
    assert through.stderr == without.stderr == ""
    assert res["status"] == "ok" and res["session"] == "b" and res["seq"] == 3
    # The worker saw the caller's environment, each time its own, and ran in the workspace.
    envs = [orjson.loads((rec / f"env-{n}.json").read_bytes()) for n in range(1, 5)]
    assert [e.get("DAEMON_TEST_VALUE") for e in envs] == ["first", "first", "second", None]
    assert not any("SOME_TOKEN" in e for e in envs)  # scrubbed, as without the daemon
    assert (ws.root / "out" / "b.txt").read_text() == "two"
    assert [(r["session"], r["status"]) for r in ws.ledger()] == [("a", "ok")] + [("b", "ok")] * 3
    assert [c["seq"] for c in ws.capsules("b")] == [1, 2, 3]
    assert secret not in d.log() and "write out" not in d.log()  # no command line, no env


def test_the_callers_folder_environment_umask_and_limits_are_the_runs(
        ws: Workspace, tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    script = tmp_path / "worker.sh"
    script.write_text(
        "cat >/dev/null\n"
        'printf "%s %s %s %s\\n" "$(pwd -P)" "$(umask)" "$DAEMON_TEST_VALUE" "$(ulimit -n)"'
        f" >> {seen}\n"
        """printf '%s' '{"status": "ok", "kind": "thought", "summary": "done"}'\n""")
    ws.config(f"tiers:\n  silver: {{command: {quoted(f'sh {script}')}, "
              "pass_env: [DAEMON_TEST_VALUE]}\nplanner: null\n")

    def limited() -> None:
        os.umask(0o027)
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (123, 456))

    with resident() as d:
        for value in ("one", "two"):
            p = subprocess.run([sys.executable, "-m", "burnless", "run", "hello"], cwd=ws.root,
                               env={**os.environ, "DAEMON_TEST_VALUE": value},
                               capture_output=True, text=True, timeout=60, preexec_fn=limited)
            assert p.returncode == 0, p.stderr
        assert d.children() == ["exit 0", "exit 0"]
    root = str(ws.root.resolve())
    assert seen.read_text().splitlines() == [f"{root} 0027 one 123", f"{root} 0027 two 123"]


def test_a_task_on_standard_input_and_json_output(ws: Workspace) -> None:
    ws.tiers(silver="honest", extra="planner: null\n")
    with resident() as d:
        code, res = ws.json("run", "-", "--session", "s", input="write in.txt from stdin")
        assert d.children() == ["exit 0"]
    assert code == 0 and res["files"] == ["in.txt"]
    assert (ws.root / "in.txt").read_text() == "from stdin"


def test_exit_codes_errors_and_a_crash_are_the_callers(ws: Workspace) -> None:
    ws.tiers(silver="crasher", extra="planner: null\n")
    with resident() as d:
        failed = ws.run("run", "do something")
        usage = ws.run("run", "do something", "--timeout", "-1")
        ws.tiers(silver="honest", extra="planner: null\n")
        killed = ws.run("run", "write out/b.txt two", "--session", "s",
                        env={"BURNLESS_FAULT": "after-ledger"})
        after = ws.run("run", "write out/c.txt three", "--session", "s")
        assert d.children() == ["exit 1", "exit 2", "signal 9", "exit 0"]
    assert failed.returncode == 1 and "✗ failed" in failed.stdout
    assert usage.returncode == 2
    assert usage.stderr == "burnless: error: --timeout must be a positive number of seconds, " \
                           "not -1\n"
    # The child SIGKILLed itself at a crash point: the caller dies of the same signal, and the
    # next run restores what it left, as without the daemon.
    assert killed.returncode == -signal.SIGKILL
    assert after.returncode == 0 and "restored capsule 1" in after.stderr
    assert [c["seq"] for c in ws.capsules("s")] == [1, 2]


def test_concurrent_callers_each_get_their_own_run(ws: Workspace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ws.tiers(silver="slow", extra="planner: null\n")
    with resident() as d, ThreadPoolExecutor(6) as pool:
        done = list(pool.map(lambda i: ws.run("run", f"write out/{i}.txt n{i}", "--session",
                                              f"s{i}"), range(6)))
        assert d.children() == ["exit 0"] * 6
    assert [p.returncode for p in done] == [0] * 6
    assert all(f"session s{i} seq 1" in p.stdout for i, p in enumerate(done))
    assert sorted(r["session"] for r in ws.ledger()) == [f"s{i}" for i in range(6)]
    assert [(ws.root / "out" / f"{i}.txt").read_text() for i in range(6)] == [
        f"n{i}" for i in range(6)]


# ---------------------------------------------------------------------------- signals


def test_ctrl_c_reaches_the_run_and_kills_its_worker(ws: Workspace, tmp_path: Path) -> None:
    with resident() as d:
        proc, child, grandchild = run_a_sleeper(ws, tmp_path / "rec")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert d.children() == ["exit 130"]
    assert proc.returncode == 130 and "interrupted" in err, err
    assert not alive(child) and not alive(grandchild)
    (record,) = ws.ledger()
    assert record["status"] == "interrupted"


def test_a_caller_killed_outright_stops_its_run(ws: Workspace, tmp_path: Path) -> None:
    """SIGKILL gives the caller no chance to pass anything on: the child sees its socket end,
    takes it as SIGTERM, and kills the worker and records the interruption."""
    with resident() as d:
        proc, child, grandchild = run_a_sleeper(ws, tmp_path / "rec")
        proc.kill()
        proc.communicate(timeout=20)
        deadline = time.monotonic() + 15
        while alive(child) or alive(grandchild) or not d.children():
            assert time.monotonic() < deadline, "the run outlived its caller"
            time.sleep(0.05)
        assert d.children() == ["exit 130"]
    (record,) = ws.ledger()
    assert record["status"] == "interrupted"


# ---------------------------------------------------------------------------- refusals


def test_a_daemon_whose_code_changed_steps_aside_and_starts_again(
        ws: Workspace, tmp_path: Path) -> None:
    """A copy of burnless, edited while its daemon runs: the next run is refused with a note
    and runs in its own process as usual; the daemon starts again from the edited files, and
    the run after goes through it."""
    import burnless

    copy = tmp_path / "site"
    shutil.copytree(Path(burnless.__file__).parent, copy / "burnless",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(copy)}
    ws.tiers(silver="honest", extra="planner: null\n")
    with resident(env=env) as d:
        assert ws.run("run", "write a.txt one", env=env).returncode == 0
        assert d.children() == ["exit 0"]
        module = copy / "burnless" / "turn.py"
        st = module.stat()
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        p = ws.run("run", "write b.txt two", env=env)
        assert p.returncode == 0 and (ws.root / "b.txt").read_text() == "two"
        assert "ran older burnless code; it is starting again" in p.stderr, d.log()
        assert d.refusals() == ["stale"]
        deadline = time.monotonic() + 20
        while d.log().count("serving") < 2:
            assert d.proc.poll() is None and time.monotonic() < deadline, d.log()
            time.sleep(0.02)
        p = ws.run("run", "write c.txt three", env=env)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert d.children() == ["exit 0", "exit 0"] and d.refusals() == ["stale"]
    assert len(ws.ledger()) == 3


def test_another_interpreter_setup_runs_without_the_daemon(ws: Workspace, tmp_path: Path) -> None:
    ws.tiers(silver="honest", extra="planner: null\n")
    with resident() as d:
        p = ws.run("run", "write a.txt one", env={"PYTHONPATH": str(tmp_path)})
        assert p.returncode == 0 and p.stderr == ""
        assert d.refusals() == ["mismatch"] and d.children() == []
        assert ws.run("run", "write b.txt two", env={"BURNLESS_NO_DAEMON": "1"}).returncode == 0
        assert d.children() == []
    assert len(ws.ledger()) == 2


def test_garbage_on_the_socket_is_refused_and_the_daemon_goes_on(ws: Workspace) -> None:
    ws.tiers(silver="honest", extra="planner: null\n")
    with resident() as d:
        for junk in (b"", b"\x00\x00", b"\x00\x00\x00\x05hello", b"\xff\xff\xff\xff" + b"x" * 64,
                     b"\x00\x00\x00\x14burnless-daemon-1\x00RUN"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(str(d.socket))
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                answer = s.recv(4096)
            assert answer.startswith(b"refused ") or answer == b"", answer
        assert ws.run("run", "write a.txt one").returncode == 0
        assert d.children() == ["exit 0"]


# ---------------------------------------------------------------------------- lifecycle


def test_start_status_stop_and_a_daemon_that_died(ws: Workspace) -> None:
    ws.tiers(silver="honest", extra="planner: null\n")
    started = ws.run("daemon", "start")
    assert started.returncode == 0 and "burnless daemon: started (pid" in started.stdout
    try:
        again = ws.run("daemon", "start")
        assert again.returncode == 0 and "already running" in again.stdout
        code, status = ws.json("daemon", "status")
        assert code == 0 and status["running"] is True and status["version"]
        pid = status["pid"]
        assert ws.run("run", "write a.txt one").returncode == 0
        assert "child" in (_home() / "daemon.log").read_text()
        # Killed outright, it leaves its socket: runs go on without it, and start replaces it.
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (_home() / HOME_SOCKET).exists()
        p = ws.run("run", "write b.txt two")
        assert p.returncode == 0 and p.stderr == ""
        assert "already" not in ws.run("daemon", "start").stdout
    finally:
        stopped = ws.run("daemon", "stop")
    assert stopped.returncode == 0 and stopped.stdout == "burnless daemon: stopped\n"
    assert not (_home() / HOME_SOCKET).exists()
    assert ws.json("daemon", "status")[1]["running"] is False
    assert ws.run("daemon", "stop").stdout == "burnless daemon: not running\n"
    assert len(ws.ledger()) == 2


def test_stop_lets_a_running_command_finish_and_idle_stops_it(
        ws: Workspace, tmp_path: Path) -> None:
    """`daemon stop` waits for the command the daemon runs; meanwhile its socket is gone, so a
    new command runs in its own process at once instead of waiting."""
    go = tmp_path / "go"
    script = tmp_path / "worker.sh"
    script.write_text(f"cat >/dev/null\nwhile [ ! -e {go} ]; do sleep 0.02; done\n"
                      """printf '%s' '{"status": "ok", "kind": "thought", "summary": "done"}'\n""")
    ws.config(f"tiers:\n  silver: {{command: {quoted(f'sh {script}')}}}\nplanner: null\n")
    with resident(stops=False) as d:
        run = subprocess.Popen([sys.executable, "-m", "burnless", "run", "wait for go"],
                               cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        deadline = time.monotonic() + 20
        while "started" not in d.log().split("serving", 1)[1]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stop = subprocess.Popen([sys.executable, "-m", "burnless", "daemon", "stop"],
                                stdout=subprocess.PIPE, text=True)
        while d.socket.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert stop.poll() is None  # still waiting for the running command
        ws.tiers(silver="honest", extra="planner: null\n")
        t0 = time.monotonic()
        meanwhile = ws.run("run", "write b.txt two", "--session", "other")
        assert meanwhile.returncode == 0 and time.monotonic() - t0 < 10, meanwhile.stderr
        go.touch()
        out, err = run.communicate(timeout=20)
        assert run.returncode == 0 and "✓ ok" in out, err
        assert stop.communicate(timeout=20)[0] == "burnless daemon: stopped\n"
        assert d.children() == ["exit 0"]
    with resident("--idle", "0.3", stops=False) as d:
        d.proc.wait(timeout=20)
        assert "idle: stopping" in d.log()


@pytest.mark.parametrize("idle", ["-1", "nan"])
def test_a_bad_idle_time_is_a_usage_error(ws: Workspace, idle: str) -> None:
    p = ws.run("daemon", "start", "--idle", idle)
    assert p.returncode == 2 and "--idle must be 0 or more seconds" in p.stderr


def test_doctor_says_whether_runs_go_through_a_daemon(ws: Workspace) -> None:
    ws.tiers(silver="honest", extra="planner: null\n")

    def said() -> dict[str, str]:
        code, js = ws.json("doctor")
        assert code == 0, js
        (check,) = [c for c in js["checks"] if c["name"] == "resident process"]
        return check

    assert said()["detail"].startswith("not running")
    with resident():
        check = said()
        assert check["status"] == "ok" and check["detail"].endswith("runs go through it")


def test_a_home_too_long_for_a_socket_is_a_clear_error_and_runs_go_on(
        ws: Workspace, tmp_path: Path) -> None:
    ws.tiers(silver="honest", extra="planner: null\n")
    long_home = {"BURNLESS_HOME": str(tmp_path / ("h" * 120))}
    p = ws.run("daemon", "start", "--foreground", env=long_home)
    assert p.returncode == 2 and "at most 107 bytes" in p.stderr and "Traceback" not in p.stderr
    assert ws.run("run", "write a.txt one", env=long_home).returncode == 0


def test_descriptors_received_as_0_1_and_2_each_reach_their_place(tmp_path: Path) -> None:
    """In a process whose standard streams are closed, received descriptors take 0, 1 and 2:
    the child's moves must not overwrite one before its turn."""
    script = f"""
import os, sys
from burnless.daemon import into_place
for fd in (0, 1, 2):
    os.close(fd)
# what recv_fds would hand over: the client's stdout, stderr, stdin and folder, landing on
# the lowest free numbers (the client's stdout on 0, its stderr on 1, its stdin on 2)
out = os.open({str(tmp_path / "out")!r}, os.O_WRONLY | os.O_CREAT)
err = os.open({str(tmp_path / "err")!r}, os.O_WRONLY | os.O_CREAT)
inp = os.open({str(tmp_path / "in")!r}, os.O_RDONLY)
here = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY)
assert (out, err, inp) == (0, 1, 2)
into_place([inp, out, err, here])
os.write(1, b"to stdout")
os.write(2, b"to stderr")
open("cwd", "w").write(os.read(0, 100).decode() + " " + os.getcwd())
"""
    (tmp_path / "in").write_text("from stdin")
    p = subprocess.run([sys.executable, "-c", script], cwd="/", capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out").read_text() == "to stdout"
    assert (tmp_path / "err").read_text() == "to stderr"
    assert (tmp_path / "cwd").read_text() == f"from stdin {tmp_path}"
