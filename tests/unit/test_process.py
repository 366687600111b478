"""The subprocess runner: long output lines, slow logs, and what a worker leaves behind.

Every worker here is a real program (a Python script written to a temporary directory); every
redactor is the real one or a real callable. Secrets are obvious fakes built at run time.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from burnless import process, supervisor
from burnless.safety.secrets import Redactor

KEY = b"p" * 32
ENVELOPE = '{"status": "failed", "kind": "thought", "summary": "tests fail"}'
MB = 1 << 20


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(body)
    return [sys.executable, str(path)]


def run(argv: list[str], tmp_path: Path, **kw: Any) -> process.ProcessResult:
    return process.run(argv, cwd=tmp_path, env=dict(os.environ), **kw)


def alive(pid: int) -> bool:
    """Running (a zombie is dead: it cannot run)."""
    p = supervisor.read_proc(pid)
    return p is not None and p.state not in "ZX"


def wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def cat(tmp_path: Path, data: bytes) -> list[str]:
    """A worker that prints ``data`` in 64 KiB writes, then the envelope."""
    (tmp_path / "out.bin").write_bytes(data)
    return script(tmp_path, "cat.py", f"""
import sys
with open({str(tmp_path / "out.bin")!r}, "rb") as f:
    while chunk := f.read(65536):
        sys.stdout.buffer.write(chunk)
sys.stdout.buffer.write(b"\\n" + {ENVELOPE.encode()!r} + b"\\n")
""")


def fake(n: int, alphabet: str = "Fake0Key1Not2Real3") -> str:
    return (alphabet * (n // len(alphabet) + 1))[:n]


def secrets(rng: random.Random) -> list[tuple[str, str]]:
    """(text as printed, the part that must never be in the log)."""
    pem_body = [fake(64, f"FakePemLine{i}Abc0+/") for i in range(12)]
    pem = ("-----BEGIN RSA " + "PRIVATE KEY-----\\n" + "\\n".join(pem_body)
           + "\\n-----END RSA " + "PRIVATE KEY-----")
    gh = "gh" + "p_" + fake(36, f"Fake{rng.randrange(10**6)}GitHub")
    word = f"Fake{rng.randrange(10**6)}Hunter"
    bearer = fake(40, f"Bearer{rng.randrange(10**6)}Tok")
    return [(gh, gh), (f'"password": "{word}"', word), (f"Authorization: Bearer {bearer}", bearer),
            (pem, pem_body[6])]


# -- the log of a long line -----------------------------------------------------------------


def test_a_long_line_is_redacted_in_bounded_pieces_with_linear_work(tmp_path: Path) -> None:
    sizes: list[int] = []
    lock = threading.Lock()

    def redact(text: str) -> str:
        with lock:
            sizes.append(len(text))
        return text

    line = b"y" * (6 * MB)
    res = run(cat(tmp_path, line), tmp_path, log_path=tmp_path / "log", redact=redact)
    assert res.ok and res.stdout.endswith(ENVELOPE + "\n")
    assert (tmp_path / "log").read_bytes() == line + b"\n" + ENVELOPE.encode() + b"\n"
    # No call sees more than a window and its margins; all calls together, about the line once.
    assert max(sizes) <= 1.25 * MB, max(sizes)
    assert sum(sizes) <= 1.3 * len(line), sum(sizes) / len(line)


def test_the_windowed_log_equals_the_whole_line_redacted(tmp_path: Path) -> None:
    rng = random.Random(7)
    pieces, needles = [], []
    size = 0
    while size < int(2.5 * MB):
        filler = " ".join(rng.choice(["lorem", "ipsum", "dolor", '"sit":', "amet,", "42"])
                          for _ in range(rng.randrange(200, 2000)))
        text, needle = rng.choice(secrets(rng))
        pieces += [filler, text]
        needles.append(needle)
        size += len(filler) + len(text) + 2
    line = " ".join(pieces)
    r = Redactor(KEY)
    res = run(cat(tmp_path, line.encode()), tmp_path, log_path=tmp_path / "log",
              redact=lambda s: r.redact(s).text)
    assert res.ok
    log = (tmp_path / "log").read_text()
    assert log == r.redact(line + "\n" + ENVELOPE + "\n").text
    assert not [n for n in needles if n in log]


def test_secrets_packed_around_the_window_edge_are_all_masked(tmp_path: Path) -> None:
    """The worst case for windows: no space to cut at, a secret at every offset near the edge."""
    rng = random.Random(11)
    head = "y" * (MB - 20_000)
    packed, needles = [], []
    while sum(map(len, packed)) < 40_000:
        text, needle = rng.choice(secrets(rng))
        packed.append(text + "yy")
        needles.append(needle)
    line = head + "".join(packed) + "y" * MB
    r = Redactor(KEY)
    res = run(cat(tmp_path, line.encode()), tmp_path, log_path=tmp_path / "log",
              redact=lambda s: r.redact(s).text)
    assert res.ok
    log = (tmp_path / "log").read_text()
    assert len(log) > len(head) and log.endswith(ENVELOPE + "\n")
    assert not [n for n in needles if n in log]


def test_a_slow_log_never_loses_the_end_of_the_output(tmp_path: Path) -> None:
    """The log writer may take longer than any grace period: the runner waits for it rather
    than closing the pipes and the log under it (the envelope was lost that way)."""
    calls = []

    def slow(text: str) -> str:
        if not calls:
            time.sleep(process.GRACE_S + 1.5)
        calls.append(text)
        return text

    argv = script(tmp_path, "w.py", f"print('a first line'); print({ENVELOPE!r})")
    res = run(argv, tmp_path, log_path=tmp_path / "log", redact=slow)
    assert res.ok and res.stdout == "a first line\n" + ENVELOPE + "\n"
    assert (tmp_path / "log").read_text() == res.stdout


# -- what a worker leaves behind ------------------------------------------------------------

DAEMON = """
import os, sys, time
from pathlib import Path
rec = Path(sys.argv[1])
if os.fork() == 0:
    os.setsid()  # a daemon: its own session, out of the worker's process group
    (rec / "daemon").write_text(str(os.getpid()))
    time.sleep(float(sys.argv[2]))
    (rec / "survived").write_text("the daemon outlived the call")
    print("late output")  # still holds the worker's stdout
    os._exit(0)
