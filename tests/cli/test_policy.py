"""Policy: sensitive work stays local, secrets never leave in clear, nesting is bounded."""

from __future__ import annotations

from pathlib import Path

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
