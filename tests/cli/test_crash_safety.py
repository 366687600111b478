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


def _kill_during_the_call(ws: Workspace, tmp_path: Path, extra: str = "", session: str = "s",
                          env: dict[str, str] | None = None) -> None:
    """Start a run whose worker sleeps, SIGKILL burnless while the worker runs."""
    started = tmp_path / "started"
    worker = tmp_path / "slow_worker.py"
    worker.write_text(
        "import sys, time, pathlib\n"
        f"pathlib.Path({str(started)!r}).write_text('x')\n"
        "sys.stdin.read(); time.sleep(30)\n"
    )
    _config(ws, f"{sys.executable} {worker}", extra)
    p = subprocess.Popen([sys.executable, "-m", "burnless", "run", "write a.txt x",
                          "--session", session], cwd=ws.root, env={**os.environ, **(env or {})},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(started)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def _wait_for(started: Path) -> None:
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)


@pytest.mark.in_process
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


@pytest.mark.in_process
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


# -- adversarial cases (review): torn records, out-of-order records, hostile journals, races


def _run_limited(ws: Workspace, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`burnless run` whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE): a write
    that crosses it is cut short, as on a disk that fills up mid-write."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "burnless", "run", *args], cwd=ws.root,
                          capture_output=True, text=True, timeout=60, preexec_fn=cap)


def _ids(ws: Workspace) -> list[str]:
    return [r["run_id"] for r in ws.ledger()]


def test_a_record_cut_short_by_a_full_disk_is_recorded_by_the_next_run(ws: Workspace) -> None:
    """Half a record reached the ledger (it holds the call's run id): the next run must not
    take that fragment for the record, which would then be lost with the fragment."""
    _config(ws, fake("honest"))
    for i in range(4):
        assert ws.run("run", f"write out/{i}.txt x").returncode == 0
    size = (ws.state / "ledger.jsonl").stat().st_size
    p = _run_limited(ws, size + 300, "answer something", "--session", "f")
    assert p.returncode == 1 and "could not be written" in p.stderr, p.stderr
    (journal,) = (ws.state / "inflight").glob("*.json")
    run_id = journal.name[:-len(".json")]
    assert run_id.encode() in (ws.state / "ledger.jsonl").read_bytes()  # the torn fragment
    assert ws.run("run", "write out/z.txt z", "--session", "g").returncode == 0
    recs = [r for r in ws.ledger() if r["run_id"] == run_id]
    assert len(recs) == 1 and recs[0]["status"] == "ok" and recs[0]["session"] == "f"
    assert [c["run_id"] for c in ws.capsules("f")] == [run_id]


def test_a_killed_calls_record_is_not_recorded_twice_when_older_records_follow_it(
        ws: Workspace) -> None:
    """Records do not land in time order: an evaluation copies its jobs' records (stamped
    when they were made), and a sweep appends a dead run's finished record late. Neither may
    hide a killed call's record from the next sweep, which would record it a second time."""
    from burnless.accounting import ledger

    _config(ws, fake("honest"))
    killed = ws.run("run", "write out/b.txt two", "--session", "s",
                    env={"BURNLESS_FAULT": "after-ledger"})
    assert killed.returncode == -signal.SIGKILL
    (old,) = ws.ledger()
    copy = {**old, "run_id": "r-20200101T000000-abcdef", "session": "eval",
            "ts": "2020-01-01T00:00:00.000Z"}
    ledger.record_copies(ws.state, [copy], eval_id="e-000000000000", eval_job="t/a:b/1")
    p = ws.run("run", "write out/c.txt three", "--session", "s")
    assert p.returncode == 0, p.stderr
    ids = _ids(ws)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 3
    assert "left unrecorded" not in p.stderr  # it was recorded: nothing to say about it


def _journal(ws: Workspace, name: str, body: bytes) -> Path:
    d = ws.state / "inflight"
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    path.write_bytes(body)
    return path


