"""Sessions: planner/executor split, growing-only context, compaction, pinning, crashes; then
session state under attack: hostile ids, damaged files, crashes, races, full disks.

Every case uses real files, the real CLI (``ws``) or real subprocesses and kills. The rule each
hostile case checks: a clear error or a warning, never a traceback; never a lost complete
capsule; never a write outside the session's directory; the prompt stays byte-stable."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from burnless import BurnlessAgent
from burnless.errors import BurnlessError, UsageError
from burnless.session.capsule import MAX_SUMMARY, Capsule, render
from burnless.session.context import context_of, current_epoch, next_seq
from burnless.session.store import Pin, Session, SessionMeta, check_session_id
from burnless.storage import jsonl
from tests.conftest import WORKER, Workspace, fake, limited, quoted


def _cmd(mode: str, rec: Path, *extra: str) -> str:
    return quoted(fake(mode, "--record", str(rec), *extra))


def two_tiers(
    ws: Workspace, tmp_path: Path, extra: str = "", silver: str = "honest"
) -> tuple[Path, Path]:
    gold, silv = tmp_path / "gold", tmp_path / "silver"
    ws.config(f"tiers:\n  gold: {{command: {_cmd('honest', gold)}}}\n"
              f"  silver: {{command: {_cmd(silver, silv)}}}\n" + extra)
    return gold, silv


def prompts(rec: Path) -> list[str]:
    n = len(list(rec.glob("prompt-*.txt")))
    return [(rec / f"prompt-{i}.txt").read_text() for i in range(1, n + 1)]


def without_task(prompt: str) -> str:
    return prompt[: prompt.rindex("<task>\n")]


def test_planner_fires_once_per_epoch_and_executor_sees_the_plan(
    ws: Workspace, tmp_path: Path
) -> None:
    gold, silver = two_tiers(ws, tmp_path)
    code, res = ws.json("run", "write a.txt one")
    assert code == 0 and res["plan"] and res["plan"][0].startswith("understand")
    code, _ = ws.json("run", "write b.txt two")
    assert code == 0
    assert len(prompts(gold)) == 1 and len(prompts(silver)) == 2
    assert 'role="planner"' in prompts(gold)[0]
    for p in prompts(silver):
        assert "<plan " in p and "1. understand: write a.txt one" in p
    roles = [r["role"] for r in ws.ledger()]
    assert roles == ["planning", "execution", "execution"]
    caps = ws.capsules()
    assert [c["role"] for c in caps] == ["plan", "exec", "exec"]


def test_no_plan_and_planner_null(ws: Workspace, tmp_path: Path) -> None:
    gold, silver = two_tiers(ws, tmp_path)
    assert ws.run("run", "write a.txt one", "--no-plan").returncode == 0
    assert not gold.exists() and "<plan " not in prompts(silver)[0]
    gold, silver = two_tiers(ws, tmp_path, extra="planner: null\n")
    assert ws.run("run", "write b.txt two", "--session", "other").returncode == 0
    assert not gold.exists()


def test_context_only_grows_within_an_epoch(ws: Workspace, tmp_path: Path) -> None:
    _, silver = two_tiers(ws, tmp_path)
    (ws.state / "prefix.md").write_text("Use tabs.\n")
    for i in range(5):
        assert ws.run("run", f"write f{i}.txt content {i}").returncode == 0
    sent = [without_task(p) for p in prompts(silver)]
    for a, b in zip(sent, sent[1:], strict=False):
        assert b.startswith(a) and len(b) > len(a)
    last = sent[-1]
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}", last)  # no timestamps
    assert not re.search(r"r-\d{8}T\d{6}", last)  # no run ids
    assert str(ws.root) not in last and str(tmp_path) not in last  # no machine paths
    assert "$" not in last  # no costs


def test_two_fresh_sessions_send_the_same_bytes_up_to_the_task(
    ws: Workspace, tmp_path: Path
) -> None:
    _, silver = two_tiers(ws, tmp_path, extra="planner: null\n")
    ws.run("run", "hello there", "--session", "s1")
    ws.run("run", "something else", "--session", "s2")
    p1, p2 = prompts(silver)
    assert without_task(p1) == without_task(p2)


def test_session_prompt_prints_exactly_the_next_prompt(ws: Workspace, tmp_path: Path) -> None:
    _, silver = two_tiers(ws, tmp_path, extra="planner: null\n")
    ws.run("run", "write a.txt a")
    shown = ws.run("session", "prompt", "default", "--task", "write b.txt b")
    assert shown.returncode == 0
    assert "sha256" in shown.stderr and "capsules" in shown.stderr
    ws.run("run", "write b.txt b")
    assert prompts(silver)[-1] == shown.stdout
    code, js = ws.json("session", "prompt", "default")
    assert code == 0 and [p["part"] for p in js["parts"]] == [
        "header", "prefix", "plan", "capsules", "task"]
    assert js["text"].endswith("<task>\n<task>\n</task>\n")


def test_compaction_starts_a_new_epoch_shrinks_the_prompt_and_replans(
    ws: Workspace, tmp_path: Path
) -> None:
    gold, silver = two_tiers(
        ws, tmp_path, extra="compaction: {max_context_tokens: 300, keep_recent: 2}\n")
    for i in range(8):
        assert ws.run("run", f"write f{i}.txt some content number {i}").returncode == 0
    caps = ws.capsules()
    compacts = [c for c in caps if c["role"] == "compact"]
    assert compacts, "compaction never happened"
    first = compacts[0]
    assert first["epoch"] == 2 and len(first["keeps"]) == 2
    assert set(first["folds"]).isdisjoint(first["keeps"])
    assert "Turns folded" in first["digest"]
    # The planner fired again in the new epoch.
    plans = [c for c in caps if c["role"] == "plan"]
    assert len(plans) == 1 + len(compacts) and plans[1]["epoch"] == 2
    assert len(prompts(gold)) == 1 + len(compacts)
    # The prompt right after compaction is smaller than the one right before it.
    exec_prompts = prompts(silver)
    idx = [c["seq"] for c in caps if c["role"] == "exec"]
    compact_seq = first["seq"]
    before = sum(1 for s in idx if s < compact_seq)
    assert len(exec_prompts[before]) < len(exec_prompts[before - 1])
    # The new epoch renders the digest, then the kept capsules, then its own.
    p = exec_prompts[before]
    digest_at = p.index("<digest ")
    kept_at = [p.index(f'<capsule seq="{s}"') for s in first["keeps"]]
    assert digest_at < min(kept_at)
    # History is never rewritten: every capsule ever written is still in the file.
    assert [c["seq"] for c in caps] == list(range(1, len(caps) + 1))


def test_session_compact_on_demand(ws: Workspace, tmp_path: Path) -> None:
    two_tiers(ws, tmp_path, extra="planner: null\ncompaction: {keep_recent: 1}\n")
    ws.run("run", "write a.txt a")
    p = ws.run("session", "compact", "default")
    assert p.returncode == 0 and "nothing to fold" in p.stdout
    ws.run("run", "write b.txt b")
    ws.run("run", "write c.txt c")
    code, js = ws.json("session", "compact", "default")
    assert code == 0 and js["compacted"]
    cap = js["capsule"]
    assert cap["folds"] == [1, 2] and cap["keeps"] == [3] and cap["epoch"] == 2
    assert ws.run("session", "compact", "nope").returncode == 2


def test_pinning_survives_config_change_until_repin(ws: Workspace, tmp_path: Path) -> None:
    rec_a, rec_b = tmp_path / "a", tmp_path / "b"
    ws.config(f"tiers:\n  silver: {{command: {_cmd('honest', rec_a)}}}\n")
    assert ws.run("run", "write a.txt a").returncode == 0
    ws.config(f"tiers:\n  silver: {{command: {_cmd('honest', rec_b)}}}\n")
    p = ws.run("run", "write b.txt b")
    assert p.returncode == 0 and "pinned" in p.stderr and "--repin" in p.stderr
    assert len(prompts(rec_a)) == 2 and not rec_b.exists()
    p = ws.run("run", "write c.txt c", "--repin")
    assert p.returncode == 0 and len(prompts(rec_b)) == 1
    meta = orjson.loads((ws.state / "sessions/default/session.json").read_bytes())
    assert str(rec_b) in meta["pins"]["silver"]["command"] and meta["executor"] == "silver"


def test_executor_pin_survives_a_change_of_executor(ws: Workspace, tmp_path: Path) -> None:
    rec_s, rec_b = tmp_path / "s", tmp_path / "b"
    tiers = (f"tiers:\n  silver: {{command: {_cmd('honest', rec_s)}}}\n"
             f"  bronze: {{command: {_cmd('honest', rec_b)}}}\n")
    ws.config(tiers + "executor: silver\n")
    ws.run("run", "write a.txt a")
    ws.config(tiers + "executor: bronze\n")
    code, res = ws.json("run", "write b.txt b")
    assert code == 0 and res["tier"] == "silver"
    code, res = ws.json("run", "write c.txt c", "--session", "new")
    assert res["tier"] == "bronze"


def test_session_list_show_rm(ws: Workspace, tmp_path: Path) -> None:
    two_tiers(ws, tmp_path)
    ws.run("run", "write a.txt a", "--session", "alpha")
    ws.run("run", "write b.txt b", "--session", "beta")
    code, js = ws.json("session", "list")
    assert code == 0 and [s["id"] for s in js["sessions"]] == ["alpha", "beta"]
    assert js["sessions"][0]["capsules"] == 2 and js["sessions"][0]["calls"] == 2
    code, js = ws.json("session", "show", "alpha")
    assert code == 0 and js["epochs"] == [1] and js["executor"] == "silver"
    assert set(js["pins"]) == {"gold", "silver"}
    assert [c["role"] for c in js["capsule_list"]] == ["plan", "exec"]
    assert ws.run("session", "show", "nope").returncode == 2
    assert ws.run("session", "show", "../x").returncode == 2
    assert ws.run("session", "rm", "alpha").returncode == 0
    code, js = ws.json("session", "list")
    assert [s["id"] for s in js["sessions"]] == ["beta"]
    assert len(ws.ledger()) == 4  # the ledger keeps every record


@pytest.mark.parametrize("point", ["after-ledger", "after-capsule"])
def test_sigkill_at_a_crash_point_leaves_a_session_that_continues(
    ws: Workspace, tmp_path: Path, point: str
) -> None:
    two_tiers(ws, tmp_path, extra="planner: null\n")
    assert ws.run("run", "write a.txt a").returncode == 0
    p = ws.run("run", "write b.txt b", env={"BURNLESS_FAULT": point})
    assert p.returncode == -signal.SIGKILL
    p = ws.run("run", "write c.txt c")
    assert p.returncode == 0, p.stderr
    seqs = [c["seq"] for c in ws.capsules()]
    assert seqs == sorted(set(seqs)), "duplicate or out-of-order seq"
    assert len(ws.ledger()) == 3  # every call that ran is accounted for


def test_sigkill_during_the_worker_and_a_torn_capsule_line(ws: Workspace, tmp_path: Path) -> None:
    two_tiers(ws, tmp_path, extra="planner: null\n", silver="slow")
    assert ws.run("run", "write a.txt a").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "run", "write b.txt b"],
                            cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.15)
    proc.kill()
    proc.wait()
    # And a writer that died mid-line.
    with open(ws.state / "sessions/default/capsules.jsonl", "ab") as f:
        f.write(b'{"v": 1, "seq": 99, "epo')
    p = ws.run("run", "write c.txt c")
    assert p.returncode == 0, p.stderr
    caps = ws.capsules()
    assert [c["seq"] for c in caps] == [1, 2]
    assert (ws.state / "sessions/default/capsules.jsonl.torn").exists()


def test_compaction_by_a_tier_writes_the_digest(ws: Workspace, tmp_path: Path) -> None:
    gold, _ = two_tiers(ws, tmp_path, extra=(
        "planner: null\ncompaction: {max_context_tokens: 60, keep_recent: 1, tier: gold}\n"))
    for i in range(4):
        assert ws.run("run", f"write f{i}.txt content {i}").returncode == 0
    compacts = [c for c in ws.capsules() if c["role"] == "compact"]
    assert compacts and compacts[0]["digest"] == "DIGEST: everything so far was fine"
    assert compacts[0]["tier"] == "gold"
    assert 'role="compactor"' in prompts(gold)[0]
    assert "compaction" in [r["role"] for r in ws.ledger()]


def test_session_prompt_is_exact_when_a_compaction_is_due(ws: Workspace, tmp_path: Path) -> None:
    gold, silver = two_tiers(
        ws, tmp_path, extra="compaction: {max_context_tokens: 60, keep_recent: 1}\n")
    for i in range(3):
        assert ws.run("run", f"write f{i}.txt content {i}").returncode == 0
    n_gold = len(prompts(gold))
    shown = ws.run("session", "prompt", "default", "--task", "write g.txt g")
    assert "role: planner" in shown.stderr  # the compaction opens an epoch: the planner fires
    assert ws.run("run", "write g.txt g").returncode == 0
    assert len(prompts(gold)) == n_gold + 1
    assert prompts(gold)[-1] == shown.stdout
    code, res = ws.json("run", "write h.txt h", "--dry-run")
    assert code == 0 and res["dry_run"]


# --------------------------------------------------------------------------- hostile state

PLAIN = "planner: null\n"  # one executor call per run: fast, and enough for session state


def setup(ws: Workspace, extra: str = "", rec: Path | None = None) -> Workspace:
    cmd = fake("honest", *(("--record", str(rec)) if rec else ()))
    return ws.config(f"tiers:\n  silver: {{command: {quoted(cmd)}}}\n{PLAIN}{extra}")


def seed(ws: Workspace, sid: str = "s", n: int = 3) -> list[bytes]:
    """``n`` exec capsules written through the real append path; returns the file's lines."""
    session = Session(ws.state, sid)
    caps = session.capsules()
    start, epoch = next_seq(caps), current_epoch(caps)
    for i in range(start, start + n):
        session.append(Capsule.make(
            seq=i, epoch=epoch, role="exec", tier="silver", task=f"task {i}", status="ok",
            audit="passed", summary=f"did {i}", files=(f"f{i}.txt",), next="more",
            ts=f"2026-01-01T00:00:0{i % 10}Z"))
    return session.capsules_path.read_bytes().splitlines(keepends=True)


