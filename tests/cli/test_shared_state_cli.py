"""Shared state from the command line, on a real redis-server (SPEC 14): what ``run`` imports,
``usage --shared`` across two workspaces ("machines"), and an unreachable server (budgeted runs
refused with the reason, unbudgeted ones recorded here and copied once it is back)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from burnless import state
from tests.conftest import Workspace
from tests.redis_server import RedisServer, free_port
from tests.unit.test_shared_state import workspace


@pytest.fixture(autouse=True)
def _forget_backends() -> Iterator[None]:
    yield
    state.reset()


@pytest.mark.in_process
def test_a_local_backend_imports_neither_the_client_nor_the_seam(ws: Workspace) -> None:
    ws.tiers("budget: {max_cost_per_day: 1}\n", silver="honest")

    def modules(*args: str) -> set[str]:
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", *args],
                           cwd=ws.root, capture_output=True, text=True, timeout=60)
        assert p.returncode in (0, 4), p.stderr
        return {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}

    for args in (["--help"], ["route", "hello"], ["usage"], ["run", "say hi"]):  # run: refused
        found = modules(*args)
        assert "burnless.cli" in found  # the measure works
        assert not {m for m in found if m == "redis" or m.startswith(("redis.",
                                                                        "burnless.state"))}, args


@pytest.mark.in_process
def test_a_redis_backend_imports_the_client_only_where_state_is_used(
        redis_server: RedisServer, tmp_path: Path) -> None:
    ws = workspace(tmp_path / "a", redis_server.url)

    def modules(*args: str) -> set[str]:
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", *args],
                           cwd=ws.root, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}

    assert "redis" not in modules("--help") and "redis" not in modules("route", "hello")
    assert "redis" in modules("run", "say hi")


# --------------------------------------------------------------------------- unreachable


def test_an_unreachable_server_refuses_budgeted_calls_and_keeps_the_copies(
        tmp_path: Path) -> None:
    """Budgeted: exit 4 with the reason and a refused record; unbudgeted: the call runs and is
    recorded here; every copy waits in the outbox and reaches the server once it is back."""
    pytest.importorskip("redis")
    server = RedisServer(tmp_path / "redis")
    server.port = free_port()  # nothing listens there yet
    url = server.url
    budgeted = workspace(tmp_path / "a", url, "budget: {max_cost_per_day: 1}\n",
                         state=", timeout: 0.5")
    p = budgeted.run("run", "say hi")
    assert p.returncode == 4, p.stderr
    assert ("burnless: error: budget.max_cost_per_day cannot be checked: the shared state "
            f"server {url} is unreachable:") in p.stderr
    assert "a shared budget is not enforced by guessing, so nothing was dispatched" in p.stderr
    [refused] = budgeted.ledger()
    assert refused["status"] == "refused" and refused["refused_by"] == "budget"
    free = workspace(tmp_path / "b", url)
    p = free.run("run", "say hi")
    assert p.returncode == 0, p.stderr
    [made] = free.ledger()
    assert made["status"] == "ok"
    for ws in (budgeted, free):
        outbox = (ws.state / "outbox.jsonl").read_bytes()
        kept = [orjson.loads(line) for line in outbox.splitlines()]
        assert [k["record"] for k in kept] == ws.ledger()
    server.start()
    try:
        assert free.run("run", "say hi again").returncode == 0  # reaches it: flushes first
        with server.client() as c:
            copies = [orjson.loads(f[b"r"]) for _, f in c.xrange("burnless:{t}:ledger")]
        assert [r["run_id"] for r in copies] == [r["run_id"] for r in free.ledger()]
        assert (free.state / "outbox.jsonl").read_bytes() == b""
        assert budgeted.run("run", "say hi").returncode == 0
        with server.client() as c:
            copies = [orjson.loads(f[b"r"]) for _, f in c.xrange("burnless:{t}:ledger")]
        assert {r["run_id"] for r in budgeted.ledger()} <= {r["run_id"] for r in copies}
    finally:
        server.stop()


# --------------------------------------------------------------------------- usage --shared


def test_usage_shared_reports_every_machine(redis_server: RedisServer, tmp_path: Path) -> None:
    a = workspace(tmp_path / "laptop-a", redis_server.url)
    b = workspace(tmp_path / "laptop-b", redis_server.url)
    assert a.run("run", "one").returncode == 0
    assert b.run("run", "two").returncode == 0
    code, local = a.json("usage")
    assert code == 0 and local["total"]["calls"] == 1
    code, team = a.json("usage", "--shared")
    assert code == 0 and team["total"]["calls"] == 2
    assert team["total"]["cost_usd"] == pytest.approx(
        sum(r["cost_usd"] for ws in (a, b) for r in ws.ledger()))
    machines = team["shared"]["origins"]
    assert [v["calls"] for v in machines.values()] == [1, 1]
    assert any("/laptop-a-" in o for o in machines) and any("/laptop-b-" in o for o in machines)
    p = a.run("usage", "--shared", "--by", "session")
    assert p.returncode == 0 and "shared: 2 machine(s) on " in p.stdout


def test_usage_shared_needs_a_shared_backend_and_says_when_it_is_down(ws: Workspace,
                                                                      tmp_path: Path) -> None:
    ws.tiers(silver="honest")
    p = ws.run("usage", "--shared")
    assert p.returncode == 2 and "keeps its state local; set state.backend" in p.stderr
    pytest.importorskip("redis")
    down = workspace(tmp_path / "down", f"redis://127.0.0.1:{free_port()}/0")
    p = down.run("usage", "--shared")
    assert p.returncode == 1 and "is unreachable" in p.stderr
    assert "burnless usage without --shared" in p.stderr


def test_without_the_redis_client_a_redis_backend_says_how_to_install_it(
        tmp_path: Path) -> None:
    blocked = tmp_path / "no-redis"
    (blocked / "redis").mkdir(parents=True)
    (blocked / "redis" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'redis'\")\n")
    ws = workspace(tmp_path / "a", "redis://:hunter2@127.0.0.1:1/0",
                   "budget: {max_cost_per_day: 1}\n")
    env = {"PYTHONPATH": str(blocked)}
    p = ws.run("run", "say hi", env=env)
    assert p.returncode == 2, p.stderr
    assert ("state.backend is a Redis server (redis://***@127.0.0.1:1/0), but the redis client "
            "cannot be imported") in p.stderr and "pip install 'burnless[redis]'" in p.stderr
    assert "Traceback" not in p.stderr and "hunter2" not in p.stderr
    assert ws.ledger() == []  # nothing dispatched
    assert ws.run("route", "say hi", env=env).returncode == 0  # routing needs no server


def test_doctor_checks_the_shared_state_server(redis_server: RedisServer, tmp_path: Path) -> None:
    up = workspace(tmp_path / "up", redis_server.url)
    code, report = up.json("doctor")
    [check] = [c for c in report["checks"] if c["name"] == "shared state"]
    assert check["status"] == "ok" and redis_server.url in check["detail"]
    down = workspace(tmp_path / "down", f"redis://127.0.0.1:{free_port()}/0")
    code, report = down.json("doctor")
    [check] = [c for c in report["checks"] if c["name"] == "shared state"]
    assert code == 1 and check["status"] == "fail" and "is unreachable" in check["detail"]


def test_keys_list_shows_the_teams_spend_of_each_key(redis_server: RedisServer,
                                                      tmp_path: Path) -> None:
    """With a shared backend, `burnless keys list` shows what the key's limits are checked
    against: the team's spend on the server (it showed this workspace's ledger only)."""
    from burnless.accounting import ledger
    from burnless.accounting.budget import Guard, KeyLimits
    from burnless.config import load_config
    from tests.unit.test_shared_state import record

    a = workspace(tmp_path / "a", redis_server.url)
    b = workspace(tmp_path / "b", redis_server.url)
    p = a.run("keys", "create", "alice", "--budget", "1")
    assert p.returncode == 0, p.stderr
    guard = Guard(load_config(cwd=b.root))  # another machine's gateway spends on the key
    res = guard.reserve(session="s", tier=guard.cfg.tiers["silver"], prompt_tokens=0,
                        task_spent=0.0, key=KeyLimits("alice", max_cost_per_day=1.0))
    ledger.record_call(guard.state_dir, record("s", 0.25, key="alice"),
                       guard.settling(res, 0.25))
    state.reset()
    code, rep = a.json("keys", "list")
    assert code == 0, rep
    [alice] = rep["keys"]
    assert alice["spent_today_usd"] == 0.25 and alice["spent_month_usd"] == 0.25
    assert not (a.state / "ledger.jsonl").exists()  # not from this workspace's ledger
