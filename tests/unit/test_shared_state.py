"""Shared state on a real redis-server (SPEC 14): budgets reserved and settled atomically on the
server across threads, processes and workspaces ("machines"), reservations that expire when
their process dies, an unreachable server (budgeted calls refused, copies kept and sent later),
and the breaker, pins and response cache seen from another workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless import state
from burnless.accounting import ledger
from burnless.accounting.budget import Guard
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from burnless.config import load_config
from burnless.errors import BudgetExceeded, ConfigError
from burnless.settings import Config
from tests.conftest import Workspace, concurrently, fake
from tests.redis_server import RedisServer, free_port

HAIKU_OUT = 5.0 / 1e6  # USD per output token (claude-haiku-4-5)
CALL = 1000 * HAIKU_OUT  # the worst case of one call: no prompt, 1000 output tokens = $0.005


@pytest.fixture(autouse=True)
def _forget_backends() -> Iterator[None]:
    yield
    state.reset()


def workspace(root: Path, url: str, extra: str = "", ns: str = "t", state: str = ""
              ) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(root).config(
        "tiers:\n"
        "  silver: {api: anthropic, model: claude-haiku-4-5, max_output_tokens: 1000}\n"
        f"  worker: {{command: {orjson.dumps(fake('honest')).decode()}, "
        "model: claude-haiku-4-5}\n"
        "executor: worker\n"
        f"state: {{backend: '{url}', namespace: {ns}{state}}}\n" + extra)


def cfg_of(ws: Workspace) -> Config:
    return load_config(cwd=ws.root)


def record(session: str, cost: float, **kw: Any) -> LedgerRecord:
    return LedgerRecord(run_id=f"r-{os.urandom(6).hex()}", session=session, role="execution",
                        tier="silver", model="claude-haiku-4-5", status="ok",
                        tokens=Tokens(output=100), cost_usd=cost, cost_source="reported", **kw)


def reserve(guard: Guard, session: str = "s1", tree: str = "") -> Any:
    tier = guard.cfg.tiers["silver"]
    return guard.reserve(session=session, tier=tier, prompt_tokens=0, task_spent=0.0, tree=tree)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(("section", "needle"), [
    ("state: {backend: 'http://x:6379'}", "state.backend: must be 'local' or a Redis URL"),
    ("state: {backend: 'redis://:hunter2@x:6379/0x'}", "redis://***@x:6379/0x"),
    ("state: {backend: 'redis://x:port/0'}", "not 'redis://x:port/0'"),
    ("state: {namespace: 'a b'}", "state.namespace: 'a b' is not a namespace"),
    ("state: {retention_days: 0}", "state.retention_days: must be > 0"),
    ("state: {timeout: -1}", "state.timeout: must be > 0"),
    ("budget: {reservation_ttl: 0}", "budget.reservation_ttl: must be > 0 seconds"),
    ("state: {backnd: local}", "did you mean 'backend'"),
])
def test_bad_state_settings_are_config_errors(ws: Workspace, section: str, needle: str) -> None:
    ws.tiers(section + "\n", silver="honest")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=ws.root)
    assert needle in str(exc.value) and "hunter2" not in str(exc.value)


def test_good_state_settings(ws: Workspace) -> None:
    for backend in ("local", "redis://cache.internal:6379/0", "rediss://u:p@h", "unix:///r.sock"):
        ws.tiers(f"state: {{backend: '{backend}', namespace: acme.team-1}}\n", silver="honest")
        assert load_config(cwd=ws.root).state.backend == backend


# --------------------------------------------------------------------------- budgets


def test_one_shared_daily_limit_across_threads_processes_and_workspaces(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """Ten calls fit in the limit; 4 processes and 8 threads on two workspaces try 60: exactly
    ten are granted, and the server holds them."""
    extra = f"budget: {{max_cost_per_day: {10 * CALL}, reservation_ttl: 30}}\n"
    a = workspace(tmp_path / "a", redis_server.url, extra)
    b = workspace(tmp_path / "b", redis_server.url, extra)
    script = tmp_path / "reserve.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\n"
        "from burnless.config import load_config\n"
        "from burnless.accounting.budget import Guard\n"
        "from burnless.errors import BudgetExceeded\n"
        "g = Guard(load_config(cwd=Path(sys.argv[1])))\n"
        "t = g.cfg.tiers['silver']\n"
        "sys.stdin.readline()  # start together\n"
        "n = 0\n"
        "for _ in range(6):\n"
        "    try:\n"
        "        g.reserve(session='s-' + sys.argv[2], tier=t, prompt_tokens=0, task_spent=0)\n"
        "        n += 1\n"
        "    except BudgetExceeded:\n"
        "        pass\n"
        "print(n, flush=True)\n"
        "sys.stdin.readline()  # hold the reservations until told\n")
    procs = [subprocess.Popen([sys.executable, str(script), str(ws.root), str(i)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i, ws in enumerate((a, b, a, b))]
    granted: list[int] = []
    guards = [Guard(cfg_of(ws)) for ws in (a, b)]
    start = threading.Barrier(9)

    def thread(i: int) -> None:
        start.wait()
        n = 0
        for _ in range(4):
            try:
                reserve(guards[i % 2], session=f"t-{i}")
                n += 1
            except BudgetExceeded:
                pass
        granted.append(n)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    start.wait()
    for t in threads:
        t.join()
    for p in procs:
        assert p.stdout is not None
        granted.append(int(p.stdout.readline()))
    assert sum(granted) == 10, granted
    with redis_server.client() as c:
        assert c.zcard("burnless:{t}:open") == 10
    for p in procs:
        p.communicate("done\n", timeout=30)


def test_settled_spend_is_counted_once_and_refuses_past_the_limit(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A settled call moves from held to spent: another workspace sees it, and the next call
    that would pass the limit is refused with the server's figures."""
    extra = f"budget: {{max_cost_per_day: {2 * CALL}, max_cost_per_session: {10 * CALL}}}\n"
    a = workspace(tmp_path / "a", redis_server.url, extra)
    b = workspace(tmp_path / "b", redis_server.url, extra)
    ga, gb = Guard(cfg_of(a)), Guard(cfg_of(b))
    res = reserve(ga)
    assert res.amount == pytest.approx(CALL) and res.handle
    ledger.record_call(ga.state_dir, record("s1", 0.001), ga.settling(res, 0.001))
    with redis_server.client() as c:
        assert not c.exists("burnless:{t}:open")  # settled: nothing held
        day = res.day
        assert int(c.get(f"burnless:{{t}}:spent:d:{day}")) == 1_000_000  # nano-USD
        assert c.xlen("burnless:{t}:ledger") == 1
    second = reserve(gb)  # 0.001 spent + 0.005 held: another 0.005 would pass 0.01
    with pytest.raises(BudgetExceeded) as exc:
        reserve(ga)
    assert str(exc.value) == (
        f"budget.max_cost_per_day = $0.0100: day {day} (UTC) has spent $0.0010 (+$0.0050 "
        "reserved by runs in flight); this call reserves up to $0.0050; nothing was dispatched")
    gb.release(second)
    reserve(ga)  # released: room again