while not (rec / "daemon").exists():
    time.sleep(0.01)
print("done")
"""


def test_a_setsid_daemon_is_killed_when_the_worker_exits(tmp_path: Path) -> None:
    argv = script(tmp_path, "w.py", DAEMON) + [str(tmp_path), "1.0"]
    t0 = time.monotonic()
    res = run(argv, tmp_path)
    assert res.ok and res.stdout == "done\n"
    assert time.monotonic() - t0 < process.GRACE_S  # nobody waited on its open stdout
    assert not alive(int((tmp_path / "daemon").read_text()))
    time.sleep(1.5)
    assert not (tmp_path / "survived").exists()


ZOMBIE = """
import os, sys, time
from pathlib import Path
t0 = time.monotonic()
rec = Path(sys.argv[1])
parent = os.fork()
if parent == 0:
    zombie = os.fork()
    if zombie == 0:
        os._exit(0)  # exits at once; its parent never reaps it: a zombie in the worker's group
    os.setsid()  # the parent leaves the group (so the group's SIGTERM misses it) and lingers
    (rec / "pids").write_text(f"{os.getpid()} {zombie}")
    time.sleep(30)
    os._exit(0)
while not (rec / "pids").exists() or not (rec / "pids").read_text():
    time.sleep(0.01)