def run_all(ws: Workspace, *argss: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent CLI calls, all at once (the suite stays fast)."""
    procs = [(args, subprocess.Popen([sys.executable, "-m", "burnless", *args], cwd=ws.root,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for args in argss]
    out = []
    for args, proc in procs:
        stdout, stderr = proc.communicate(timeout=30)
        out.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return out


def cap_file(ws: Workspace, sid: str = "s") -> Path:
    return ws.state / "sessions" / sid / "capsules.jsonl"


def no_traceback(p: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr


def clean(p: subprocess.CompletedProcess[str], *codes: int) -> None:
    no_traceback(p)
    assert p.returncode in codes, (p.returncode, p.stderr)


# --------------------------------------------------------------------------- session ids

HOSTILE_IDS = [
    "../x", "../../etc/passwd", "/abs", "a/b", "a\\b", ".", "..", ".hidden", "", " a", "a ",
    "a\n", "a\tb", "a" * 129, "x" * 5000, "héllo", "Ａbc", "٣", "a:b", "a*", "$(id)", "~root",
]


def test_check_session_id_rejects_hostile_and_accepts_the_grammar() -> None:
    for sid in [*HOSTILE_IDS, "a\x00b", "\x00", "a\udcff", None, 12, b"abc"]:
        with pytest.raises(UsageError) as info:
            check_session_id(sid)  # type: ignore[arg-type]
        assert len(str(info.value)) < 300  # a megabyte id is not echoed back in full
    for sid in ["a", "a" * 128, "-x", "_", "A.b-c_9", "a..b", "con", "nul"]:
        assert check_session_id(sid) == sid


def test_hostile_ids_through_the_cli_are_exit_2_and_touch_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    rec = tmp_path / "rec"
    setup(ws, rec=rec)
    calls = [["run", "write a.txt a", "--session", sid]
             for sid in ["../x", "/abs", "..", "a/b", "a" * 129, "héllo"]]
    calls += [[*cmd, sid] for sid in ("../x",) for cmd in (
        ["session", "prompt"], ["session", "rm"], ["session", "compact"], ["session", "show"])]
    for p in run_all(ws, *calls):
        clean(p, 2)
        assert "invalid session id" in p.stderr
    assert not rec.exists() and ws.ledger() == []  # nothing dispatched, nothing billed
    assert not (ws.state / "sessions").exists()
    assert set(os.listdir(tmp_path)) <= {"_burnless_home", "_xdg", "ws"}
    assert set(os.listdir(ws.root)) == {".burnless"}


def test_hostile_ids_through_the_python_api(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = tmp_path / "rec"
    setup(ws, rec=rec)
    agent = BurnlessAgent(cwd=ws.root)
    for sid in [*HOSTILE_IDS, "a\x00b", "a\udcff", 7, b"s"]:
        with pytest.raises(UsageError):
            agent.run("write a.txt a", session_id=sid)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            agent.next_prompt(sid)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            agent.compact(sid)  # type: ignore[arg-type]
    monkeypatch.setenv("BURNLESS_SESSION", "../escape")
    with pytest.raises(UsageError):
        agent.run("write a.txt a")
    assert not rec.exists() and ws.ledger() == []
    assert not (ws.state / "sessions").exists()
    assert not (ws.root.parent / "escape").exists() and not (ws.root / "x").exists()


def test_ids_that_differ_only_in_case_are_distinct_sessions(ws: Workspace) -> None:
    setup(ws)
    assert ws.run("run", "write a.txt a", "--session", "Auth").returncode == 0
    assert ws.run("run", "write b.txt b", "--session", "auth").returncode == 0
    if (ws.state / "sessions" / "AUTH").exists():
        pytest.skip("case-insensitive filesystem")
    assert [c["task"] for c in ws.capsules("Auth")] == ["write a.txt a"]
    assert [c["task"] for c in ws.capsules("auth")] == ["write b.txt b"]
    code, js = ws.json("session", "list")
    assert [s["id"] for s in js["sessions"]] == ["Auth", "auth"]


# --------------------------------------------------------------------------- damaged files

def _garbage_middle(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"garbage {{{ not json\n" + b"".join(lines[1:]))


def _wrong_types(path: Path) -> None:
    with open(path, "ab") as f:
        for rec in ({"seq": "9", "epoch": 1, "role": "exec"}, {"seq": 9, "epoch": 1},
                    {"seq": 9, "epoch": 1, "role": "boss"}, {"seq": True, "epoch": 1,
                                                             "role": "exec"},
                    {"seq": 9, "epoch": 1, "role": "exec", "folds": ["x"]},
                    {"seq": 9, "epoch": 1, "role": "exec", "v": None},
                    {"seq": 2**64 - 1, "epoch": 1, "role": "exec"},  # next seq would overflow
                    {"seq": 9, "epoch": 2**63, "role": "exec"}, [1, 2], "str", None):
            f.write(orjson.dumps(rec) + b"\n")


def _huge_line(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(orjson.dumps({"seq": 4, "epoch": 1, "role": "exec", "task": "t" * 300_000,
                              "summary": "S" * 1_000_000, "files": ["f"] * 20_000}) + b"\n")


def _not_utf8(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b'{"seq": 9, "epoch": 1, "role": "exec", "summary": "caf\xe9"}\n')
        f.write(b"\xff\xfe\x00garbage\n")


def _torn(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b'{"v": 1, "seq": 4, "epo')


DAMAGE = {
    "torn-last-line": _torn,
    "garbage-in-the-middle": _garbage_middle,
    "wrong-types": _wrong_types,
    "huge-line": _huge_line,
    "not-utf8": _not_utf8,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_capsule_file_warns_and_keeps_every_good_capsule(
    ws: Workspace, damage: str
) -> None:
    setup(ws, extra="compaction: {keep_recent: 1}\n")
    good = seed(ws)
    path = cap_file(ws)
    DAMAGE[damage](path)
    show, *others = run_all(ws, ["session", "show", "s", "--json"], ["session", "list"],
                            ["session", "prompt", "s"])
    clean(show, 0)
    assert [c["seq"] for c in orjson.loads(show.stdout)["capsule_list"]][:3] == [1, 2, 3]
    for p in others:
        clean(p, 0)
        assert ("warning" in p.stderr) == (damage != "huge-line")  # a huge line is bounded
    assert len(others[1].stdout.encode()) < 20_000  # nor does it blow up every later prompt
    p = ws.run("run", "write d.txt d", "--session", "s")
    clean(p, 0)
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines[: 1] == good[:1] and all(g in lines for g in good)  # never lost or rewritten
    seqs = [c.seq for c in Session(ws.state, "s").capsules()]
    assert seqs[:3] == [1, 2, 3] and seqs[-1] > max(seqs[:-1])  # a fresh seq, not a reused one
    assert BurnlessAgent(cwd=ws.root).compact("s") is not None  # keep_recent 1, in-process
    assert all(g in path.read_bytes().splitlines(keepends=True) for g in good)


def test_empty_capsule_file_is_an_empty_session(ws: Workspace) -> None:
    setup(ws)
    cap_file(ws).parent.mkdir(parents=True)
    cap_file(ws).write_bytes(b"")
    for p in run_all(ws, ["session", "show", "s"], ["session", "prompt", "s"],
                     ["session", "list"], ["session", "compact", "s"]):
        clean(p, 0)
    clean(ws.run("run", "write a.txt a", "--session", "s"), 0)
    assert [c["seq"] for c in ws.capsules("s")] == [1]


def test_capsule_file_replaced_by_a_directory_is_a_clear_error(ws: Workspace) -> None:
    setup(ws)
    seed(ws)
    path = cap_file(ws)
    path.unlink()
    path.mkdir()
    listed, *others = run_all(ws, ["session", "list", "--json"], ["session", "show", "s"],
                              ["session", "prompt", "s"], ["session", "compact", "s"],
                              ["run", "write a.txt a", "--session", "s"])
    for p in others:
        clean(p, 2)
        assert "capsules.jsonl is not a plain file" in p.stderr
    clean(listed, 0)  # the other sessions stay listable; this one is named in a warning
    assert orjson.loads(listed.stdout)["sessions"] == [] and "skipping 's'" in listed.stderr
    assert ws.ledger() == []  # refused before anything was dispatched
    clean(ws.run("session", "rm", "s"), 0)
    assert not path.parent.exists()


def test_symlinked_capsule_file_is_refused_and_the_target_untouched(
    ws: Workspace, tmp_path: Path
) -> None:
    setup(ws)
    seed(ws)
    outside = tmp_path / "precious.txt"
    body = b'{"seq": 1, "epoch": 1, "role": "exec", "task": "secret"}\nlast line, no newline'
    outside.write_bytes(body)
    path = cap_file(ws)
    path.unlink()
    path.symlink_to(outside)
    for p in run_all(ws, ["session", "show", "s"], ["session", "prompt", "s"],
                     ["session", "compact", "s"], ["run", "write a.txt a", "--session", "s"]):
        clean(p, 2)
        assert "symbolic link" in p.stderr
        assert "secret" not in p.stdout
    assert outside.read_bytes() == body  # not appended to, not truncated
    assert ws.ledger() == []
    clean(ws.run("session", "rm", "s"), 0)  # removes the link, not its target
    assert outside.read_bytes() == body and not path.parent.exists()


def test_symlinked_session_directory_is_refused(ws: Workspace, tmp_path: Path) -> None:
    setup(ws)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "capsules.jsonl").write_bytes(b"torn, no newline")
    (ws.state / "sessions").mkdir()
    (ws.state / "sessions" / "s").symlink_to(elsewhere, target_is_directory=True)
    p = ws.run("run", "write a.txt a", "--session", "s")
    clean(p, 2)
    assert "symbolic link" in p.stderr
    assert (elsewhere / "capsules.jsonl").read_bytes() == b"torn, no newline"
    listed = ws.run("session", "list", "--json")
    clean(listed, 0)
    assert orjson.loads(listed.stdout)["sessions"] == [] and "symbolic link" in listed.stderr
    clean(ws.run("session", "rm", "s"), 0)
    assert elsewhere.is_dir() and (elsewhere / "capsules.jsonl").exists()
    assert not (ws.state / "sessions" / "s").exists()


def test_sessions_path_that_is_a_file_is_a_clear_error(ws: Workspace) -> None:
    setup(ws)
    (ws.state / "sessions").write_text("not a directory")
    for args in (["run", "write a.txt a", "--session", "s"], ["session", "prompt", "s"]):
        p = ws.run(*args)
        clean(p, 2)
        assert "Not a directory" in p.stderr
    clean(ws.run("session", "list"), 0)
    assert ws.ledger() == []


def test_session_methods_turn_os_errors_into_burnless_errors(tmp_path: Path) -> None:
    session = Session(tmp_path, "s")
    (tmp_path / "sessions").write_text("a file where the sessions directory should be")
    with pytest.raises(BurnlessError, match="cannot write capsule 1"):
        session.append(Capsule.make(seq=1, epoch=1, role="exec"))
    with pytest.raises(UsageError, match="cannot read .*Not a directory"):
        session.capsules()
    with pytest.raises(UsageError, match="cannot take its lock"), session.lock(1):
        pass
    session.save_meta(SessionMeta("s"))  # warns only: the turn's result is not lost to it
    assert session.meta() == SessionMeta("s")


@pytest.mark.parametrize("name", ["capsules.jsonl", "session.json"])
def test_a_fifo_in_place_of_a_session_file_never_hangs(ws: Workspace, name: str) -> None:
    setup(ws)
    seed(ws)
    path = ws.state / "sessions" / "s" / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    show, prompt = run_all(ws, ["session", "show", "s"], ["session", "prompt", "s"])
    run = ws.run("run", "write a.txt a", "--session", "s", timeout=30)
    for p in (show, prompt, run):
        no_traceback(p)
        assert "not a plain file" in p.stderr
    if name == "capsules.jsonl":
        assert {show.returncode, prompt.returncode, run.returncode} == {2}
        assert ws.ledger() == []
    else:  # only the pins are lost: the session goes on
        assert {show.returncode, prompt.returncode, run.returncode} == {0}
        assert [c["seq"] for c in ws.capsules("s")] == [1, 2, 3, 4]


def test_a_whole_last_record_without_its_newline_is_completed_not_moved_aside(
    ws: Workspace,
) -> None:
    setup(ws)
    good = seed(ws)
    path = cap_file(ws)
    path.write_bytes(b"".join(good)[:-1])  # e.g. an editor that drops the final newline
    clean(ws.run("run", "write d.txt d", "--session", "s"), 0)
    assert [c["seq"] for c in ws.capsules("s")] == [1, 2, 3, 4]
    assert path.read_bytes().startswith(b"".join(good))
    assert not Path(str(path) + ".torn").exists()


def test_damaged_line_with_a_reused_seq_does_not_change_what_was_rendered() -> None:
    a = Capsule.make(seq=1, epoch=1, role="exec", task="a", status="ok", summary="first")
    b = Capsule.make(seq=2, epoch=1, role="exec", task="b", status="ok", summary="second")
    c = Capsule.make(seq=3, epoch=2, role="compact", folds=(1,), keeps=(2,), digest="d")
    before = "".join(render(x) for x in context_of([a, b, c]).capsules)
    dup = Capsule.make(seq=2, epoch=2, role="exec", task="dup", status="ok")
    after = "".join(render(x) for x in context_of([a, b, c, dup]).capsules)
    assert after.startswith(before)


def test_capsule_fields_are_bounded_on_read_and_make_is_idempotent() -> None:
    raw = {"seq": 5, "epoch": 1, "role": "exec", "task": "x" * 10_000,
           "summary": "line one\r\nline two\t\t" + "é" * 10_000, "tier": "t" * 5000,
           "files": [f"f{i}" for i in range(1000)], "notes": ["n" * 500] * 50,
           "status": "ok\r\n", "next": "\u2028" + "n" * 900}
    c = Capsule.from_dict(raw)
    assert len(render(c).encode()) < 4000
    assert len(c.summary) <= MAX_SUMMARY and "\r" not in render(c)
    assert Capsule.from_dict(c.to_dict()) == c
    for bad in ({"seq": -1, "epoch": 1, "role": "exec"}, {"seq": 1, "epoch": False,
                                                          "role": "exec"},
                {"seq": 2**60, "epoch": 1, "role": "exec"}):
        with pytest.raises(ValueError):
            Capsule.from_dict(bad)


# --------------------------------------------------------------------------- byte stability

def _unicode_session(ws: Workspace) -> None:
    (ws.state / "prefix.md").write_text("Règles: ı İ ß 日本語\r\nline two\n", encoding="utf-8")
    seed(ws, n=1)
    session = Session(ws.state, "s")
    session.append(Capsule.make(
        seq=2, epoch=1, role="exec", tier="silver", status="ok", audit="passed",
        task="İstanbul ıi ß 日本語 😀\r\nsecond line", summary="ünïcödé " * 200,
        files=("dir/ß.txt", "x" * 500), next="a\r\nb\rc\u2028d", notes=("n\x00ul",),
        ts="2026-01-01T00:00:00Z"))


def test_the_prompt_is_the_same_bytes_across_processes_locales_and_time_zones(
    ws: Workspace,
) -> None:
    setup(ws)
    _unicode_session(ws)
    envs = [{}, {"LANG": "C", "TZ": "Asia/Kolkata", "PYTHONHASHSEED": "1"},
            {"LANG": "tr_TR.UTF-8", "TZ": "UTC"},
            {"LC_ALL": "tr_TR.UTF-8", "TZ": "America/St_Johns", "PYTHONHASHSEED": "2"}]
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "session", "prompt", "s",
                               "--task", "İ do it"], cwd=ws.root, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for env in envs]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0 and b"Traceback" not in stderr, stderr
        outs.append(stdout.decode("utf-8"))
    assert all(o == outs[0] for o in outs)
    in_process = BurnlessAgent(cwd=ws.root).next_prompt("s", "İ do it").text
    assert in_process == outs[0]
    assert "\r" not in outs[0].split("</project>")[1]  # capsules collapse CR/CRLF


def test_session_prompt_under_a_non_utf8_locale_prints_utf8(ws: Workspace) -> None:
    setup(ws)
    _unicode_session(ws)
    want = BurnlessAgent(cwd=ws.root).next_prompt("s").text
    p = subprocess.run([sys.executable, "-m", "burnless", "session", "prompt", "s"],
                       cwd=ws.root, capture_output=True, timeout=30,
                       env={**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C",
                            "PYTHONIOENCODING": "ascii"})
    assert p.returncode == 0 and p.stdout == want.encode("utf-8")


def test_unicode_crlf_and_long_fields_keep_the_context_growing_only(ws: Workspace) -> None:
    setup(ws)
    _unicode_session(ws)
    agent = BurnlessAgent(cwd=ws.root)
    before = agent.next_prompt("s", "t")
    session = Session(ws.state, "s")
    session.append(Capsule.make(
        seq=3, epoch=1, role="exec", tier="silver", status="partial", audit="failed",
        task="\r\n".join(["long"] * 5000), summary="\ud800 lone surrogate",
        notes=tuple("é" * 300 for _ in range(20)), ts="2026-01-02T00:00:00Z"))
    after = agent.next_prompt("s", "t")
    assert after.stable_prefix == before.stable_prefix
    assert after.context.startswith(before.context) and len(after.context) > len(before.context)
    assert len(after.context.encode()) - len(before.context.encode()) < 4000
    after.text.encode("utf-8")  # a lone surrogate never reaches the prompt


def test_a_task_that_is_not_utf8_is_refused_before_anything_runs(
    ws: Workspace, tmp_path: Path
) -> None:
    rec = tmp_path / "rec"
    setup(ws, rec=rec)
    with pytest.raises(UsageError, match="UTF-8"):  # as the CLI refuses it (exit 2)
        BurnlessAgent(cwd=ws.root).run("write s.txt caf\udce9", session_id="s")
    assert not rec.exists() and ws.ledger() == []


# --------------------------------------------------------------------------- compaction

def test_compaction_edge_cases_through_the_api(ws: Workspace) -> None:
    setup(ws, extra="compaction: {keep_recent: 2}\n")
    agent = BurnlessAgent(cwd=ws.root)
    seed(ws, n=1)
    assert agent.compact("s") is None  # one capsule, fewer than keep_recent
    seed(ws, n=1)
    assert agent.compact("s") is None  # exactly keep_recent
    seed(ws, n=3)
    first = agent.compact("s")
    assert first is not None and first.folds == (1, 2, 3) and first.keeps == (4, 5)
    assert agent.compact("s") is None  # twice in a row: nothing left to fold
    assert [c.seq for c in Session(ws.state, "s").capsules()] == [1, 2, 3, 4, 5, 6]
    setup(ws, extra="compaction: {keep_recent: 1000}\n")
    seed(ws, n=4)
    assert BurnlessAgent(cwd=ws.root).compact("s") is None  # keep_recent > the session
    setup(ws, extra="compaction: {keep_recent: 0}\n")
    second = BurnlessAgent(cwd=ws.root).compact("s")
    assert second is not None and second.keeps == () and second.epoch == 3
    assert set(second.folds) == {4, 5, 6, 7, 8, 9, 10}
    assert BurnlessAgent(cwd=ws.root).compact("s") is None
    p = ws.run("session", "prompt", "s")
    clean(p, 0)
    assert p.stdout.count("<digest ") == 1 and "<capsule " not in p.stdout


def test_compaction_of_a_session_with_only_a_plan_and_cli_twice(ws: Workspace) -> None:
    setup(ws, extra="compaction: {keep_recent: 0}\n")
    Session(ws.state, "s").append(Capsule.make(seq=1, epoch=1, role="plan", plan=("a",)))
    code, js = ws.json("session", "compact", "s")
    assert code == 0 and js["compacted"] is False
    seed(ws, n=2)
    code, js = ws.json("session", "compact", "s")
    assert code == 0 and js["compacted"] is True and js["capsule"]["folds"] == [1, 2, 3]
    code, js = ws.json("session", "compact", "s")
    assert code == 0 and js["compacted"] is False


def test_a_compact_capsule_torn_mid_write_is_redone_cleanly(ws: Workspace) -> None:
    setup(ws, extra="compaction: {keep_recent: 1}\n")
    good = seed(ws, n=4)
    full = Capsule.make(seq=5, epoch=2, role="compact", folds=(1, 2, 3), keeps=(4,), digest="d")
    with open(cap_file(ws), "ab") as f:  # the compactor died in the middle of its line
        f.write(jsonl.dumps(full.to_dict())[:40])
    code, js = ws.json("session", "compact", "s")
    assert code == 0 and js["compacted"] and js["capsule"]["seq"] == 5
    assert js["capsule"]["epoch"] == 2
    lines = cap_file(ws).read_bytes().splitlines(keepends=True)
    assert lines[:4] == good and len(lines) == 5
    clean(ws.run("run", "write z.txt z", "--session", "s"), 0)
    assert [c["seq"] for c in ws.capsules("s")] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("point", ["after-ledger", "after-capsule"])
def test_sigkill_in_a_turn_that_compacted_leaves_a_session_that_continues(
    ws: Workspace, tmp_path: Path, point: str
) -> None:
    gold, silver = tmp_path / "gold", tmp_path / "silver"
    ws.config(f"tiers:\n  gold: {{command: {quoted(fake('honest', '--record', str(gold)))}}}\n"
              f"  silver: {{command: {quoted(fake('honest', '--record', str(silver)))}}}\n"
              "compaction: {max_context_tokens: 1, keep_recent: 1}\n")
    seed(ws, "default", n=3)
    p = ws.run("run", "write a.txt a", env={"BURNLESS_FAULT": point})
    assert p.returncode == -signal.SIGKILL
    caps = ws.capsules()
    assert [c["role"] for c in caps[3:5]] == ["compact", "plan"]  # compaction, then the plan
    assert [r["role"] for r in ws.ledger()] == ["planning", "execution"]
    p = ws.run("run", "write b.txt b")
    clean(p, 0)
    caps = ws.capsules()
    seqs = [c["seq"] for c in caps]
    assert seqs == list(range(1, len(caps) + 1))
    for c in caps:
        if c["role"] == "compact":  # every digest folds and keeps seqs written before it
            assert set(c["folds"]).isdisjoint(c["keeps"])
            assert max(c["folds"] + c["keeps"]) < c["seq"]
    by_epoch: dict[int, list[str]] = {}
    for c in caps:
        by_epoch.setdefault(c["epoch"], []).append(c["role"])
    for epoch, roles in by_epoch.items():
        assert roles.count("plan") <= 1 and (epoch == 1 or roles[0] == "compact")
    if point == "after-ledger":  # the killed turn's capsule is restored under its own seq,
        # then the next turn compacts it away and plans again
        assert [c["role"] for c in caps[3:]] == ["compact", "plan", "exec", "compact", "plan",
                                                 "exec"]
        assert caps[5]["files"] == ["a.txt"] and "restored by a later run" in caps[5]["notes"][-1]
    assert ws.ledger()[-1]["status"] == "ok"


def test_two_session_compacts_at_once_fold_exactly_once(ws: Workspace) -> None:
    setup(ws, extra="compaction: {keep_recent: 1}\n")
    seed(ws, n=5)
    results = []
    for p in run_all(ws, *[["session", "compact", "s", "--json"]] * 3):
        clean(p, 0)
        results.append(orjson.loads(p.stdout)["compacted"])
    assert sorted(results) == [False, False, True]
    caps = ws.capsules("s")
    assert [c["role"] for c in caps].count("compact") == 1
    assert [c["seq"] for c in caps] == [1, 2, 3, 4, 5, 6]


# --------------------------------------------------------------------------- locks, rm, pins

def test_session_rm_while_a_run_holds_the_lock_is_busy_and_loses_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    # The worker holds the session until the test has tried `session rm` (not for a fixed
    # time, which a busy machine can use up before rm even starts).
    hold = (f'touch {shlex.quote(str(started))}; i=0; while [ ! -e {shlex.quote(str(release))} ]'
            ' && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exec "$0" "$@"')
    slow = " ".join(shlex.quote(a) for a in (
        "sh", "-c", hold, sys.executable, str(WORKER), "--mode", "honest"))
    ws.config(f"tiers:\n  silver: {{command: {quoted(slow)}}}\n{PLAIN}")  # lock_timeout 600
    seed(ws, "default", n=2)
    run = subprocess.Popen([sys.executable, "-m", "burnless", "run", "write a.txt a"],
                           cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.02)
        t0 = time.monotonic()
        p = ws.run("session", "rm", "default")
        clean(p, 6)
        assert "busy" in p.stderr and time.monotonic() - t0 < 30  # it does not wait 600 s
        release.touch()
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
    finally:
        release.touch()
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert [c["seq"] for c in ws.capsules()] == [1, 2, 3]
    clean(ws.run("session", "rm", "default"), 0)
    assert not (ws.state / "sessions" / "default").exists()


def test_a_symlinked_lock_file_is_refused(ws: Workspace, tmp_path: Path) -> None:
    setup(ws)
    seed(ws)
    target = tmp_path / "not-a-lock"
    (ws.state / "sessions" / "s" / ".lock").unlink(missing_ok=True)
    (ws.state / "sessions" / "s" / ".lock").symlink_to(target)
    p = ws.run("run", "write a.txt a", "--session", "s")
    clean(p, 2)
    assert "cannot take its lock" in p.stderr and not target.exists()


@pytest.mark.parametrize("damage", [
    b"{not json\xff",
    b'{"pins": {"silver": {"command": 5, "model": [1]}, "gold": "x"}, "executor": 7, '
    b'"created": null}',
    b'{"pins": [], "executor": null}',
])
def test_damaged_pin_file_with_and_without_repin(
    ws: Workspace, tmp_path: Path, damage: bytes
) -> None:
    rec = tmp_path / "rec"
    setup(ws, rec=rec)
    seed(ws)
    meta = ws.state / "sessions" / "s" / "session.json"
    meta.write_bytes(damage)
    p = ws.run("run", "write a.txt a", "--session", "s")
    clean(p, 0)
    assert "warning" in p.stderr
    p = ws.run("run", "write b.txt b", "--session", "s", "--repin")
    clean(p, 0)
    data = orjson.loads(meta.read_bytes())
    assert str(WORKER) in data["pins"]["silver"]["command"] and data["executor"] == "silver"
    assert data["created"] and data["created"] != "None"
    assert [c["seq"] for c in ws.capsules("s")] == [1, 2, 3, 4, 5]


def test_pin_file_replaced_by_a_directory_warns_and_the_run_completes(ws: Workspace) -> None:
    setup(ws)
    seed(ws)
    (ws.state / "sessions" / "s" / "session.json").mkdir()
    code, res = ws.json("run", "write a.txt a", "--session", "s", "--repin")
    assert code == 0 and res["ok"]
    p = ws.run("run", "write b.txt b", "--session", "s")
    clean(p, 0)
    assert "cannot save the session's pins" in p.stderr
    assert [c["seq"] for c in ws.capsules("s")] == [1, 2, 3, 4, 5]
    assert len(ws.ledger()) == 2


def test_meta_with_wrong_types_reads_as_strings_or_nothing(tmp_path: Path) -> None:
    session = Session(tmp_path, "s")
    session.dir.mkdir(parents=True)
    for damage in (b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b""):
        session.meta_path.write_bytes(damage)
        assert session.meta() == SessionMeta("s")
    meta = SessionMeta.from_dict("s", {"pins": {"a": {"command": "x", "model": None},
                                                "b": {"command": ["rm", "-rf"]}, "c": 3},
                                       "created": 5, "executor": {"x": 1}})
    assert set(meta.pins) == {"a"} and meta.created == "" and meta.executor is None


# --------------------------------------------------------------------------- a full disk

FULL_DISK = """
import sys
from pathlib import Path
from burnless.session.capsule import Capsule
from burnless.errors import BurnlessError
from burnless.session.store import Session
s = Session(Path(sys.argv[1]), "s")
c = Capsule.make(seq=4, epoch=1, role="exec", task="t", summary="x" * 300)
try:
    s.append(c)
except BurnlessError as exc:
    print("append:", exc)
meta = s.meta()
meta.executor = "changed"
s.save_meta(meta)  # only warns
print("meta saved or warned")
"""


def test_a_full_disk_is_a_clear_error_and_keeps_the_good_capsules(ws: Workspace) -> None:
    good = seed(ws)
    session = Session(ws.state, "s")
    big_pin = Pin("x" * 4000, "m")  # session.json larger than what the disk has left
    session.save_meta(SessionMeta("s", created="then", pins={"silver": big_pin}))
    meta_before = session.meta_path.read_bytes()
    size = cap_file(ws).stat().st_size
    p = limited(FULL_DISK, size + 20, str(ws.state))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "append: session 's': cannot write capsule 4" in p.stdout
    assert "File too large" in p.stdout and "capsules.jsonl" in p.stdout
    assert "cannot save the session's pins" in p.stderr
    assert cap_file(ws).read_bytes().startswith(b"".join(good))
    assert session.meta_path.read_bytes() == meta_before  # the old file, whole
    assert not [q for q in session.dir.iterdir() if q.name.startswith(".session.json.")]
    # Space again: the torn fragment goes aside and nothing complete is lost.
    seed(ws, n=1)
    assert [c.seq for c in session.capsules()] == [1, 2, 3, 4]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_session_directory_is_a_clear_error(ws: Workspace) -> None:
    setup(ws)
    seed(ws)
    d = ws.state / "sessions" / "s"
    (d / ".lock").unlink(missing_ok=True)
    d.chmod(0o555)
    try:
        p = ws.run("run", "write a.txt a", "--session", "s")
        clean(p, 2)
        assert "cannot take its lock" in p.stderr
    finally:
        d.chmod(0o755)



def test_session_list_skips_a_damaged_session_and_shows_the_rest(ws: Workspace) -> None:
    setup(ws)
    seed(ws, "good", n=2)
    seed(ws, "bad", n=1)
    cap = ws.state / "sessions" / "bad" / "capsules.jsonl"
    cap.unlink()
    cap.symlink_to(ws.root / "elsewhere.jsonl")  # refused: burnless does not follow links
    p = ws.run("session", "list", "--json")
    clean(p, 0)
    assert [s["id"] for s in orjson.loads(p.stdout)["sessions"]] == ["good"]
    assert "'bad'" in p.stderr and "warning" in p.stderr
