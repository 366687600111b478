"""Two gateways on one redis-server (SPEC 14), in-process on loopback with two workspaces: a
session pinned on one is routed alike on the other, a breaker opened by one is open on the
other, one's response cache answers the other, both report the team's calls in /metrics, and
an unreachable server refuses budgeted requests with HTTP 429 and the reason."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from burnless import state
from burnless.config import load_config
from burnless.gateway.app import Server
from tests.conftest import Workspace, parse_metrics, records, user
from tests.fakes.upstream import FakeUpstream
from tests.redis_server import RedisServer, free_port
from tests.unit.test_gateway import _close_clients, ant  # noqa: F401  (the fixture)

KEY = "sk-ant-api03-gatewaytest-KEY-0123456789abcdef"
Start = Callable[..., Server]


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Start]:
    servers: list[Server] = []

    def start(name: str, config: str) -> Server:
        root = tmp_path / name
        root.mkdir()
        ws = Workspace(root).config(config)
        srv = Server(load_config(cwd=ws.root), environ={"ANTHROPIC_API_KEY": KEY}).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.close()
    state.reset()


@pytest.fixture
def upstream(fakes: Callable[..., FakeUpstream]) -> Callable[..., FakeUpstream]:
    return fakes


def config(url: str, fake: FakeUpstream, extra: str = "") -> str:
    return ("tiers:\n"
            f"  gold: {{api: anthropic, model: claude-opus-4-8, base_url: '{fake.url}'}}\n"
            f"  silver: {{api: anthropic, model: claude-sonnet-4-5, base_url: '{fake.url}'}}\n"
            "gateway: {route_models: ['claude-*']}\n"
            f"state: {{backend: '{url}', namespace: gw}}\n" + extra)




def ledger_of(srv: Server, n: int = 1) -> list[dict[str, Any]]:
    """The gateway's ledger once it holds ``n`` records."""
    return records(Workspace(srv.cfg.workspace), n)


def test_a_session_pinned_on_one_gateway_is_routed_alike_on_the_other(
        redis_server: RedisServer, gateways: Start, upstream: Any) -> None:
    fake = upstream()
    a = gateways("a", config(redis_server.url, fake))
    b = gateways("b", config(redis_server.url, fake))
    session = {"x-claude-code-session-id": "cc-shared-1"}
    ant(a, default_headers=session).messages.create(
        model="claude-opus-4-8", max_tokens=50, messages=user("Plan the refactor"))
    turns = user("Plan the refactor") + [{"role": "assistant", "content": "ok"},
                                         {"role": "user", "content": "Now do step one"}]
    ant(b, default_headers=session).messages.create(
        model="claude-opus-4-8", max_tokens=50, messages=turns)
    [first], [second] = ledger_of(a), ledger_of(b)
    assert first["role"] == "planning" and first["tier"] == "gold"
    # b never saw the session's first request: without the shared pin it would plan again.
    assert second["role"] == "execution" and second["tier"] == "silver", second["route"]
    assert len(a.gateway.sessions) == len(b.gateway.sessions) == 0  # type: ignore[union-attr]


def test_a_breaker_opened_through_one_gateway_is_open_on_the_other(
        redis_server: RedisServer, gateways: Start, upstream: Any) -> None:
    bad = upstream("500")
    extra = "routing: {ladder: [silver]}\n"  # no failover: silver alone
    a = gateways("a", config(redis_server.url, bad, extra))
    b = gateways("b", config(redis_server.url, bad, extra))
    for _ in range(3):
        with pytest.raises(anthropic.InternalServerError):
            ant(a).messages.create(model="silver", max_tokens=10, messages=user("x"))
    assert len(bad.requests) == 3
    with pytest.raises(anthropic.APIStatusError) as err:
        ant(b).messages.create(model="silver", max_tokens=10, messages=user("x"))
    assert err.value.status_code == 503 and "breaker open on silver" in str(err.value)
    assert len(bad.requests) == 3  # nothing sent through b


def test_one_gateway_s_response_cache_answers_the_other(redis_server: RedisServer,
                                                        gateways: Start, upstream: Any) -> None:
    fake = upstream()
    extra = "cache: {responses: true}\n"
    a = gateways("a", config(redis_server.url, fake, extra))
    b = gateways("b", config(redis_server.url, fake, extra))
    first = ant(a).messages.with_raw_response.create(model="silver", max_tokens=10,
                                                     messages=user("same"))
    second = ant(b).messages.with_raw_response.create(model="silver", max_tokens=10,
                                                      messages=user("same"))
    assert "x-burnless-cache" not in first.headers
    assert second.headers["x-burnless-cache"] == "hit"
    assert second.parse().content[0].text == "echo: same"  # type: ignore[union-attr]
    assert len(fake.requests) == 1


def test_metrics_on_either_gateway_report_the_team(redis_server: RedisServer, gateways: Start,
                                                   upstream: Any) -> None:
    fake = upstream()
    a = gateways("a", config(redis_server.url, fake))
    b = gateways("b", config(redis_server.url, fake))
    ant(a).messages.create(model="silver", max_tokens=10, messages=user("one"))
    for _ in range(2):
        ant(b).messages.create(model="gold", max_tokens=10, messages=user("two"))
    ledger_of(a, 1)
    ledger_of(b, 2)
    for srv in (a, b):
        deadline = time.monotonic() + 5  # a copy reaches the server right after the ledger
        while True:
            with urllib.request.urlopen(srv.url + "/metrics") as r:
                m = parse_metrics(r.read().decode())
            calls = {dict(k[1])["tier"]: v for k, v in m.items()
                     if k[0] == "burnless_calls_total"}
            if calls == {"silver": 1, "gold": 2} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert calls == {"silver": 1, "gold": 2}
        assert m[("burnless_shared_state_up", frozenset())] == 1
        with urllib.request.urlopen(srv.url + "/stats") as r:
            st = orjson.loads(r.read())
        assert st["shared"]["origins"] == 2 and st["shared"]["records"] == 3
    with urllib.request.urlopen(b.url + "/metrics") as r:  # caught up: nothing read twice
        m = parse_metrics(r.read().decode())
    assert sum(v for k, v in m.items() if k[0] == "burnless_calls_total") == 3


def test_an_unreachable_server_refuses_budgeted_requests_with_the_reason(
        gateways: Start, upstream: Any) -> None:
    pytest.importorskip("redis")
    fake = upstream()
    url = f"redis://127.0.0.1:{free_port()}/0"
    srv = gateways("a", config(url, fake, "budget: {max_cost_per_day: 5}\n"))
    with pytest.raises(anthropic.RateLimitError) as err:
        ant(srv).messages.create(model="silver", max_tokens=10, messages=user("x"))
    body = err.value.response.json()
    assert body["error"]["type"] == "budget_exceeded"
    assert "budget.max_cost_per_day cannot be checked: the shared state server" in \
        body["error"]["message"] and "is unreachable" in body["error"]["message"]
    assert fake.requests == []
    [refused] = ledger_of(srv)
    assert refused["status"] == "refused" and refused["refused_by"] == "budget"
    with urllib.request.urlopen(srv.url + "/metrics") as r:
        m = parse_metrics(r.read().decode())
    assert m[("burnless_shared_state_up", frozenset())] == 0
