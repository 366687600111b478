"""Sessions: planner/executor split, growing-only context, compaction, pinning, crashes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import Workspace, fake, quoted


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
