"""A failed planner is said plainly (cause, run id, log) and the plan is retried next turn,
without breaking the growing-only prefix (a retried plan opens the next epoch)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Workspace, fake, quoted


def _setup(ws: Workspace, tmp_path: Path) -> tuple[Path, Path, Path]:
    gold, silver, flag = tmp_path / "gold", tmp_path / "silver", tmp_path / "gold-broken"
    flag.touch()
    ws.config(
        "tiers:\n"
        f"  gold: {{command: {quoted(fake('honest', '--record', str(gold), '--fail-while', str(flag)))}}}\n"  # noqa: E501
        f"  silver: {{command: {quoted(fake('honest', '--record', str(silver)))}}}\n")
    return gold, silver, flag


def _prompts(rec: Path) -> list[str]:
    n = len(list(rec.glob("prompt-*.txt")))
    return [(rec / f"prompt-{i}.txt").read_text() for i in range(1, n + 1)]


def _context(prompt: str) -> str:
    return prompt[: prompt.rindex("<task>\n")]


def test_a_failed_planner_names_its_cause_run_and_log(ws: Workspace, tmp_path: Path) -> None:
    _setup(ws, tmp_path)
    p = ws.run("run", "write a.txt one")
    assert p.returncode == 0, p.stderr  # the executor did the work
    planning = [r for r in ws.ledger() if r["role"] == "planning"]
    assert len(planning) == 1 and planning[0]["status"] == "failed"
    run_id = planning[0]["run_id"]
    warning = next(line for line in p.stderr.splitlines() if "planner gold" in line)
    assert warning.startswith("burnless: warning: planner gold failed: exit 1; API Error: 400")
    assert "system: unexpected role" in warning  # the cause line the worker gave
    assert f"run {run_id}, log .burnless/logs/{run_id}.log" in warning
    assert "the next turn plans again" in warning
    assert (ws.root / ".burnless" / "logs" / f"{run_id}.log").is_file()
    assert "API Error: 400" in planning[0]["reason"]  # the ledger says why too
    shown = ws.run("session", "show", "default")
    assert "plan" in shown.stdout and "failed" in shown.stdout and "API Error" in shown.stdout


def test_the_plan_is_retried_until_it_succeeds_and_the_prefix_only_grows(
    ws: Workspace, tmp_path: Path
) -> None:
    gold, silver, flag = _setup(ws, tmp_path)
    assert ws.run("run", "write a.txt one").returncode == 0
    # Still broken: the second turn retries, fails again, executes in the same epoch.
    code, res = ws.json("run", "write b.txt two")
    assert code == 0 and res["plan"] == [] and any("planner gold failed" in w
                                                   for w in res["warnings"])
    assert len(_prompts(gold)) == 2
    s1, s2 = _prompts(silver)
    assert _context(s2).startswith(_context(s1)) and "<plan " not in s2
    flag.unlink()
    # Fixed: the third turn plans; the plan opens epoch 2, which carries turns 1-2 verbatim.
    code, res = ws.json("run", "write c.txt three")
    assert code == 0 and res["plan"] and not res["warnings"]
    code, res = ws.json("run", "write d.txt four")
    assert code == 0 and res["plan"] == []  # planned once: no more planner calls
    assert len(_prompts(gold)) == 3
    caps = ws.capsules()
    assert [(c["role"], c["status"], c["epoch"]) for c in caps] == [
        ("plan", "failed", 1), ("exec", "ok", 1), ("plan", "failed", 1), ("exec", "ok", 1),
        ("plan", "ok", 2), ("exec", "ok", 2), ("exec", "ok", 2)]
    s3, s4 = _prompts(silver)[2:]
    ctx3 = _context(s3)
    assert ctx3.index("<plan ") < ctx3.index('<capsule seq="2"') < ctx3.index('<capsule seq="4"')
    assert "API Error" not in ctx3  # a failed planner's capsule is never rendered
    assert _context(s4).startswith(ctx3)  # epoch 2 only grows
    assert [r["role"] for r in ws.ledger()] == [
        "planning", "execution", "planning", "execution", "planning", "execution",
        "execution"]


def test_no_plan_defers_the_retry_to_the_next_turn(ws: Workspace, tmp_path: Path) -> None:
    """--no-plan after a failure does not plan; the next turn without it does."""
    gold, silver, flag = _setup(ws, tmp_path)
    assert ws.run("run", "write a.txt one").returncode == 0
    assert ws.run("run", "write b.txt two", "--no-plan").returncode == 0
    assert len(_prompts(gold)) == 1
    flag.unlink()
    assert ws.run("run", "write c.txt three").returncode == 0
    assert len(_prompts(gold)) == 2
    assert [c["epoch"] for c in ws.capsules() if c["role"] == "plan"] == [1, 2]


def test_usage_counts_the_failed_planner_calls(ws: Workspace, tmp_path: Path) -> None:
    _setup(ws, tmp_path)
    assert ws.run("run", "write a.txt one").returncode == 0
    p = ws.run("usage", "--format", "json")
    assert p.returncode == 0, p.stderr
    import orjson

    rows = {r["tier"]: r for r in orjson.loads(p.stdout)["rows"]}
    assert rows["gold"]["calls"] == 1 and rows["gold"]["failures"] == 1
    assert rows["silver"]["calls"] == 1 and rows["silver"]["failures"] == 0
    table = ws.run("usage").stdout.splitlines()
    head = table[1].split()
    assert head[:3] == ["tier", "calls", "failed"]
    gold = next(line.split() for line in table if line.startswith("gold"))
    assert gold[1:3] == ["1", "1"]
    csv_head = ws.run("usage", "--format", "csv").stdout.splitlines()[0].split(",")
    assert "failures" in csv_head