_HEAD = ('"v":1,"session":"s","role":"execution","tier":"silver","model":null,'
         '"task_id":"t-000000000000","prompt_tokens":100,"worst_case":0.02,"pid":999999999,'
         '"start":1')


@pytest.mark.parametrize(("name", "body", "lost"), [
    # a run id that is no date (every run crashed on it); its record is a stub: lost
    ("r-99999999T999999-abcdef.json",
     '{"run_id":"r-99999999T999999-abcdef",' + _HEAD + ',"record":{"run_id":'
     '"r-99999999T999999-abcdef","session":"s"}}', True),
    # a session that is no session id (every run failed with "invalid session id")
    ("r-20260101T000000-abcdef.json",
     '{"run_id":"r-20260101T000000-abcdef",' + _HEAD.replace('"s"', '"../../x"')
     + ',"capsule":{"seq":1}}', False),
    # a finished record of the wrong types (a traceback, after appending it)
    ("r-20260101T000000-bcdef0.json",
     '{"run_id":"r-20260101T000000-bcdef0",' + _HEAD + ',"record":{"run_id":'
     '"r-20260101T000000-bcdef0","session":"s","redactions":"many","duration_s":"x"}}', True),
    # not JSON at all (ignored silently, forever)
    ("r-20260101T000000-cdef01.json", '{"run_id":"r-20260101T000000-cdef01",' + _HEAD, False),
    # a journal naming another call than its file
    ("r-20260101T000000-def012.json", '{"run_id":"r-20260101T000000-aaaaaa",' + _HEAD + "}",
     False),
])
def test_a_damaged_journal_is_set_aside_with_a_warning_and_never_stops_a_run(
        ws: Workspace, name: str, body: str, lost: bool) -> None:
    _config(ws, fake("honest"))
    path = _journal(ws, name, body.encode())
    p = ws.run("run", "write out/a.txt a", "--session", "t")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert not path.exists()  # set aside (or recorded): not read again by every run
    statuses = [r["status"] for r in ws.ledger()]
    if lost:  # its head is sound: the call is charged at its worst case
        assert statuses.count("lost") == 1 and "left unrecorded" in p.stderr
    else:
        assert statuses == ["ok"] and "damaged" in p.stderr and name in p.stderr, p.stderr
    again = ws.run("run", "write out/b.txt b", "--session", "t")
    assert again.returncode == 0 and name not in again.stderr
    assert not any(r["session"] not in ("s", "t") for r in ws.ledger())


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_a_journal_that_is_not_a_plain_file_is_left_alone(ws: Workspace, tmp_path: Path,
                                                          kind: str) -> None:
    _config(ws, fake("honest"))
    d = ws.state / "inflight"
    d.mkdir(parents=True)
    path = d / "r-20260101T000000-abcdef.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text('{"run_id":"r-20260101T000000-abcdef",' + _HEAD + "}")
        path.symlink_to(target)
    else:
        path.mkdir()
    p = ws.run("run", "write out/a.txt a", "--session", "t", timeout=30)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert [r["status"] for r in ws.ledger()] == ["ok"]


def test_a_call_refused_before_it_starts_is_not_charged_as_lost(ws: Workspace) -> None:
    """A prompt too long for one argument is refused before the worker starts (exit 2,
    nothing dispatched): the next run must not charge it as a lost call."""
    ws.config(f"tiers:\n  silver: {{command: 'echo {{prompt}}', input: arg, {PRICE}}}\n"
              f"  bronze: {{command: {quoted(fake('honest'))}, {PRICE}}}\nplanner: null\n")
    p = ws.run("run", "-", "--session", "s", input="answer " + "word " * 30_000)
    assert p.returncode == 2 and "too long for one command-line argument" in p.stderr
    assert ws.run("run", "write b.txt b", "--tier", "bronze", "--session", "t").returncode == 0
    assert [r["status"] for r in ws.ledger()] == ["ok"]
    assert not list((ws.state / "inflight").glob("*.json"))


