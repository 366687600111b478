"""A team on one redis-server (SPEC 14), every piece a real process: `burnless serve` gateways and
`burnless run` CLIs in two workspaces ("machines"), the simulator billing like Anthropic.

- 64 concurrent clients on two gateways, and two `run` loops, against one shared daily limit:
  what the upstream billed never exceeds it, and the server, the ledgers and the upstream agree.
- A gateway SIGKILLed mid-stream: its reservation, renewed while it lived, is gone one TTL later.
- Redis stopped mid-run: budgeted requests and runs are refused with the reason, a call in flight
  and unbudgeted runs are recorded here, and every copy reaches the server after its restart.
"""

from __future__ import annotations

import http.client
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.sim.server import SimServer
from tests.cli.conftest import serving
from tests.conftest import Workspace
from tests.fakes.upstream import FakeUpstream
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

KEY = "sk-ant-api03-team-test-KEY-0123456789abcdef"
HAIKU = (1.0, 5.0, 1.25, 0.10)  # USD per million: input, output, cache write, cache read


def settled_alike(server: RedisServer, billed: float, *team: Workspace) -> None:
    """The workspaces' ledgers, the upstream's bill and the server's day total agree on what
    was spent, and the server holds no reservation."""
    spent = sum(billed_cost(ws) for ws in team)
    assert spent == pytest.approx(billed, abs=1e-7)
    with server.client() as c:
        [day] = c.keys("burnless:{team}:spent:d:*")
        assert int(c.get(day)) / 1e9 == pytest.approx(spent, abs=1e-7)
        assert not c.exists("burnless:{team}:open")


def team(root: Path, url: str, upstream: str, extra: str = "") -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(root).config(
        "tiers:\n"
        f"  silver: {{api: anthropic, model: claude-haiku-4-5, base_url: '{upstream}', "
        f"max_output_tokens: 20, env: {{ANTHROPIC_API_KEY: {KEY}}}}}\n"
        f"state: {{backend: '{url}', namespace: team, timeout: 1}}\n" + extra)


