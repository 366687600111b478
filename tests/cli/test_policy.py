"""Policy: sensitive work stays local (planner, compactor, cascade and breaker included), secrets
never leave in clear, nesting is bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Workspace, fake, quoted

SECRET = "sk-ant-api03-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2rS5uX8" + "-abcdEFGH"


def tiers(ws: Workspace, tmp_path: Path, *, local: str | None = None, extra: str = "",
          silver: str = "honest") -> dict[str, Path]:
    recs = {"silver": tmp_path / "silver", "local": tmp_path / "local"}
    lines = ["tiers:",
             f"  silver: {{command: {quoted(fake(silver, '--record', str(recs['silver'])))}}}"]
    if local:
        cmd = quoted(fake(local, "--record", str(recs["local"])))
        lines.append(f"  mine: {{command: {cmd}, local: true}}")
    ws.config("\n".join(lines) + "\nplanner: null\n" + extra)
    return recs


def test_sensitive_work_without_a_local_tier_is_refused_and_nothing_is_sent(
    ws: Workspace, tmp_path: Path
) -> None:
    recs = tiers(ws, tmp_path)
    p = ws.run("run", "write a.txt a", "--label", "sensitive")
    assert p.returncode == 5 and "local" in p.stderr
    assert not recs["silver"].exists()
    (rec,) = ws.ledger()
    assert rec["status"] == "refused" and rec["refused_by"] == "policy"
    assert ws.capsules() == []


def test_sensitive_work_goes_to_the_local_tier(ws: Workspace, tmp_path: Path) -> None:
    recs = tiers(ws, tmp_path, local="honest",
                 extra="policy: {sensitive_paths: ['secrets/**']}\n")
    code, res = ws.json("run", "write secrets/prod.env KEY=1")
    assert code == 0 and res["tier"] == "mine"
    assert not recs["silver"].exists() and (recs["local"] / "prompt-1.txt").exists()
    assert "policy" in " ".join(res["route"]["reasons"])


def test_a_secret_is_masked_everywhere_and_stable(ws: Workspace, tmp_path: Path) -> None:
    recs = tiers(ws, tmp_path, silver="echo")
    for _ in range(2):
        p = ws.run("run", f"deploy with key {SECRET} now")
        assert p.returncode == 0, p.stderr
    prompts = [(recs["silver"] / f"prompt-{i}.txt").read_text() for i in (1, 2)]
    masks = []
    for text in prompts:
        assert SECRET not in text
        start = text.index("[REDACTED:anthropic:")
        masks.append(text[start:text.index("]", start) + 1])
    assert masks[0] == masks[1]
    everything = b"".join(p.read_bytes() for p in ws.state.rglob("*") if p.is_file())
    assert SECRET.encode() not in everything
    assert ws.ledger()[0]["redactions"] == 1


def test_local_tier_sees_the_secret_but_logs_and_capsules_do_not(
    ws: Workspace, tmp_path: Path
) -> None:
    recs = tiers(ws, tmp_path, local="echo")
    p = ws.run("run", f"use {SECRET} here", "--tier", "mine")
    assert p.returncode == 0
    assert SECRET in (recs["local"] / "prompt-1.txt").read_text()
    everything = b"".join(p.read_bytes() for p in ws.state.rglob("*") if p.is_file())
    assert SECRET.encode() not in everything  # log, capsule, ledger: masked


def test_secret_with_redaction_off_makes_work_sensitive(ws: Workspace, tmp_path: Path) -> None:
    recs = tiers(ws, tmp_path, extra="policy: {redact_secrets: false}\n")
    p = ws.run("run", f"use {SECRET}")
    assert p.returncode == 5 and not recs["silver"].exists()


def test_nesting_beyond_max_depth_is_refused(ws: Workspace, tmp_path: Path) -> None:
    recs = tiers(ws, tmp_path)
    p = ws.run("run", "write a.txt a", env={"BURNLESS_DEPTH": "3"})
    assert p.returncode == 5 and "max_depth" in p.stderr
    assert not recs["silver"].exists()
    assert ws.ledger()[0]["status"] == "refused"


def test_nested_run_on_the_same_session_is_refused_at_once(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "silver"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('nested', '--record', str(rec)))}}}\n"
              "planner: null\nsession: {lock_timeout: 30}\n")
    p = ws.run("run", "nest default inner task", timeout=40)
    assert p.returncode == 0
    code, err = (rec / "nested-exit").read_text().split("\n", 1)
    assert code == "6" and "running the turn that called this one" in err


def test_nested_run_on_another_session_works_and_max_depth_0_forbids(
    ws: Workspace, tmp_path: Path
) -> None:
    rec = tmp_path / "silver"
    tiers = (f"tiers:\n  silver: {{command: {quoted(fake('nested', '--record', str(rec)))}}}\n"
             f"  inner: {{command: {quoted(fake('honest'))}}}\n"
             "planner: null\nexecutor: silver\n"
             "routing: {rules: [{keywords: [innerwork], tier: inner}]}\n")
    ws.config(tiers)
    assert ws.run("run", "nest other innerwork write n.txt n", "--tier", "silver").returncode == 0
    assert (rec / "nested-exit").read_text().startswith("0")
    ws.config(tiers + "policy: {max_depth: 0}\n")
    assert ws.run("run", "nest third innerwork write m.txt m", "--tier", "silver").returncode == 0
    assert (rec / "nested-exit").read_text().startswith("5")


# -- sensitive routing ---------------------------------------------------------------------------

SENSITIVE_CONFIG = """\
planner: gold
executor: silver
routing: {{ladder: [bronze, silver, gold], breaker: {{failures: 5, cooldown: 600}}}}
compaction: {{max_context_tokens: 40, keep_recent: 1, tier: gold}}
policy: {{sensitive_patterns: ['(?i)payroll'], sensitive_paths: ['secrets/**', '*.pem']}}
"""


def _non_local_tiers(ws: Workspace, tmp_path: Path) -> dict[str, Path]:
    recs = {name: tmp_path / name for name in ("bronze", "silver", "gold")}
    lines = ["tiers:"] + [f"  {n}: {{command: {quoted(fake('honest', '--record', str(d)))}}}"
                          for n, d in recs.items()]
    ws.config("\n".join(lines) + "\n" + SENSITIVE_CONFIG.format())
    return recs


def _seed_session(ws: Workspace) -> None:
    """Three capsules over max_context_tokens: a compaction by gold is due on the next turn."""
    capsules = ws.state / "sessions" / "default" / "capsules.jsonl"
    capsules.parent.mkdir(parents=True)
    capsules.write_text("".join(json.dumps(
        {"v": 1, "seq": i, "epoch": 1, "role": "exec", "tier": "silver", "task": f"task {i}",
         "status": "ok", "audit": "passed", "summary": "s" * 200, "files": [], "next": "",
         "run_id": "", "ts": ""}) + "\n" for i in (1, 2, 3)))


@pytest.mark.parametrize(
    "args",
    [
        ["run", "fix the payroll export"],
        ["run", "rotate **secrets/prod.env**", "--cascade"],
        ["run", "scp host:secrets/prod.env .", "--no-plan"],
        ["run", "read keys/server.pem:12 and explain", "--tier", "gold"],
        ["run", "write a.txt x", "--label", "urgent,sensitive", "--cascade"],
        ["run", "open file:///srv/app/secrets/db.env", "--dry-run"],
        ["session", "prompt", "default", "--task", "list secrets/ files"],
    ],
    ids=["pattern+planner+compaction", "markdown-path+cascade", "scp-path", "path-line+tier",
         "label-list+cascade", "file-url+dry-run", "session-prompt"],
)
def test_sensitive_work_with_only_non_local_tiers_is_refused_and_nothing_starts(
    ws: Workspace, tmp_path: Path, args: list[str]
) -> None:
    recs = _non_local_tiers(ws, tmp_path)
    _seed_session(ws)
    p = ws.run(*args)
    assert p.returncode == 5, (p.stdout, p.stderr)
    assert "local" in p.stderr and "nothing was sent" in p.stderr
    assert [name for name, d in recs.items() if d.exists()] == []
    assert len(ws.capsules()) == 3  # no compaction capsule either


def test_sensitive_turn_on_a_local_tier_keeps_planner_and_compactor_out(
    ws: Workspace, tmp_path: Path
) -> None:
    recs = _non_local_tiers(ws, tmp_path)
    mine = tmp_path / "mine"
    ws.config((ws.state / "config.yaml").read_text().replace(
        "planner: gold", f"  mine: {{command: {quoted(fake('honest', '--record', str(mine)))}, "
        "local: true}\nplanner: gold"))
    _seed_session(ws)
    p = ws.run("run", "write payroll.txt salaries", "--cascade")
    assert p.returncode == 0, p.stderr
    assert "planner skipped" in p.stderr
    assert "payroll" in (mine / "prompt-1.txt").read_text()
    assert [name for name in ("bronze", "silver") if recs[name].exists()] == []
    # gold summarised the older, non-sensitive capsules; the sensitive task never reached it
    gold = sorted(recs["gold"].glob("prompt-*.txt"))
    assert len(gold) == 1 and 'role="compactor"' in gold[0].read_text()
    assert "payroll" not in gold[0].read_text()


def test_open_breaker_never_sends_sensitive_work_to_a_non_local_rung(
    ws: Workspace, tmp_path: Path
) -> None:
    silver = tmp_path / "silver"
    ws.config(f"tiers:\n  mine: {{command: {quoted(fake('crasher'))}, local: true}}\n"
              f"  silver: {{command: {quoted(fake('honest', '--record', str(silver)))}}}\n"
              "planner: null\nexecutor: mine\n"
              "routing: {ladder: [mine, silver], breaker: {failures: 1, cooldown: 600}}\n"
              "policy: {sensitive_patterns: ['(?i)payroll']}\n")
    assert ws.run("run", "warm up").returncode == 1  # mine fails: its breaker opens
    p = ws.run("run", "fix the payroll export")
    assert p.returncode == 5 and not silver.exists()


def test_capsule_of_sensitive_work_never_reaches_a_non_local_tier(
    ws: Workspace, tmp_path: Path
) -> None:
    silver = tmp_path / "silver"
    ws.config(f"tiers:\n  mine: {{command: {quoted(fake('honest'))}, local: true}}\n"
              f"  silver: {{command: {quoted(fake('honest', '--record', str(silver)))}}}\n"
              "planner: null\nexecutor: silver\n"
              "policy: {sensitive_patterns: ['(?i)payroll']}\n")
    assert ws.run("run", "write p.txt payroll alice 123").returncode == 0
    # The session now holds sensitive work: every later turn of it stays local.
    code, res = ws.json("run", "write b.txt hello")
    assert code == 0 and res["tier"] == "mine", res
    assert any("session holds sensitive work" in r for r in res["route"]["reasons"])
    assert not silver.exists()
    code, res = ws.json("route", "write c.txt hello")  # `route` says the same
    assert res["tier"] == "mine", res
    # A compaction by a non-local tier never sees those capsules either: the digest inherits
    # the flag, so the session stays local after it (and the compactor is skipped).
    # Another session may use silver.
    code, res = ws.json("run", "write d.txt hello", "--session", "other")
    assert code == 0 and res["tier"] == "silver"
    assert "payroll" not in (silver / "prompt-1.txt").read_text()
