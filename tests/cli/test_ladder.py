"""The cascade: climb the ladder cheapest first; each attempt a capsule and a record."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Workspace, fake, quoted


def ladder(ws: Workspace, tmp_path: Path, **modes: str) -> dict[str, Path]:
    recs = {name: tmp_path / name for name in modes}
    lines = ["tiers:"]
    for name, mode in modes.items():
        cmd = quoted(fake(mode, "--record", str(recs[name])))
        lines.append(f"  {name}: {{command: {cmd}}}")
    lines.append("planner: null")
    lines.append(f"routing: {{ladder: [{', '.join(modes)}]}}")
    ws.config("\n".join(lines) + "\n")
    return recs


def test_stops_at_the_first_rung_that_succeeds(ws: Workspace, tmp_path: Path) -> None:
    recs = ladder(ws, tmp_path, bronze="honest", silver="honest", gold="honest")
    code, res = ws.json("run", "write a.txt a", "--cascade")
    assert code == 0 and res["tier"] == "bronze"
    assert not recs["silver"].exists() and not recs["gold"].exists()
    assert len(ws.ledger()) == 1


def test_escalate_climbs_and_upper_rung_sees_the_failed_attempt(
    ws: Workspace, tmp_path: Path
) -> None:
    recs = ladder(ws, tmp_path, bronze="escalate", silver="honest", gold="honest")
    code, res = ws.json("run", "write a.txt a", "--cascade")
    assert code == 0 and res["tier"] == "silver"
    assert any("bronze: escalate" in s for s in res["route"]["skipped"])
    silver_prompt = (recs["silver"] / "prompt-1.txt").read_text()
    assert '<capsule seq="1" role="exec" tier="bronze" status="escalate"' in silver_prompt
    records = ws.ledger()
    assert [(r["tier"], r["status"]) for r in records] == [("bronze", "escalate"), ("silver", "ok")]
    assert [c["tier"] for c in ws.capsules()] == ["bronze", "silver"]
    assert not recs["gold"].exists()


def test_failure_and_audit_failure_climb(ws: Workspace, tmp_path: Path) -> None:
    ladder(ws, tmp_path, bronze="crasher", silver="liar", gold="honest")
    code, res = ws.json("run", "write a.txt a", "--cascade")
    assert code == 0 and res["tier"] == "gold"
    records = ws.ledger()
    assert [(r["tier"], r["status"], r["audit"]) for r in records] == [
        ("bronze", "failed", "skipped"), ("silver", "ok", "failed"), ("gold", "ok", "passed")]
    assert (ws.root / "a.txt").read_text() == "a"


def test_every_rung_failing_gives_the_last_outcome(ws: Workspace, tmp_path: Path) -> None:
    ladder(ws, tmp_path, bronze="escalate", silver="escalate")
    code, res = ws.json("run", "hard", "--cascade")
    assert code == 1 and res["status"] == "escalate" and res["tier"] == "silver"
    assert len(res["calls"]) == 2


def test_rule_with_cascade_true(ws: Workspace, tmp_path: Path) -> None:
    recs = {n: tmp_path / n for n in ("checks", "bronze")}
    checks = quoted(fake("escalate", "--record", str(recs["checks"])))
    bronze = quoted(fake("honest", "--record", str(recs["bronze"])))
    ws.config(
        "tiers:\n"
        f"  checks: {{command: {checks}, local: true, price: 0}}\n"
        f"  bronze: {{command: {bronze}}}\n"
        "planner: null\n"
        "routing:\n  ladder: [bronze]\n"
        "  rules: [{keywords: [audit], tier: checks, cascade: true}]\n"
    )
    code, res = ws.json("run", "audit page.html")
    assert code == 0 and res["tier"] == "bronze"
    first = ws.ledger()[0]
    assert first["tier"] == "checks" and first["cost_usd"] == 0.0