def test_a_virtual_keys_limits_are_the_teams_on_the_server(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """A key's day limit holds across gateways on two machines: reservations of the key are
    held on the server and settled into its day and month totals there (they used to be
    checked against one workspace's ledger only, or not at all)."""
    from burnless.accounting.budget import KeyLimits

    a = workspace(tmp_path / "a", redis_server.url)
    b = workspace(tmp_path / "b", redis_server.url)
    ga, gb = Guard(cfg_of(a)), Guard(cfg_of(b))
    alice = KeyLimits("alice", max_cost_per_day=2 * CALL)
    tier = ga.cfg.tiers["silver"]

    def take(guard: Guard, key: KeyLimits) -> Any:
        return guard.reserve(session="s", tier=tier, prompt_tokens=0, task_spent=0.0, key=key)

    first = take(ga, alice)
    assert first is not None and first.key == "alice" and first.handle
    take(gb, alice)  # the other machine: the second call of the day still fits
    with pytest.raises(BudgetExceeded) as exc:
        take(ga, alice)
    day = first.day
    assert str(exc.value) == (
        f"key 'alice': max_cost_per_day = $0.0100: day {day} (UTC) has spent $0.0000 (+$0.0100 "
        "reserved by runs in flight); this call reserves up to $0.0050; nothing was dispatched")
    assert take(ga, KeyLimits("bob", max_cost_per_day=CALL)) is not None  # keys are apart
    # A settled call of the key moves from held to the key's totals, read by every machine.
    ledger.record_call(ga.state_dir, record("s", 0.001, key="alice"), ga.settling(first, 0.001))
    with redis_server.client() as c:
        assert int(c.get(f"burnless:{{t}}:spent:k:d:{day}:alice")) == 1_000_000
        assert int(c.get(f"burnless:{{t}}:spent:k:m:{day[:7]}:alice")) == 1_000_000
        assert c.zcard("burnless:{t}:open:k:alice") == 1
    with pytest.raises(BudgetExceeded, match=r"has spent \$0.0010 \(\+\$0.0050 reserved"):
        take(gb, alice)


def test_the_users_day_limit_spans_projects_on_a_shared_backend(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's day limit across projects is the person's: with a shared backend it is
    checked against the user's ledger and reservations under $BURNLESS_HOME, across projects
    of any backend and concurrent threads; the team's day limit stays the project's own."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"budget: {{max_cost_per_day: {2.5 * CALL}}}\n")
    monkeypatch.setenv("BURNLESS_HOME", str(home))
    team = f"budget: {{max_cost_per_day: {100 * CALL}}}\n"  # the team's own, far above
    a = workspace(tmp_path / "a", redis_server.url, team)
    b = workspace(tmp_path / "b", redis_server.url)
    local = Workspace(tmp_path / "local").config(  # one of the user's projects is not shared
        "tiers:\n  silver: {api: anthropic, model: claude-haiku-4-5, max_output_tokens: 1000}\n")
    ga, gb, gl = Guard(cfg_of(a)), Guard(cfg_of(b)), Guard(cfg_of(local))
    assert ga.cfg.budget.max_cost_per_day == pytest.approx(2.5 * CALL)  # the user's applies
    first = reserve(ga)
    reserve(gl)  # the other project, on this machine's files
    with pytest.raises(BudgetExceeded) as exc:
        reserve(gb)
    day = first.day
    assert str(exc.value) == (
        f"budget.max_cost_per_day = $0.0125 in {home / 'config.yaml'}: day {day} (UTC), across "
        "every project, has spent $0.0000 (+$0.0100 reserved by runs in flight); this call "
        "reserves up to $0.0050; nothing was dispatched")
    # Settling moves the call from the user's reservations to the user's ledger.
    ledger.record_call(ga.state_dir, record("s1", 0.001), ga.settling(first, 0.001),
                       user_dir=ga.cfg.user_dir)
    assert len(orjson.loads((home / "reservations.json").read_bytes())) == 1
    second = reserve(gb)  # $0.001 spent + $0.005 held + $0.005 fits in $0.0125
    with pytest.raises(BudgetExceeded, match=r"has spent \$0.0010 \(\+\$0.0100 reserved"):
        reserve(ga)
    gb.release(second)
    # The team's day total is the project's limit ($0.50), not the user's: another member of
    # the team (another home, no user limit) spends past the user's $0.0125 on the same day.
    other = tmp_path / "other-home"
    other.mkdir()
    monkeypatch.setenv("BURNLESS_HOME", str(other))
    gt = Guard(cfg_of(a))
    assert [reserve(gt, session=f"t{i}") is not None for i in range(4)] == [True] * 4
    with redis_server.client() as c:
        assert c.zcard("burnless:{t}:open") == 4  # the first settled, the second released
    # Concurrent threads of the user's two shared projects: exactly what fits is granted.
    monkeypatch.setenv("BURNLESS_HOME", str(home))
    guards = [Guard(cfg_of(ws)) for ws in (a, b)]
    (home / "reservations.json").write_bytes(b"{}")  # the local project's call ended
    def grab(i: int) -> str:
        try:
            reserve(guards[i % 2], session=f"c{i}")
            return "ok"
        except BudgetExceeded:
            return "refused"

    # $0.001 spent: two $0.005 calls fit in $0.0125, a third does not.
    assert sorted(concurrently(8, grab)) == ["ok"] * 2 + ["refused"] * 6
    assert len(orjson.loads((home / "reservations.json").read_bytes())) == 2


def test_a_call_the_server_refuses_leaves_no_hold_in_the_users_reservations(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"budget: {{max_cost_per_day: {10 * CALL}}}\n")
    monkeypatch.setenv("BURNLESS_HOME", str(home))
    a = workspace(tmp_path / "a", redis_server.url,
                  f"budget: {{max_cost_per_session: {1.5 * CALL}}}\n")
    g = Guard(cfg_of(a))
    reserve(g, "s")
    with pytest.raises(BudgetExceeded, match="session 's'"):
        reserve(g, "s")  # the server's session scope refuses
    assert len(orjson.loads((home / "reservations.json").read_bytes())) == 1
    redis_server.stop()
    with pytest.raises(BudgetExceeded, match="cannot be checked"):
        reserve(g, "s2")
    assert len(orjson.loads((home / "reservations.json").read_bytes())) == 1


def test_run_sessions_are_their_workspace_s_and_gateway_sessions_the_team_s(
        redis_server: RedisServer, tmp_path: Path) -> None:
    extra = f"budget: {{max_cost_per_session: {1.5 * CALL}}}\n"
    a = workspace(tmp_path / "a", redis_server.url, extra)
    b = workspace(tmp_path / "b", redis_server.url, extra)
    ga, gb = Guard(cfg_of(a)), Guard(cfg_of(b))
    reserve(ga, "auth")
    reserve(gb, "auth")  # another laptop's session "auth" is another session
    with pytest.raises(BudgetExceeded, match="session 'auth'"):
        reserve(ga, "auth")
    from burnless.gateway import core

    gwa, gwb = core.make_guard(cfg_of(a)), core.make_guard(cfg_of(b))
    reserve(gwa, "cc-session-1")
    with pytest.raises(BudgetExceeded, match="session 'cc-session-1'"):
        reserve(gwb, "cc-session-1")  # a client session is the same on any gateway


def test_max_calls_per_session_counts_settled_and_open_calls(
        redis_server: RedisServer, tmp_path: Path) -> None:
    a = workspace(tmp_path / "a", redis_server.url, "budget: {max_calls_per_session: 2}\n")
    g = Guard(cfg_of(a))
    first = reserve(g, "s")
    ledger.record_call(g.state_dir, record("s", 0.001), g.settling(first, 0.001))
    reserve(g, "s")
    with pytest.raises(BudgetExceeded) as exc:
        reserve(g, "s")
    assert str(exc.value) == ("budget.max_calls_per_session = 2: session 's' has made 1 calls "
                              "(+1 in flight); nothing was dispatched")


def test_an_agent_loop_holds_what_the_budget_has_left(redis_server: RedisServer,
                                                      tmp_path: Path) -> None:
    """An agent CLI's ceiling is what the budget has left: a second one waits for the first."""
    a = workspace(tmp_path / "a", redis_server.url, "budget: {max_cost_per_day: 0.5}\n")
    g = Guard(cfg_of(a))
    import dataclasses

    loop = dataclasses.replace(g.cfg.tiers["worker"], format="claude-json")
    assert loop.agent_loop
    res = g.reserve(session="s", tier=loop, prompt_tokens=10, task_spent=0.0)
    assert res is not None and res.amount == pytest.approx(0.5)
    with pytest.raises(BudgetExceeded):
        g.reserve(session="s", tier=loop, prompt_tokens=10, task_spent=0.0)


def test_a_task_tree_total_is_shared_and_forgotten_with_its_root(
        redis_server: RedisServer, tmp_path: Path) -> None:
    a = workspace(tmp_path / "a", redis_server.url, f"budget: {{max_cost_per_task: {CALL}}}\n")
    g = Guard(cfg_of(a))
    res = reserve(g, tree="task-1")
    ledger.record_call(g.state_dir, record("s1", 0.004), g.settling(res, 0.004))
    with pytest.raises(BudgetExceeded, match="the task tree task-1 has spent \\$0.0040"):
        reserve(g, tree="task-1")
    g.forget_tree("task-1")
    with redis_server.client() as c:
        assert not c.keys("burnless:{t}:*:t:*")
    reserve(g, tree="task-1")


def test_a_dead_process_s_reservation_expires_after_its_ttl(redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
    """A live process renews its reservation past the TTL; SIGKILLed, it stops, and the
    reservation (key included) is gone one TTL later."""
    a = workspace(tmp_path / "a", redis_server.url,
                  f"budget: {{max_cost_per_day: {CALL}, reservation_ttl: 0.6}}\n")
    p = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\n"
         "from burnless.config import load_config\n"
         "from burnless.accounting.budget import Guard\n"
         "g = Guard(load_config(cwd=Path(sys.argv[1])))\n"
         "g.reserve(session='s', tier=g.cfg.tiers['silver'], prompt_tokens=0, task_spent=0)\n"
         "print('held', flush=True)\n"
         "time.sleep(60)\n", str(a.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "held\n"
        g = Guard(cfg_of(a))
        time.sleep(1.5)  # more than two TTLs: renewed
        with pytest.raises(BudgetExceeded, match="reserved by runs in flight"):
            reserve(g)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        deadline = time.monotonic() + 5
        while redis_server.keys("burnless:{t}:open*") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert redis_server.keys("burnless:{t}:open*") == []  # expired, no script needed
        reserve(g)
    finally:
        p.kill()
        p.communicate()


def test_an_outbox_entry_is_applied_once_even_if_sent_twice(redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
    """A flush that died after sending, before clearing the outbox, sends again: the server
    applies each entry once (the copy and its cost)."""
    a = workspace(tmp_path / "a", redis_server.url)
    cfg = cfg_of(a)
    backend = state.shared(cfg)
    assert backend is not None
    rec = record("s1", 0.002).to_dict()
    op = {"id": "op-1", "record": rec, "handle": "", "tree": "", "session": ""}
    line = orjson.dumps(op) + b"\n"
    outbox = a.state / "outbox.jsonl"
    for _ in range(2):
        outbox.write_bytes(line)
        backend.pin_get("anything")  # any answer from the server flushes the outbox
        assert outbox.read_bytes() == b""
    with redis_server.client() as c:
        assert c.xlen("burnless:{t}:ledger") == 1
        [day_key] = c.keys("burnless:{t}:spent:d:*")
        assert int(c.get(day_key)) == 2_000_000


# --------------------------------------------------------------------------- shared pieces


def test_breaker_pins_and_cache_are_seen_from_another_workspace(redis_server: RedisServer,
                                                               tmp_path: Path) -> None:
    from burnless.gateway.routing import Sessions, SessionState
    from burnless.response_cache import ResponseCache
    from burnless.routing.breaker import Breaker

    a, b = (cfg_of(workspace(tmp_path / n, redis_server.url)) for n in "ab")
    for _ in range(3):
        Breaker(a).record("silver", True)
    assert "breaker open on silver: 3 failures in a row" in (Breaker(b).open_reason("silver")
                                                              or "")
    assert not (a.state_dir / "breaker.json").exists()
    Breaker(b).record("silver", False)
    assert Breaker(a).open_reason("silver") is None

    sa = Sessions(600, 100, shared=state.shared(a))
    sb = Sessions(600, 100, shared=state.shared(b))
    sa.put("cc-1", SessionState(tier="gold", transcripts={"claude-opus-4-8": 3}))
    got = sb.get("cc-1")
    assert got is not None and got.tier == "gold" and got.transcripts == {"claude-opus-4-8": 3}
    assert len(sa) == 0  # nothing kept in this gateway's memory

    ResponseCache.of(a).put("k1", "the answer", "claude-haiku-4-5")
    assert ResponseCache.of(b).get("k1") == ("the answer", "claude-haiku-4-5")
    assert not (a.state_dir / "cache" / "responses").exists()


def test_pins_are_bounded_by_max_sessions_least_recent_first(redis_server: RedisServer,
                                                             tmp_path: Path) -> None:
    from burnless.gateway.routing import Sessions, SessionState

    a = cfg_of(workspace(tmp_path / "a", redis_server.url))
    pins = Sessions(600, 3, shared=state.shared(a))
    for i in range(5):
        pins.put(f"s{i}", SessionState(tier="gold"))
        time.sleep(0.002)  # distinct server milliseconds
    assert [k for k in (f"s{i}" for i in range(5)) if pins.get(k)] == ["s2", "s3", "s4"]
    assert len(redis_server.keys("burnless:{t}:pin:*")) == 3


def test_while_the_server_is_down_breaker_and_pins_fall_back_to_this_machine(
        tmp_path: Path) -> None:
    pytest.importorskip("redis")
    from burnless.gateway.routing import Sessions, SessionState
    from burnless.routing.breaker import Breaker

    url = f"redis://127.0.0.1:{free_port()}/0"
    a = cfg_of(workspace(tmp_path / "a", url))
    for _ in range(3):
        Breaker(a).record("silver", True)
    assert Breaker(a).open_reason("silver")
    assert (a.state_dir / "breaker.json").exists()
    pins = Sessions(600, 10, shared=state.shared(a))
    pins.put("x", SessionState(tier="gold"))
    got = pins.get("x")
    assert got is not None and got.tier == "gold"
