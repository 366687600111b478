"""The core turn through the real CLI, against fake worker programs; hostile command-line input
(empty, huge or binary tasks, bad timeouts, unknown tiers, hostile session and run ids) and
damaged state files: exit 2 and a clear error, nothing dispatched, never a traceback."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from burnless.runs import alive
from tests.cli.conftest import run_a_sleeper
from tests.conftest import Workspace, clean, fake, honest_argv, quoted


def test_honest_writer_passes_audit_and_leaves_capsule_and_ledger(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    code, res = ws.json("run", "write notes/a.txt hello world")
    assert code == 0, res
    assert (ws.root / "notes/a.txt").read_bytes() == b"hello world"
    assert res["ok"] is True and res["status"] == "ok" and res["tier"] == "silver"
    assert res["audit"] == {"verdict": "passed", "findings": [], "unclaimed": []}
    assert res["files"] == ["notes/a.txt"]
    assert set(res["usage"]) == {"input", "output", "cache_read", "cache_write"}
    (cap,) = ws.capsules()
    assert cap["seq"] == 1 and cap["role"] == "exec" and cap["audit"] == "passed"
    assert cap["files"] == ["notes/a.txt"] and cap["status"] == "ok"
    assert cap["run_id"] == res["run_id"]
    (rec,) = ws.ledger()
    assert rec["role"] == "execution" and rec["status"] == "ok" and rec["audit"] == "passed"
    assert rec["run_id"] == res["run_id"] and rec["seq"] == 1 and rec["exit"] == 0
    # No usage reported and no model known: tokens estimated from bytes, cost unknown (not 0).
    assert rec["tokens"]["input"] > 0 and rec["cost_source"] == "unknown"
    assert rec["cost_usd"] is None
    assert (ws.root / res["log"]).is_file()


def test_liar_fails_audit_with_exit_3(ws: Workspace) -> None:
    ws.tiers(silver="liar")
    code, res = ws.json("run", "write a.txt hello")
    assert code == 3
    assert res["status"] == "ok" and res["ok"] is False
    assert res["audit"]["verdict"] == "failed"
    assert {"check": "missing", "path": "a.txt"} in [
        {k: f[k] for k in ("check", "path")} for f in res["audit"]["findings"]
    ]
    assert not (ws.root / "a.txt").exists()
    assert ws.capsules()[0]["audit"] == "failed"
    assert ws.ledger()[0]["audit"] == "failed"


def test_wrong_size_claim_fails_audit(ws: Workspace) -> None:
    ws.tiers(silver="wrong-size")
    code, res = ws.json("run", "write a.txt hello")
    assert code == 3
    assert [f["check"] for f in res["audit"]["findings"]] == ["size"]


def test_claim_outside_the_workspace_fails_audit(ws: Workspace) -> None:
    ws.tiers(silver="outside")
    code, res = ws.json("run", "write a.txt hello")
    assert code == 3
    assert [f["check"] for f in res["audit"]["findings"]] == ["outside"]


def test_unclaimed_change_is_a_warning_and_fails_under_strict(ws: Workspace) -> None:
    ws.tiers(silver="unclaimed")
    code, res = ws.json("run", "write a.txt hello")
    assert code == 0 and res["audit"]["unclaimed"] == ["a.txt.extra"]
    ws.tiers(silver="unclaimed", extra="audit: {strict: true}\n")
    code, res = ws.json("run", "write b.txt hello")
    assert code == 3
    assert [f["check"] for f in res["audit"]["findings"]] == ["unclaimed"]


def test_unchanged_claim_fails(ws: Workspace) -> None:
    (ws.root / "a.txt").write_bytes(b"hello")
    old = time.time() - 100
    os.utime(ws.root / "a.txt", (old, old))
    ws.tiers(silver="liar")  # claims a.txt with the right size and hash, but never touches it
    code, res = ws.json("run", "write a.txt hello")
    assert code == 3
    assert [f["check"] for f in res["audit"]["findings"]] == ["unchanged"]


def test_verify_command_failure_fails_audit(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    fail = f"{sys.executable} -c 'import sys; sys.exit(4)'"
    code, res = ws.json("run", "write a.txt hi", "--verify", fail)
    assert code == 3
    (finding,) = res["audit"]["findings"]
    assert finding["check"] == "verify" and "exit 4" in finding["detail"]
    ok = f"{sys.executable} -c 'pass'"
    code, res = ws.json("run", "write b.txt hi", "--verify", ok)
    assert code == 0 and res["audit"]["verdict"] == "passed"


def test_timeout_kills_the_whole_process_group(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('sleeper', '--record', str(rec)))}}}\n")
    t0 = time.monotonic()
    code, res = ws.json("run", "sleep please", "--timeout", "1")
    assert time.monotonic() - t0 < 15
    assert code == 1 and res["status"] == "failed"
    assert "timed out" in ws.ledger()[0]["reason"]
    child, grandchild = (int(x) for x in (rec / "pids").read_text().split())
    for pid in (child, grandchild):
        assert not alive(pid), f"pid {pid} survived the timeout"


def test_ctrl_c_kills_worker_and_records_interruption(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    proc, child, grandchild = run_a_sleeper(ws, rec)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert not alive(child) and not alive(grandchild)
    (record,) = ws.ledger()
    assert record["status"] == "interrupted"
    assert ws.capsules() == []


def test_a_sigkilled_burnless_does_not_orphan_its_worker(ws: Workspace, tmp_path: Path) -> None:
    """No cleanup code runs on SIGKILL: the worker's supervisor must kill it by itself (see
    tests/unit/test_process.py for the supervisor, tests/cli/test_containment.py for daemons)."""
    rec = tmp_path / "rec"
    proc, child, grandchild = run_a_sleeper(ws, rec)
    proc.kill()
    proc.communicate(timeout=20)
    deadline = time.monotonic() + 10
    while alive(child) or alive(grandchild):
        assert time.monotonic() < deadline, "the worker outlived a SIGKILLed burnless"
        time.sleep(0.05)


def test_ctrl_c_during_verify_still_records_the_paid_call(ws: Workspace, tmp_path: Path) -> None:
    """The worker ran (and was paid for); Ctrl-C comes while a verify command runs."""
    started = tmp_path / "verifying"
    ws.tiers(silver="honest")
    verify = f"sh -c 'touch {started}; sleep 30'"
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "run", "write a.txt hi",
                             "--verify", verify], cwd=ws.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    (record,) = ws.ledger()
    assert record["role"] == "execution" and record["status"] == "interrupted"
    assert record["tokens"]["input"] > 0  # the call's usage is on record


def test_crasher_fails_with_exit_1_and_keeps_its_output(ws: Workspace) -> None:
    ws.tiers(silver="crasher")
    code, res = ws.json("run", "do something")
    assert code == 1 and res["status"] == "failed"
    cap = ws.capsules()[0]
    assert cap["status"] == "failed" and "exit 3" in cap["notes"][0]
    log = ws.run("log", res["run_id"])
    assert log.returncode == 0
    assert "fatal: worker crashed" in log.stdout and "Working on it" in log.stdout


def test_garbage_output_is_a_finding_not_a_crash(ws: Workspace) -> None:
    ws.tiers(silver="garbage")
    p = ws.run("run", "anything", "--json")
    assert "Traceback" not in p.stderr
    res = orjson.loads(p.stdout)
    assert p.returncode == 0  # no envelope: the status follows the exit code
    assert res["files"] == [] and res["findings"]
    assert any("malformed" in f or "envelope" in f for f in res["findings"])


def test_claude_json_usage_and_reported_cost_reach_the_ledger(ws: Workspace) -> None:
    ws.tiers(silver="claude-json")
    code, res = ws.json("run", "write c.txt from claude")
    assert code == 0 and res["cost_source"] == "reported" and res["cost_usd"] == 0.0123
    rec = ws.ledger()[0]
    assert rec["tokens"] == {"input": 100, "output": 50, "cache_read": 8000, "cache_write": 2000}
    assert rec["cost_usd"] == 0.0123 and rec["cost_source"] == "reported"
    assert rec["model"] == "claude-haiku-4-5"


def test_json_output_is_one_object_and_task_from_stdin(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    p = ws.run("run", "-", "--json", input="write s.txt from stdin")
    assert p.returncode == 0
    res = orjson.loads(p.stdout)  # exactly one JSON document on stdout
    assert res["files"] == ["s.txt"]
    assert (ws.root / "s.txt").read_text() == "from stdin"


def test_human_output(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    p = ws.run("run", "write h.txt hi")
    assert p.returncode == 0
    assert "ok · silver" in p.stdout and "audit passed" in p.stdout and "h.txt" in p.stdout


@pytest.mark.parametrize("bad", [".", "..", ".hidden", "a/b", "x" * 129, "", "a b", "-x/../y"])
def test_bad_session_ids_are_usage_errors(ws: Workspace, bad: str) -> None:
    ws.tiers(silver="honest")
    p = ws.run("run", "write z.txt z", "--session", bad)
    assert p.returncode == 2, (bad, p.stderr)
    assert "session" in p.stderr
    assert ws.ledger() == [] and not (ws.root / "z.txt").exists()


def test_good_session_id_with_dots(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    code, res = ws.json("run", "write y.txt y", "--session", "auth-refactor.2026_v1")
    assert code == 0 and res["session"] == "auth-refactor.2026_v1"
    assert ws.capsules("auth-refactor.2026_v1")


def test_session_from_environment(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    code, res = ws.json("run", "write e.txt e", env={"BURNLESS_SESSION": "from-env"})
    assert code == 0 and res["session"] == "from-env"


def test_misspelled_key_is_exit_2_with_file_line_and_suggestion(ws: Workspace) -> None:
    ws.config("tiers:\n  silver:\n    comand: echo\n")
    p = ws.run("run", "x")
    assert p.returncode == 2
    assert "config.yaml:3: tiers.silver.comand: unknown key; did you mean 'command'?" in p.stderr


def test_tier_not_on_path_fails_before_dispatch(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: 'no-such-agent-cli --model x'}\n")
    p = ws.run("run", "x")
    assert p.returncode == 2
    assert "silver" in p.stderr and "no-such-agent-cli" in p.stderr
    assert ws.ledger() == [] and ws.capsules() == []


def test_log_of_unknown_run_is_usage_error(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    assert ws.run("log", "r-20260101T000000-abcdef").returncode == 2
    assert ws.run("log", "../../etc/passwd").returncode == 2


def test_prefix_file_carries_the_stable_prefix_not_stdin(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    cmd = fake("honest", "--record", str(rec), "--prefix-file", "{prefix_file}")
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(cmd).decode()}}}\n")
    (ws.state / "prefix.md").write_text("PROJECT RULES\n")
    assert ws.run("run", "write p.txt p").returncode == 0
    sent = (rec / "prompt-1.txt").read_text()
    argv = orjson.loads((rec / "argv-1.json").read_text())
    pfile = Path(argv[argv.index("--prefix-file") + 1])
    prefix = pfile.read_text()
    assert "PROJECT RULES" in prefix and "<burnless-protocol" in prefix
    assert "PROJECT RULES" not in sent and "<burnless-protocol" not in sent
    assert sent.endswith("<task>\nwrite p.txt p\n</task>\n")
    assert pfile.name == hashlib.sha256(prefix.encode()).hexdigest()[:32] + ".md"


def test_input_arg_and_too_long_prompt(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    cmd = fake("honest", "--record", str(rec), "{prompt}")
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(cmd).decode()}, input: arg}}\n")
    assert ws.run("run", "write q.txt q").returncode == 0
    assert (ws.root / "q.txt").read_text() == "q"
    p = ws.run("run", "-", input="write r.txt " + "x" * 200_000)
    assert p.returncode == 2 and "too long for one command-line argument" in p.stderr
    assert "Traceback" not in p.stderr


def test_worker_environment_is_scrubbed(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    cmd = fake("honest", "--record", str(rec))
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(cmd).decode()}, "
              "env: {EXTRA: 'yes'}, pass_env: [PASSED_KEY]}\n")
    p = ws.run("run", "write w.txt w", env={"SECRET_TOKEN": "s3cr3t", "PASSED_KEY": "k"})
    assert p.returncode == 0
    env = orjson.loads((rec / "env-1.json").read_text())
    assert "SECRET_TOKEN" not in env
    assert env["PASSED_KEY"] == "k" and env["EXTRA"] == "yes"
    assert env["BURNLESS_DEPTH"] == "1"
    allowed = {"PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER", "SHELL", "PASSED_KEY", "EXTRA",
               "BURNLESS_DEPTH", "BURNLESS_ACTIVE_SESSIONS", "BURNLESS_PARENT_RUN",
               "BURNLESS_ROOT_RUN", "BURNLESS_TREE", "PWD", "SHLVL", "_"}
    assert {k for k in env if not k.startswith("LC_")} <= allowed


def test_concurrent_runs_on_one_session_serialize(ws: Workspace) -> None:
    ws.tiers(silver="slow")
    procs = [
        subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write c{i}.txt {i}",
                          "--session", "shared"], cwd=ws.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)
    ]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    seqs = [c["seq"] for c in ws.capsules("shared")]
    assert seqs == list(range(1, 9))
    records = ws.ledger()
    assert len(records) == 8 and len({r["run_id"] for r in records}) == 8
    assert sorted(r["seq"] for r in records) == list(range(1, 9))


def test_session_lock_timeout_is_exit_6(ws: Workspace) -> None:
    from burnless.storage.locks import file_lock

    ws.tiers(silver="honest", extra="session: {lock_timeout: 0.5}\n")
    lock_path = ws.state / "sessions" / "held" / ".lock"
    lock_path.parent.mkdir(parents=True)
    with file_lock(lock_path, 5):
        p = ws.run("run", "write l.txt l", "--session", "held")
    assert p.returncode == 6 and "busy" in p.stderr
    assert ws.ledger() == []


def test_escalate_without_cascade_exits_1(ws: Workspace) -> None:
    ws.tiers(silver="escalate")
    code, res = ws.json("run", "hard thing")
    assert code == 1 and res["status"] == "escalate"


def test_init_writes_example_and_refuses_to_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "burnless", *a], cwd=root, capture_output=True, text=True)
    p = run("init")
    assert p.returncode == 0, p.stderr
    assert (root / ".burnless/config.yaml").is_file() and (root / ".burnless/prefix.md").is_file()
    for cli in ("claude", "codex", "gemini", "ollama"):
        assert cli in p.stdout
    p = run("init")
    assert p.returncode == 2 and "--force" in p.stderr
    (root / ".burnless/config.yaml").write_text("tiers: {x: {command: mine}}\n")
    p = run("init", "--force")
    assert p.returncode == 0
    assert (root / ".burnless/config.yaml.bak").read_text() == "tiers: {x: {command: mine}}\n"
    # The example loads, and routing works without any tier installed.
    p = run("route", "design the architecture", "--json")
    assert p.returncode == 0, p.stderr
    assert orjson.loads(p.stdout)["tier"] == "gold"


def test_python_api_returns_run_result_and_raises_typed_errors(ws: Workspace) -> None:
    from burnless import BurnlessAgent, ConfigError, RunResult, UsageError

    ws.tiers(silver="honest")
    agent = BurnlessAgent(config_path=ws.state / "config.yaml", workspace=ws.root)
    result = agent.run(task="write api.txt from python", session_id="py")
    assert isinstance(result, RunResult)
    assert result.ok and result.exit_code == 0 and result.files == ("api.txt",)
    assert result.audit.verdict == "passed" and result.usage.input > 0
    with pytest.raises(UsageError):
        agent.run(task="x", session_id="../escape")
    (ws.state / "config.yaml").write_text("tiers: [1, 2]\n")
    with pytest.raises(ConfigError):
        BurnlessAgent(config_path=ws.state / "config.yaml")


def test_sigterm_is_an_interruption_too(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    proc, child, grandchild = run_a_sleeper(ws, rec)
    proc.terminate()
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert not alive(child) and not alive(grandchild)
    assert ws.ledger()[0]["status"] == "interrupted"


def test_dry_run_routes_and_renders_without_dispatching(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest', '--record', str(rec)))}}}\n")
    code, res = ws.json("run", "write d.txt d", "--dry-run")
    assert code == 0 and res["dry_run"] is True and res["tier"] == "silver"
    assert "would send" in res["summary"]
    assert not rec.exists() and ws.ledger() == [] and ws.capsules() == []
    assert not (ws.root / "d.txt").exists()


def test_progress_shows_on_a_tty_and_not_otherwise(ws: Workspace) -> None:
    import os
    import pty

    ws.tiers(silver="slow")
    p = ws.run("run", "write t.txt t")
    assert p.returncode == 0 and p.stderr == ""  # not a TTY: no spinner, nothing on stderr
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "run", "write u.txt u"],
                            cwd=ws.root, stdout=subprocess.DEVNULL, stderr=secondary,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(primary)
    import re

    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0
    assert re.search(r"execution on silver\s+\d+\.\ds", shown), shown  # tier and elapsed time


def test_large_prompt_and_chatty_worker_do_not_deadlock(ws: Workspace) -> None:
    ws.tiers(extra="policy: {max_task_bytes: 4000000}\n", silver="chatty")
    big = "write big.txt " + "x" * 3_000_000  # ~3 MB on stdin while the worker floods its pipes
    code, res = ws.json("run", "-", input=big, timeout=120)
    assert code == 0, res
    assert (ws.root / "big.txt").stat().st_size == 3_000_000
    log = (ws.root / res["log"]).read_bytes()
    assert log.count(b"progress line") == 20_000 and log.count(b"debug line") == 10_000


# --------------------------------------------------------------------------- command line


@pytest.fixture
def honest(ws: Workspace) -> Workspace:
    return ws.tiers(silver="honest")


def test_empty_task(honest: Workspace) -> None:
    for args, stdin in ((("run", ""), None), (("run", "-"), "   \n\t ")):
        p = honest.run(*args, input=stdin)
        clean(p)
        assert p.returncode == 2 and "the task is empty" in p.stderr
    assert honest.ledger() == []


def test_task_starting_with_a_dash(honest: Workspace) -> None:
    p = honest.run("run", "--json", "--", "-rf is not an option")
    assert p.returncode == 0 and orjson.loads(p.stdout)["status"] == "ok"
    assert honest.capsules()[0]["task"] == "-rf is not an option"


def test_a_5mb_task_on_stdin(honest: Workspace) -> None:
    task = "refactor " * (5 * 1024 * 1024 // 9)
    code, res = honest.json("run", "-", input=task, timeout=60)
    assert code == 2 and "policy.max_task_bytes" in res["error"]  # refused, nothing sent
    cfg = honest.state / "config.yaml"
    cfg.write_text(cfg.read_text() + "policy: {max_task_bytes: 6000000}\n")
    code, res = honest.json("run", "-", input=task, timeout=60)
    assert code == 0 and res["status"] == "ok"


def test_task_that_is_not_text(honest: Workspace) -> None:
    for cmd in ("route", "run"):
        p = subprocess.run([*honest_argv(), cmd, "-"], cwd=honest.root, input=b"fix \xff bug",
                           capture_output=True, timeout=30)
        err = p.stderr.decode()
        assert p.returncode == 2 and "not UTF-8 text (byte 0xff at offset 4)" in err, err
        p = subprocess.run([*honest_argv(), cmd, "-"], cwd=honest.root, input=b"fix\x00bug",
                           capture_output=True, timeout=30)
        assert p.returncode == 2 and "contains a NUL byte" in p.stderr.decode()
        p = subprocess.run([*honest_argv(), cmd, b"fix \xff bug"], cwd=honest.root,
                           capture_output=True, timeout=30)
        assert p.returncode == 2 and b"not UTF-8 text" in p.stderr and b"Traceback" not in p.stderr
    assert honest.ledger() == []




@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e400"])
def test_timeout_must_be_a_positive_finite_number(honest: Workspace, value: str) -> None:
    p = honest.run("run", "hi", "--json", "--timeout", value)
    clean(p)
    assert p.returncode == 2 and "--timeout must be a positive number of seconds" in p.stderr
    js = orjson.loads(p.stdout)
    assert js["ok"] is False and js["exit_code"] == 2 and "--timeout" in js["error"]
    assert honest.ledger() == []


@pytest.mark.parametrize(
    ("cmd", "message"),
    [("", "is empty"), ("  ", "is empty"),
     ("pytest '", "cannot split into arguments: No closing quotation")],
)
def test_verify_commands_that_cannot_run_are_refused_before_dispatch(
    honest: Workspace, cmd: str, message: str
) -> None:
    p = honest.run("run", "write a.txt hi", "--verify", cmd)
    clean(p)
    assert p.returncode == 2 and f"--verify {cmd!r}: {message}" in p.stderr
    assert honest.ledger() == [] and not (honest.root / "a.txt").exists()


def test_timeout_that_is_not_a_number(honest: Workspace) -> None:
    p = honest.run("run", "hi", "--timeout", "soon")
    assert p.returncode == 2 and "'soon' is not a valid float" in p.stderr


@pytest.mark.parametrize(("cmd", "tier"), [("run", "nope"), ("route", ""), ("run", "silver "),
                                         ("route", "../silver")])
def test_unknown_tier_flag(honest: Workspace, cmd: str, tier: str) -> None:
    p = honest.run(cmd, "hi", "--tier", tier)
    clean(p)
    assert p.returncode == 2 and "unknown tier" in p.stderr
    assert honest.ledger() == []


HOSTILE_SESSIONS = ["", ".", "..", "../../etc", "a/b", ".hidden", "a\nb", "x" * 129, "a b", "é"]


def test_hostile_session_ids(honest: Workspace) -> None:
    from burnless import BurnlessAgent, UsageError

    agent = BurnlessAgent(cwd=honest.root)
    for session in HOSTILE_SESSIONS:
        for call in (agent.run, agent.route):
            with pytest.raises(UsageError, match="invalid session id"):
                call("hi", session)
    p = honest.run("run", "hi", "--session", "../../etc")
    clean(p)
    assert p.returncode == 2 and "invalid session id '../../etc'" in p.stderr
    p = honest.run("route", "hi", env={"BURNLESS_SESSION": ".."})
    assert p.returncode == 2 and "invalid session id '..'" in p.stderr
    assert honest.ledger() == [] and not (honest.root.parent / "etc").exists()


@pytest.mark.parametrize(
    "run_id", ["../../etc/passwd", "", "r-20240101T000000-abcdef/../../x", "/etc/passwd",
               "r-20240101T000000-ABCDEF"])
def test_log_with_hostile_run_id(honest: Workspace, run_id: str) -> None:
    p = honest.run("log", run_id)
    clean(p)
    assert p.returncode == 2 and "invalid run id" in p.stderr and p.stdout == ""


def test_log_that_is_not_a_regular_file(honest: Workspace) -> None:
    logs = honest.state / "logs"
    logs.mkdir()
    (logs / "r-20240101T000000-aaaaaa.log").mkdir()
    os.mkfifo(logs / "r-20240101T000000-bbbbbb.log")
    for run_id in ("r-20240101T000000-aaaaaa", "r-20240101T000000-bbbbbb"):
        p = honest.run("log", run_id, timeout=20)
        clean(p)
        assert p.returncode == 2 and "is not a regular file" in p.stderr, p.stderr
    p = honest.run("log", "r-20240101T000000-cccccc")
    assert p.returncode == 2 and "no log for run" in p.stderr


def test_run_with_a_config_error_dispatches_nothing(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, timeout: .nan}}\n")
    code, js = ws.json("run", "hi")
    assert code == 2 and "tiers.silver.timeout: must be a finite number" in js["error"]
    assert ws.ledger() == [] and ws.capsules() == []




# --------------------------------------------------------------------------- damaged state


def test_damaged_breaker_and_reservation_files_do_not_crash_a_run(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, price: 1}}\n"
              "budget: {max_cost_per_day: 100}\n")
    (ws.state / "breaker.json").write_bytes(orjson.dumps(
        {"silver": {"streak": "many", "last_failure": None}, "gold": [], "x": {"streak": 1e300}}))
    (ws.state / "reservations.json").write_bytes(orjson.dumps(
        {"a": {"pid": os.getpid()}, "b": {"pid": 2**40, "amount": 1, "session": "s", "day": "d"},
         "c": {"pid": 1, "amount": "lots", "session": "default", "day": "x"}, "d": 7}))
    code, res = ws.json("run", "hi")
    assert code == 0 and res["status"] == "ok"