@pytest.mark.in_process
def test_a_killed_child_is_charged_to_its_delegation_tree(ws: Workspace,
                                                          tmp_path: Path) -> None:
    """A child of a tree killed mid-call is charged its worst case as `lost`; the tree's
    max_cost_per_task must count it, or the next child spends it a second time."""
    tree = {"BURNLESS_PARENT_RUN": "r-20261201T000000-abcdef",
            "BURNLESS_ROOT_RUN": "r-20261201T000000-abcdef", "BURNLESS_TREE": "t-0123456789ab",
            "BURNLESS_DEPTH": "1"}
    _kill_during_the_call(ws, tmp_path, "budget: {max_cost_per_task: 0.03}\n", "c1", tree)
    _config(ws, fake("honest"), "budget: {max_cost_per_task: 0.03}\n")
    # the lost call holds ~$0.016 of the tree's $0.03; a second call's worst case is as much
    second = ws.run("run", "write b.txt y", "--session", "c2", env=tree)
    assert second.returncode == 4 and "task tree" in second.stderr, second.stderr
    lost = [r for r in ws.ledger() if r["status"] == "lost"]
    assert len(lost) == 1 and lost[0]["cost_usd"] > 0.015


def test_session_compact_first_restores_a_killed_turn(ws: Workspace) -> None:
    """`session compact` right after a killed turn must fold that turn too, not leave it to
    be restored later into an epoch the session has left (where no prompt shows it)."""
    _config(ws, fake("honest"), "compaction: {keep_recent: 1}\n")
    assert ws.run("run", "write out/a.txt one", "--session", "s").returncode == 0
    assert ws.run("run", "write out/b.txt two", "--session", "s").returncode == 0
    killed = ws.run("run", "write out/killed.txt three", "--session", "s",
                    env={"BURNLESS_FAULT": "after-ledger"})
    assert killed.returncode == -signal.SIGKILL
    p = ws.run("session", "compact", "s")
    assert p.returncode == 0, p.stderr
    prompt = ws.run("session", "prompt", "s")
    assert prompt.returncode == 0 and "out/killed.txt" in prompt.stdout
    assert len([c for c in ws.capsules("s") if c.get("run_id")]) == 3


def _flock_held(path: Path) -> bool:
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_turn_does_not_reuse_the_seq_of_a_killed_turn_another_run_is_recording(
        ws: Workspace) -> None:
    """Another session's run is recording this session's killed turn (its sweep is slow: the
    ledger is busy) when this session's next turn starts: that turn must still see the
    killed turn's capsule first and take the next seq, not the killed turn's."""
    from burnless.storage.locks import file_lock

    _config(ws, fake("honest"))
    for i in range(4):  # a ledger larger than the journal, which must not be cut short
        assert ws.run("run", f"write out/p{i}.txt x", "--session", "pre").returncode == 0
    assert ws.run("run", "write out/a.txt one", "--session", "s").returncode == 0
    size = (ws.state / "ledger.jsonl").stat().st_size
    cut = _run_limited(ws, size + 300, "write out/b.txt two", "--session", "s")
    assert cut.returncode == 1, cut.stderr
    assert "could not be written" in cut.stderr
    (journal,) = (ws.state / "inflight").glob("*.json")
    killed = journal.name[:-len(".json")]
    inflight = ws.state / "inflight"

    def run(session: str, task: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "burnless", "run", task, "--session",
                                 session], cwd=ws.root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    with file_lock(ws.state / "ledger.jsonl.lock", 10):  # the ledger is busy
        other = run("t", "write out/t.txt t")
        deadline = time.monotonic() + 30
        while not (any(".sweep-" in p.name for p in inflight.iterdir())
                   or _flock_held(ws.state / "budget.lock")):
            assert time.monotonic() < deadline, "the other run never started its sweep"
            time.sleep(0.02)
        mine = run("s", "write out/c.txt three")
        time.sleep(2.0)
    assert other.wait(timeout=60) == 0 and mine.wait(timeout=60) == 0
    caps = ws.capsules("s")
    assert [c["seq"] for c in caps] == [1, 2, 3]
    assert caps[1]["run_id"] == killed
    seqs = [r["seq"] for r in ws.ledger() if r["session"] == "s"]
    assert sorted(seqs) == [1, 2, 3]