zombie = int((rec / "pids").read_text().split()[1])
while open(f"/proc/{zombie}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.01)
time.sleep(0.3)
(rec / "wall").write_text(str(time.monotonic() - t0))
"""


def test_a_zombie_left_in_the_group_costs_no_time(tmp_path: Path) -> None:
    """A zombie cannot run: the call ends with the worker, not a grace period later."""
    res = run(script(tmp_path, "w.py", ZOMBIE) + [str(tmp_path)], tmp_path)
    assert res.ok
    wall = float((tmp_path / "wall").read_text())
    assert res.duration_s - wall < 0.3, (res.duration_s, wall)
    lingering, zombie = (int(x) for x in (tmp_path / "pids").read_text().split())
    assert not alive(lingering)
    assert supervisor.read_proc(zombie) is None  # reaped, not left to init


def test_parallel_calls_in_one_process_kill_only_their_own(tmp_path: Path) -> None:
    """Several calls at once in one process (the Python API): each kills its own daemons,
    nothing else, and leaves no zombie behind in the calling process."""
    before = {p.pid for p in supervisor.all_procs() if p.ppid == os.getpid()}
    bystander = __import__("subprocess").Popen(["sleep", "30"])
    try:
        dirs = [tmp_path / f"call{i}" for i in range(3)]
        results: list[process.ProcessResult] = []
        threads = []
        for d in dirs:
            d.mkdir()
            argv = script(d, "w.py", DAEMON) + [str(d), "30"]
            threads.append(threading.Thread(target=lambda a=argv, d=d: results.append(
                process.run(a, cwd=d, env=dict(os.environ)))))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 3 and all(r.ok for r in results)
        for d in dirs:
            assert not alive(int((d / "daemon").read_text()))
        assert alive(bystander.pid)
        mine = {p.pid for p in supervisor.all_procs() if p.ppid == os.getpid()}
        assert mine - before == {bystander.pid}  # no zombie, no daemon re-parented to us
    finally:
        bystander.kill()
        bystander.wait()


def test_the_supervisor_is_the_workers_parent_and_leaves_with_the_call(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    argv = ["/bin/sh", "-c", f"echo $$ $PPID > {pidfile}; sleep 1"]
    out: list[process.ProcessResult] = []
    t = threading.Thread(target=lambda: out.append(run(argv, tmp_path)))
    t.start()
    worker, parent = (int(x) for x in wait_for(pidfile).split())
    proc = supervisor.read_proc(parent)
    assert proc is not None and proc.ppid == os.getpid()
    assert b"supervisor" in Path(f"/proc/{parent}/cmdline").read_bytes()
    t.join(timeout=20)
    assert out and out[0].ok
    assert supervisor.read_proc(parent) is None and supervisor.read_proc(worker) is None


ESCAPE = """
import os, signal, sys, time
from pathlib import Path
rec = Path(sys.argv[1])
if os.fork() == 0:
    os.setsid()
    (rec / "daemon").write_text(str(os.getpid()))
    time.sleep(60)  # holds stdout open all along
    os._exit(0)
while not (rec / "daemon").exists():
    time.sleep(0.01)
print("before", flush=True)
os.kill(os.getppid(), signal.SIGKILL)  # kills its supervisor: the daemon is now out of reach
time.sleep(60)
"""


def test_a_descendant_that_escaped_does_not_hang_the_run(tmp_path: Path) -> None:
    """Only a worker that kills its own supervisor gets a daemon out of reach. The run still
    ends: the worker's group is killed from here, and the readers give up on a pipe the daemon
    holds after the grace period, keeping what was written."""
    t0 = time.monotonic()
    res = run(script(tmp_path, "w.py", ESCAPE) + [str(tmp_path)], tmp_path)
    daemon = int((tmp_path / "daemon").read_text())
    try:
        assert time.monotonic() - t0 < 3 * process.GRACE_S + 2
        assert res.exit_code == -signal.SIGKILL and res.stdout == "before\n"
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_a_program_that_cannot_start_says_why(tmp_path: Path) -> None:
    res = run([str(tmp_path / "no-such-program")], tmp_path)
    assert res.exit_code == 127 and not res.ok
    assert res.start_error == (
        f"cannot start {str(tmp_path / 'no-such-program')!r}: No such file or directory")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV])
def test_a_worker_killed_by_a_signal_is_reported_as_such(tmp_path: Path, sig: int) -> None:
    res = run(["/bin/sh", "-c", f"kill -{int(sig)} $$"], tmp_path)
    assert res.exit_code == -sig


def test_exit_code_stdout_stderr_and_stdin_pass_through(tmp_path: Path) -> None:
    argv = script(tmp_path, "w.py", "import sys\ndata = sys.stdin.buffer.read()\n"
                  "sys.stdout.write(str(len(data)))\nsys.stderr.write('oops')\nsys.exit(3)")
    res = run(argv, tmp_path, stdin=b"x" * (3 * MB))
    assert (res.exit_code, res.stdout, res.stderr_tail) == (3, str(3 * MB), "oops")


def test_a_timeout_kills_the_worker_and_its_daemon(tmp_path: Path) -> None:
    body = DAEMON.replace('print("done")', 'print("done", flush=True); time.sleep(60)')
    t0 = time.monotonic()
    res = run(script(tmp_path, "w.py", body) + [str(tmp_path), "30"], tmp_path, timeout=1)
    assert res.timed_out and res.exit_code is None and res.stdout == "done\n"
    assert time.monotonic() - t0 < 1 + process.GRACE_S + 1
    assert not alive(int((tmp_path / "daemon").read_text()))


# -- a large stdout, after the run ------------------------------------------------------------

PIPELINE = """
import resource, sys
from burnless.envelope import extract
from burnless.formats import parse_output
from burnless.accounting.tokens import estimate_tokens
n = int(sys.argv[1]) << 20
envelope = sys.argv[2]
raw = "".join(["y" * 65536] * (n // 65536) + ["\\n", envelope, "\\n"])  # one allocation
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = parse_output(raw, "auto")  # what a command tier does with the worker's stdout...
found = extract(out.text)  # ...then the turn: the envelope, and the answer without it
tokens = estimate_tokens(out.text)
assert found.envelope is not None and found.envelope.status == "failed"
assert len(found.prose) == n and tokens == -(-len(raw) // 4)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / n)
"""


def test_a_large_answer_is_parsed_with_one_extra_copy_at_most(tmp_path: Path) -> None:
    """Copies of a 100 MB answer add up: a stripped copy to sniff the format, its lines, a
    slice, a concatenation and a strip to cut the envelope out, an encoding to count its
    bytes. The answer without its envelope is the one copy that has to exist."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", PIPELINE, "48", ENVELOPE], check=True,
                         capture_output=True, text=True).stdout
    assert float(out) < 1.5, f"peak memory grew by {float(out):.2f} times the answer's size"


@pytest.mark.parametrize("head, tail", [
    ("  answer \n\n", "\n"),
    ("answer\u00a0\u2003", " \t"),  # blank space that is not ASCII
    ("\n \n", "\n"),  # nothing but the envelope
    ("before ", " and after\n"),  # prose after it
    ("x" + " " * 200_000, ""),  # a blank run longer than the search window
])
def test_the_answer_without_its_envelope_is_cut_as_before(head: str, tail: str) -> None:
    from burnless.envelope import extract

    found = extract(head + ENVELOPE + tail)
    assert found.envelope is not None and found.prose == (head + tail).strip()


def test_json_wrapped_in_non_json_blank_space_is_still_read() -> None:
    from burnless.formats import parse_output

    result = ('{"type": "result", "subtype": "success", "is_error": false, "result": "hi", '
              '"usage": {"input_tokens": 3, "output_tokens": 5}}')
    out = parse_output("\u00a0" + result + "\u2003\n")
    assert (out.format, out.text, out.usage is not None) == ("claude-json", "hi", True)


# -- the assignment rule's keyword search -------------------------------------------------------

def test_the_worker_gets_exactly_its_environment_and_its_path(tmp_path: Path) -> None:
    """The supervisor runs under burnless's environment; the worker under the one it is given,
    and its program is looked up on that PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "hello-worker").write_text("#!/bin/sh\nenv\n")
    (bindir / "hello-worker").chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "ONLY": "this = one"}
    res = process.run(["hello-worker"], cwd=tmp_path, env=env)
    assert res.ok, res
    seen = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert seen.pop("PWD", None) in (None, str(tmp_path))  # sh may add its PWD
    assert seen == env
    bad = process.run(["true"], cwd=tmp_path, env={"A": "x\0y"})
    assert bad.start_error == "cannot start 'true': environment variable 'A' contains a NUL byte"


def test_a_log_that_cannot_be_written_does_not_stall_the_call(tmp_path: Path) -> None:
    """A full disk under the run log (/dev/full answers every write with ENOSPC): the readers
    keep draining the worker's pipes, the answer is whole, and the failure is reported."""
    worker = tmp_path / "chatty.py"
    worker.write_text("import sys\n"
                      "for i in range(20000): print('progress line', i)\n"
                      "sys.stderr.write('e' * 300000)\n"
                      "print('{\"status\": \"ok\", \"kind\": \"thought\", \"summary\": \"s\"}')\n")
    for redact in (None, str.upper):
        res = process.run([sys.executable, str(worker)], cwd=tmp_path, env=dict(os.environ),
                          timeout=60, log_path=Path("/dev/full"), redact=redact)
        assert res.ok and not res.timed_out
        assert res.stdout.count("progress line") == 20000 and '"status": "ok"' in res.stdout
        assert "No space left on device" in res.log_error