def post(port: int, text: str, *, max_tokens: int = 20, stream: bool = False,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = {"model": "silver", "max_tokens": max_tokens, "stream": stream,
                "messages": [{"role": "user", "content": text}]}
        conn.request("POST", "/v1/messages", orjson.dumps(body),
                     {"content-type": "application/json", "anthropic-version": "2023-06-01",
                      **(headers or {})})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def billed_by(log: Path) -> tuple[float, int]:
    """What the simulator billed (USD at Haiku's prices) and for how many answers."""
    total, n = 0.0, 0
    i, o, w, r = HAIKU
    for line in log.read_bytes().splitlines():
        rec = orjson.loads(line)
        u = rec.get("usage")
        if rec.get("method") != "POST" or rec.get("status") != 200 or not u:
            continue
        total += (u["input_tokens"] * i + u["output_tokens"] * o
                  + u["cache_creation_input_tokens"] * w + u["cache_read_input_tokens"] * r) / 1e6
        n += 1
    return total, n


def billed_cost(ws: Workspace) -> float:
    return sum(r["cost_usd"] or 0 for r in ws.ledger()
               if r["status"] != "refused" and not r.get("cached"))


def copies(server: RedisServer) -> list[dict[str, Any]]:
    with server.client() as c:
        return [orjson.loads(f[b"r"]) for _, f in c.xrange("burnless:{team}:ledger")]


STORY = "Once upon a time a budget was shared by a whole team. " * 70  # ~1,000 tokens


def test_64_clients_two_gateways_two_runs_never_exceed_one_shared_daily_limit(
        redis_server: RedisServer, tmp_path: Path) -> None:
    limit = 0.02
    log = tmp_path / "sim.jsonl"
    with SimServer(log=log) as sim:
        budget = f"budget: {{max_cost_per_day: {limit}}}\n"
        a = team(tmp_path / "machine-a", redis_server.url, sim.url, budget)
        b = team(tmp_path / "machine-b", redis_server.url, sim.url, budget)
        statuses: list[int] = []
        exits: list[int] = []
        go = threading.Event()
        with serving(a, clean_exit=False) as ga, serving(b, clean_exit=False) as gb:
            def client(i: int) -> None:
                go.wait()
                port = (ga, gb)[i % 2].port
                for n in range(40):
                    # A long prompt: what the upstream bills is close to what is reserved,
                    # so one reservation too many would show as an overspend.
                    status, body = post(port, f"client {i}, request {n}: " + STORY)
                    statuses.append(status)
                    if status != 200:
                        assert status == 429 and b"budget_exceeded" in body, body
                        return

            def runs(ws: Workspace) -> None:
                go.wait()
                for n in range(15):
                    p = ws.run("run", f"write a short note, take {n}", "--tier", "silver")
                    exits.append(p.returncode)
                    if p.returncode == 4:
                        assert "budget.max_cost_per_day" in p.stderr, p.stderr
                        return

            threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
            threads += [threading.Thread(target=runs, args=(ws,)) for ws in (a, b)]
            for t in threads:
                t.start()
            go.set()
            for t in threads:
                t.join(300)
            assert not any(t.is_alive() for t in threads)
    billed, answers = billed_by(log)
    assert billed <= limit + 1e-9, (billed, answers)
    assert billed >= 0.5 * limit and statuses.count(429) > 0 and 4 in exits, (
        billed, statuses.count(200), exits)
    # Server, ledgers and upstream agree on what was spent (and nothing is left held).
    settled_alike(redis_server, billed, a, b)
    assert {r["run_id"] for r in copies(redis_server)} == {
        r["run_id"] for ws in (a, b) for r in ws.ledger()}


def test_a_gateway_killed_mid_stream_leaves_no_reservation_after_its_ttl(
        redis_server: RedisServer, tmp_path: Path) -> None:
    ttl = 2.0
    with FakeUpstream("drip", drip=0.05) as fake:
        # Room for one such stream (100,000 output tokens at $5/M) at a time.
        ws = team(tmp_path / "a", redis_server.url, fake.url,
                  f"budget: {{max_cost_per_day: 0.6, reservation_ttl: {ttl}}}\n")
        open_key = "burnless:{team}:open"
        with serving(ws, clean_exit=False) as gw:
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
            body = {"model": "silver", "max_tokens": 100_000, "stream": True,
                    "messages": [{"role": "user", "content": "a very long story"}]}
            conn.request("POST", "/v1/messages", orjson.dumps(body),
                         {"content-type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and r.read1(64)  # the stream is flowing
            with redis_server.client() as c:
                assert c.zcard(open_key) == 1
                time.sleep(2 * ttl)  # a live gateway renews what it holds
                assert c.zcard(open_key) == 1
            second = post(gw.port, "another", max_tokens=100_000)
            assert second[0] == 429 and b"reserved by runs in flight" in second[1]
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(10)
            conn.close()
            deadline = time.monotonic() + ttl + 3
            while redis_server.keys("burnless:{team}:open*") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert redis_server.keys("burnless:{team}:open*") == []
        with serving(ws, clean_exit=False) as again:  # the whole limit is free again
            status, _ = post(again.port, "after", max_tokens=100_000)
            assert status == 200


def test_redis_stopped_mid_run_refuses_budgeted_calls_and_loses_nothing(
        tmp_path: Path) -> None:
    pytest.importorskip("redis")
    server = RedisServer(tmp_path / "redis", persist=True).start()
    log = tmp_path / "sim.jsonl"
    try:
        with SimServer(log=log) as sim:
            a = team(tmp_path / "machine-a", server.url, sim.url,
                     "budget: {max_cost_per_day: 5}\n")
            b = team(tmp_path / "machine-b", server.url, sim.url)  # no budget
            with serving(a, clean_exit=False) as gw:
                assert post(gw.port, "before")[0] == 200
                assert b.run("run", "before", "--tier", "silver").returncode != 4
                # A call in flight (the simulator answers after 2 s) when the server stops.
                slow: list[tuple[int, bytes]] = []
                t = threading.Thread(target=lambda: slow.append(
                    post(gw.port, "in flight", headers={"x-sim-fault": "sleep=2"})))
                t.start()
                time.sleep(0.7)
                server.stop()
                status, body = post(gw.port, "refused")
                assert status == 429
                err = orjson.loads(body)["error"]
                assert err["type"] == "budget_exceeded"
                assert "budget.max_cost_per_day cannot be checked: the shared state server " \
                    f"{server.url} is unreachable" in err["message"]
                p = a.run("run", "refused too", "--tier", "silver")
                assert p.returncode == 4 and "cannot be checked" in p.stderr
                p = b.run("run", "unbudgeted", "--tier", "silver")
                assert p.returncode != 4 and "cannot be checked" not in p.stderr
                t.join(30)
                assert slow and slow[0][0] == 200
                waiting = (a.state / "outbox.jsonl").read_bytes().splitlines()
                assert len(waiting) >= 3  # the call in flight, two refusals
                server.restart()
                assert post(gw.port, "after")[0] == 200  # reaches the server: flushes first
            assert b.run("run", "after", "--tier", "silver").returncode != 4
        for ws in (a, b):
            assert (ws.state / "outbox.jsonl").read_bytes() == b""
        every = [r for ws in (a, b) for r in ws.ledger()]
        sent = copies(server)
        assert sorted(r["run_id"] for r in sent) == sorted(r["run_id"] for r in every)
        billed, _ = billed_by(log)
        settled_alike(server, billed, a, b)
    finally:
        server.stop()