unshare = pytest.mark.skipif(
    os.geteuid() != 0 or subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                                        capture_output=True).returncode != 0,
    reason="needs root and unshare for a PID namespace")


@unshare
def test_a_call_running_in_another_pid_namespace_is_not_taken_for_a_dead_one(
        ws: Workspace, tmp_path: Path) -> None:
    """A container and the host share a workspace (a bind mount): the journal of a call in
    flight over there names a pid that means nothing here. It must not be recorded as lost
    while it runs (its real record follows: the call would be charged twice)."""
    started = tmp_path / "started"
    worker = tmp_path / "slow.py"
    worker.write_text(
        "import json, pathlib, sys, time\nsys.stdin.read()\n"
        f"pathlib.Path({str(started)!r}).write_text('x')\ntime.sleep(3)\n"
        "print(json.dumps({'status': 'ok', 'kind': 'thought', 'summary': 'slow'}))\n")
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, {PRICE}}}\n"
              f"  slow: {{command: {quoted(sys.executable + ' ' + str(worker))}, {PRICE}}}\n"
              "planner: null\n")
    contained = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "burnless", "run",
         "answer slowly", "--tier", "slow", "--session", "a"], cwd=ws.root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(started)
    p = ws.run("run", "write b.txt b", "--session", "b")
    assert p.returncode == 0 and "lost" not in p.stderr, p.stderr
    assert contained.wait(timeout=60) == 0
    assert sorted(r["status"] for r in ws.ledger()) == ["ok", "ok"]


def test_a_removed_session_does_not_come_back_with_a_killed_turn(ws: Workspace) -> None:
    """`session rm` after a turn was killed before writing its capsule: a later run (of any
    session) must not re-create the session to restore that capsule into it."""
    _config(ws, fake("honest"))
    assert ws.run("run", "write out/a.txt one", "--session", "s").returncode == 0
    killed = ws.run("run", "write out/b.txt two", "--session", "s",
                    env={"BURNLESS_FAULT": "after-ledger"})
    assert killed.returncode == -signal.SIGKILL
    assert ws.run("session", "rm", "s").returncode == 0
    p = ws.run("run", "write out/c.txt three", "--session", "t")
    assert p.returncode == 0, p.stderr
    assert not (ws.state / "sessions" / "s").exists()
    assert "s" not in ws.run("session", "list").stdout.split()
    assert len(ws.ledger()) == 3  # the killed call is in the ledger, once
    assert not list((ws.state / "inflight").glob("*.json"))


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(4))
def test_runs_that_open_calls_while_others_sweep_all_succeed(
        ws: Workspace, tmp_path: Path, attempt: int) -> None:
    """Ten runs at once, one dead journal to sweep: a sweeper must never take a call's lock
    file, caught between its creation and its lock, for a stale one (that run then failed:
    "a call with this run id is already in flight")."""
    _kill_during_the_call(ws, tmp_path)
    _config(ws, fake("honest"))
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write f{i}.txt x",
                               "--session", f"p{i}"], cwd=ws.root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for i in range(10)]
    out = [(p.returncode, err.decode()[-300:])
           for p, (_, err) in ((p, p.communicate(timeout=120)) for p in procs)]
    assert [c for c, _ in out] == [0] * 10, [o for o in out if o[0]]
    assert [r["status"] for r in ws.ledger()].count("lost") == 1
