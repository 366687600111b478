"""The user's budget ($BURNLESS_HOME/config.yaml) across projects: shared, never loosened."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from burnless.accounting.index import spend_for
from burnless.config import load_config
from burnless.settings import BudgetSettings, Config
from tests.conftest import Workspace, fake, tier_line

PRICE = "price: {input: 1000, output: 1000}, max_output_tokens: 1000"


@pytest.fixture
def home() -> Path:
    path = Path(os.environ["BURNLESS_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_config(home: Path, text: str) -> None:
    (home / "config.yaml").write_text(text, encoding="utf-8")


def ledger_of(state: Path) -> list[dict[str, Any]]:
    path = state / "ledger.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def reservations(state: Path) -> dict[str, Any]:
    path = state / "reservations.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}


# --------------------------------------------------------------------------- the merge


def test_a_project_null_cannot_cancel_a_user_limit(ws: Workspace, home: Path) -> None:
    user_config(home, "budget: {max_cost_per_day: 5, max_calls_per_session: 40}\n")
    ws.config("tiers:\n  silver: {command: x}\n"
              "budget: {max_cost_per_day: null, max_calls_per_session: null}\n")
    cfg = load_config(cwd=ws.root)
    assert cfg.budget.max_cost_per_day == 5 and cfg.budget.max_calls_per_session == 40
    assert cfg.user_budget.max_cost_per_day == 5 and cfg.user_dir == home
    ws.config("tiers:\n  silver: {command: x}\n")  # silent: the same
    assert load_config(cwd=ws.root).budget.max_cost_per_day == 5


def test_a_project_value_above_the_users_is_clamped_with_a_warning(
    ws: Workspace, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user_config(home, "budget: {max_cost_per_day: 5, max_cost_per_task: 1}\n")
    ws.tiers("budget: {max_cost_per_day: 8, max_cost_per_task: 0.25}\n", silver="honest")
    with caplog.at_level("WARNING", logger="burnless"):
        cfg = load_config(cwd=ws.root)
    assert cfg.budget.max_cost_per_day == 5  # clamped
    assert cfg.budget.max_cost_per_task == 0.25  # tightened: the project's own
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "budget.max_cost_per_day = 8 is above the user limit 5" in warning
    assert str(home / "config.yaml") in warning
    # The CLI says it on every command that loads the config, the cached one included.
    for _ in range(2):
        p = ws.run("route", "anything")
        assert p.returncode == 0, p.stderr
        assert "warning:" in p.stderr and "above the user limit 5" in p.stderr


def test_no_user_limit_no_user_scope(ws: Workspace, home: Path) -> None:
    user_config(home, "routing: {pin: false}\n")
    ws.config("tiers:\n" + tier_line("silver", fake("honest"), PRICE)
              + "budget: {max_cost_per_day: 8}\n")
    cfg = load_config(cwd=ws.root)
    assert cfg.user_dir is None and cfg.budget.max_cost_per_day == 8
    assert ws.run("run", "write a.txt x").returncode == 0
    assert not (home / "ledger.jsonl").exists()


def test_a_bad_user_limit_is_named_in_the_user_file(ws: Workspace, home: Path) -> None:
    user_config(home, "budget:\n  max_cost_per_day: -1\n")
    ws.tiers("budget: {max_cost_per_day: 3}\n", silver="honest")
    p = ws.run("route", "x")
    assert p.returncode == 2
    assert f"{home / 'config.yaml'}:2: budget.max_cost_per_day: must be >= 0" in p.stderr


# --------------------------------------------------------------------------- the shared day


def test_two_projects_share_the_users_daily_limit(tmp_path: Path, home: Path) -> None:
    """Parallel runs in two projects under one home: exactly what fits under the user's
    limit is dispatched, whichever project it comes from, and every record of both is in the
    user's ledger."""
    # Output is free, so a call costs exactly what it reserves (its prompt, estimated the same
    # way both times): how many fit does not depend on which runs overlap.
    price = "price: {input: 1000, output: 0}, max_output_tokens: 1000"
    calib = Workspace(tmp_path / "calib")
    calib.config("tiers:\n" + tier_line("silver", fake("honest"), price))
    assert calib.run("run", "write p0.txt x", "--session", "a0").returncode == 0
    cost = calib.ledger()[0]["cost_usd"]
    limit = round(2.5 * cost, 6)  # two calls fit, a third does not
    user_config(home, f"budget: {{max_cost_per_day: {limit}}}\n")
    projects = [Workspace(tmp_path / name) for name in ("one", "two")]
    for i, ws in enumerate(projects):
        # The second project even says null: it cannot lift the user's limit.
        ws.config("tiers:\n" + tier_line("silver", fake("slow"), price)
                  + ("budget: {max_cost_per_day: null}\n" if i else ""))
    procs = [subprocess.Popen([sys.executable, "-m", "burnless", "run", f"write p{i}.txt x",
                               "--session", f"{'ab'[n]}{i}"], cwd=ws.root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, ws in enumerate(projects) for i in range(3)]
    outcomes = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        outcomes.append((p.returncode, err))
    assert sorted(c for c, _ in outcomes) == [0, 0, 4, 4, 4, 4], outcomes
    for code, err in outcomes:
        if code == 4:
            assert "across every project" in err and str(home / "config.yaml") in err
    records = [r for ws in projects for r in ledger_of(ws.state)]
    settled = [r for r in records if r["status"] != "refused"]
    assert len(settled) == 2 and sum(r["cost_usd"] for r in settled) <= limit
    assert all(r["cost_usd"] == pytest.approx(cost) for r in settled)
    # The user's ledger holds a copy of every record, with the project it came from.
    copies = ledger_of(home)
    assert sorted(r["run_id"] for r in copies) == sorted(r["run_id"] for r in records)
    assert {r["workspace"] for r in copies} == {str(ws.root) for ws in projects}
    day = settled[0]["ts"][:10]
    assert spend_for(home, session="", day=day).day_cost == pytest.approx(
        sum(r["cost_usd"] for r in settled))
    assert all(reservations(s) == {} for s in (home, *(ws.state for ws in projects)))


def test_a_project_with_its_own_lower_limit_stops_first(tmp_path: Path, home: Path) -> None:
    calib = Workspace(tmp_path / "calib")
    calib.config("tiers:\n" + tier_line("silver", fake("honest"), PRICE))
    assert calib.run("run", "write p0.txt x", "--session", "a0").returncode == 0
    worst = (calib.ledger()[0]["tokens"]["input"] + 1000) * 1000 / 1e6
    user_config(home, f"budget: {{max_cost_per_day: {round(10 * worst, 4)}}}\n")
    ws = Workspace(tmp_path / "tight")
    ws.config("tiers:\n" + tier_line("silver", fake("honest"), PRICE)
              + f"budget: {{max_cost_per_day: {round(1.2 * worst, 4)}}}\n")
    assert ws.run("run", "write a.txt x", "--session", "a0").returncode == 0
    p = ws.run("run", "write b.txt x", "--session", "a1")
    assert p.returncode == 4 and "across every project" not in p.stderr, p.stderr
    assert len(ledger_of(home)) == 2  # the call and the refusal, copied


# --------------------------------------------------------------------------- init


def _leaves(d: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and k != "tiers":
            out += _leaves(v, (*path, k))
        else:
            out.append(((*path, k), v))
    return out


def _default(path: tuple[str, ...]) -> Any:
    obj: Any = Config()
    for name in path:
        obj = getattr(obj, name)
    return obj


def test_the_example_sets_no_key_only_to_its_default() -> None:
    """Every key `burnless init` writes has an effect of its own: none merely restates a
    default (which would override the user's value for that key in every new project)."""
    from importlib.resources import files

    example = yaml.safe_load((files("burnless") / "example" / "config.yaml").read_text())
    restated = []
    for path, value in _leaves(example):
        if path in (("tiers",), ("version",)):
            continue  # the tiers are the point; the version is the file's format
        default = _default(path)
        as_tuple = tuple(value) if isinstance(value, list) else value
        if as_tuple == default or (dataclasses.is_dataclass(default) and not value):
            restated.append(".".join(path))
    assert restated == []
    assert "budget" not in example  # no limit, and no null that reads as if it lifted one


def test_init_leaves_the_users_defaults_in_force(tmp_path: Path, home: Path) -> None:
    user_config(home, "planner: null\nrouting: {pin: false, breaker: {failures: 9}}\n"
                      "session: {lock_timeout: 30}\ncompaction: {keep_recent: 2}\n"
                      "budget: {max_cost_per_day: 7}\naudit: {strict: true}\n"
                      "policy: {max_depth: 1, redact_secrets: true}\nmetrics: {port: 5001}\n")
    root = tmp_path / "fresh"
    root.mkdir()
    p = subprocess.run([sys.executable, "-m", "burnless", "init"], cwd=root,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cfg = load_config(cwd=root)
    assert cfg.planner is None and cfg.routing.pin is False
    assert cfg.routing.breaker.failures == 9 and cfg.session.lock_timeout == 30
    assert cfg.compaction.keep_recent == 2 and cfg.audit.strict is True
    assert cfg.policy.max_depth == 1 and cfg.metrics.port == 5001
    assert cfg.budget == BudgetSettings(max_cost_per_day=7)
