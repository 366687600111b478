"""The gateway (``burnless serve`` answering the provider APIs), in-process on loopback: the real
``anthropic`` and ``openai`` SDKs as clients, the simulator and the fake provider of
``tests/fakes/upstream.py`` as upstreams."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from burnless.config import load_config
from burnless.gateway.app import Server
from burnless.sim.server import SimServer
from tests.conftest import Workspace, concurrently, records, user
from tests.fakes.upstream import OPENAI_CACHED, OPENAI_PROMPT, FakeUpstream, out_tokens

KEY = "sk-ant-api03-gatewaytest-KEY-0123456789abcdef"
OKEY = "sk-proj-gatewaytestKEY0123456789abcdefABCDEF"
SECRET = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"  # a GitHub token, by shape
HAIKU = (1.0, 5.0, 1.25, 0.10)  # USD per million: input, output, cache write, cache read
SONNET = (3.0, 15.0, 3.75, 0.30)


def cost(prices: tuple[float, float, float, float], t: dict[str, int]) -> float:
    i, o, w, r = prices
    return (t["input"] * i + t["output"] * o + t["cache_write"] * w + t["cache_read"] * r) / 1e6


Start = Callable[..., Server]


@pytest.fixture
def gateway(ws: Workspace) -> Iterator[Start]:
    servers: list[Server] = []

    def start(config: str, env: dict[str, str] | None = None) -> Server:
        ws.config(config)
        cfg = load_config(cwd=ws.root)
        srv = Server(cfg, environ={"ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": OKEY,
                                   **(env or {})}).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.close()




_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """SDK clients keep pooled sockets: closed at the end of each test, not by the collector
    (an unclosed socket is a ResourceWarning, an error here)."""
    yield
    while _clients:
        _clients.pop().close()


def ant(srv: Server, **kw: Any) -> anthropic.Anthropic:
    c = anthropic.Anthropic(base_url=srv.url, api_key="client-dummy", max_retries=0, **kw)
    _clients.append(c)
    return c


def oai(srv: Server) -> openai.OpenAI:
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="client-dummy", max_retries=0)
    _clients.append(c)
    return c




def tiers_on(fake: FakeUpstream, api: str = "anthropic", **extra: str) -> str:
    base = fake.url + ("/v1" if api == "openai" else "")
    lines = []
    for name, model in (("gold", "claude-opus-4-8"), ("silver", "claude-sonnet-4-5"),
                        ("bronze", "claude-haiku-4-5")):
        if api == "openai":
            model = {"gold": "gpt-5", "silver": "gpt-5-mini", "bronze": "gpt-5-nano"}[name]
        lines.append(f"  {name}: {{api: {api}, model: {model}, base_url: '{base}'"
                     f"{extra.get(name, '')}}}")
    return "tiers:\n" + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- real SDKs


def test_anthropic_sdk_through_the_gateway_to_the_simulator(ws: Workspace, gateway: Start,
                                                            tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    with SimServer(log=log) as sim:
        srv = gateway(
            "tiers:\n"
            f"  gold: {{api: anthropic, model: claude-opus-4-8, base_url: '{sim.url}'}}\n"
            f"  silver: {{api: anthropic, model: claude-sonnet-4-5, base_url: '{sim.url}'}}\n"
            "gateway: {route_models: ['claude-*']}\n")
        client = ant(srv, default_headers={"x-claude-code-session-id": "cc-session-1",
                                           "user-agent": "claude-cli/2.1.197 (external, cli)"})
        first = client.messages.create(model="claude-opus-4-8", max_tokens=300,
                                       messages=user("Plan the refactor of the auth module"))
        assert first.content[0].type == "text" and first.model == "claude-opus-4-8"
        turns = user("Plan the refactor of the auth module") + [
            {"role": "assistant", "content": first.content[0].text},
            {"role": "user", "content": "Now do step one"}]
        with client.messages.stream(model="claude-opus-4-8", max_tokens=300,
                                    messages=turns) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text and final.model == "claude-sonnet-4-5"  # the executor, not what was asked
    recs = records(ws, 2)
    billed = [r for r in map(orjson.loads, log.read_bytes().splitlines()) if r["method"] == "POST"]
    assert [b["body"]["model"] for b in billed] == ["claude-opus-4-8", "claude-sonnet-4-5"]
    assert billed[0]["headers"]["x-api-key"] == "[REDACTED]"  # the tier's key went up ...
    assert "client-dummy" not in log.read_text()  # ... never the client's
    for rec, sim_rec, prices in zip(recs, billed, ((5.0, 25.0, 6.25, 0.5), SONNET),
                                    strict=True):
        u = sim_rec["usage"]
        tokens = {"input": u["input_tokens"], "output": u["output_tokens"],
                  "cache_read": u["cache_read_input_tokens"],
                  "cache_write": u["cache_creation_input_tokens"]}
        assert rec["tokens"] == tokens  # usage from the JSON body, and from the stream
        assert rec["cost_usd"] == pytest.approx(cost(prices, tokens), abs=1e-8)
        assert rec["session"] == "cc-session-1" and rec["client"] == "claude-cli/2.1.197"
        assert rec["cost_source"] == "priced" and rec["status"] == "ok"
    assert [(r["role"], r["tier"]) for r in recs] == [("planning", "gold"), ("execution", "silver")]
    assert "planner gold: first request of the session" in recs[0]["route"]["reasons"]


def test_openai_sdk_chat_and_responses(ws: Workspace, gateway: Start, fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake, "openai"))
    client = oai(srv)
    r = client.chat.completions.create(model="silver", messages=user("hi"))
    assert r.choices[0].message.content == "echo: hi" and r.usage is not None
    stream = client.chat.completions.create(model="silver", messages=user("a streamed hello"),
                                            stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "echo: a streamed hello"
    assert all(c.choices for c in chunks)  # the usage chunk the gateway asked for is dropped
    assert fake.bodies()[1]["stream_options"] == {"include_usage": True}
    asked = list(client.chat.completions.create(
        model="silver", messages=user("x"), stream=True, stream_options={"include_usage": True}))
    assert asked[-1].usage is not None and asked[-1].usage.prompt_tokens == OPENAI_PROMPT
    resp = client.responses.create(model="bronze", input="a response")
    assert resp.output_text == "echo: a response"
    with client.responses.stream(model="bronze", input="a streamed response") as s:
        for _ in s:
            pass
        final = s.get_final_response()
    assert final.output_text == "echo: a streamed response"
    recs = records(ws, 5)
    for rec, text in zip(recs, ("echo: hi", "echo: a streamed hello", "echo: x", "echo: a response",
                                "echo: a streamed response"), strict=True):
        # cached tokens are taken out of the input (SPEC 9): the four figures never overlap
        assert rec["tokens"] == {"input": OPENAI_PROMPT - OPENAI_CACHED,
                                 "cache_read": OPENAI_CACHED, "cache_write": 0,
                                 "output": out_tokens(text)}, rec
        assert rec["cost_source"] == "priced" and rec["session"] == ""
    assert [r["tier"] for r in recs] == ["silver"] * 3 + ["bronze"] * 2
    assert [b["model"] for b in fake.bodies()] == ["gpt-5-mini"] * 3 + ["gpt-5-nano"] * 2
    assert fake.requests[0].headers["authorization"] == f"Bearer {OKEY}"


def test_models_count_tokens_and_the_metrics_on_the_same_port(ws: Workspace, gateway: Start,
                                                               fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake) + "  local: {command: 'echo hi', local: true}\n")
    ids = [m.id for m in oai(srv).models.list()]
    assert ids == ["burnless/auto", "gold", "silver", "bronze"]  # api tiers only
    assert [m.id for m in ant(srv).models.list()] == ids
    n = ant(srv).messages.count_tokens(model="silver", messages=user("count me"))
    assert n.input_tokens == 42 and fake.requests[-1].path == "/v1/messages/count_tokens"
    ant(srv).messages.create(model="silver", max_tokens=50, messages=user("hello"))
    recs = records(ws, 1)  # count_tokens is free: no ledger record, no budget
    import urllib.request

    with urllib.request.urlopen(srv.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    line = ('burnless_tier_execution_tokens_total{tier="silver",model="claude-sonnet-4-5",'
            f'type="output"}} {recs[0]["tokens"]["output"]}')
    assert line in text.splitlines()
    with urllib.request.urlopen(srv.url + "/stats", timeout=5) as r:
        stats = orjson.loads(r.read())
    assert stats["ledger"]["path"] == ".burnless/ledger.jsonl"  # never the absolute path


# --------------------------------------------------------------------------- routing


def test_routing_tier_names_rules_split_compaction_model_ids_and_passthrough(
        ws: Workspace, gateway: Start, fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake) + f"  any: {{api: anthropic, model: x, base_url: '{fake.url}'}}\n"
                  "routing: {rules: [{keywords: [architecture], tier: gold}]}\n"
                  "gateway: {route_models: ['claude-opus-*'], passthrough: any}\n")
    c = ant(srv)

    def ask(model: str, messages: list[dict[str, Any]], session: str | None = "s1",
            label: str | None = None) -> str:
        headers = {"x-model-affinity": session} if session else {}
        if label:
            headers["x-burnless-label"] = label
        c.messages.create(model=model, max_tokens=20, messages=messages, extra_headers=headers)
        return str(fake.bodies()[-1]["model"])

    convo = user("start") + [{"role": "assistant", "content": "ok"}]
    assert ask("silver", user("by name")) == "claude-sonnet-4-5"
    assert ask("claude-opus-4-8", user("hello")) == "claude-opus-4-8"  # planner: first of s1
    assert ask("claude-opus-4-8", [*convo, *user("next")]) == "claude-sonnet-4-5"  # executor
    assert ask("claude-opus-4-8", [*convo, *convo, *user("more")]) == "claude-sonnet-4-5"
    assert ask("claude-opus-4-8", user("compacted summary")) == "claude-opus-4-8"  # shrank
    assert ask("burnless/auto", user("the architecture of it"), session=None) == \
        "claude-opus-4-8"  # a rule, on the last user message's text
    assert ask("burnless/auto", user("tests"), session=None) == "claude-sonnet-4-5"
    assert ask("claude-haiku-4-5", user("a model id")) == "claude-haiku-4-5"  # bronze's model
    assert ask("claude-haiku-4-5-20251001", user("a dated id")) == "claude-haiku-4-5"
    assert ask("some-unlisted-model", user("passthrough")) == "some-unlisted-model"
    recs = records(ws, 10)
    assert [r["role"] for r in recs] == ["execution", "planning", "execution", "execution",
                                         "planning", "execution", "execution", "execution",
                                         "execution", "execution"]
    assert recs[9]["tier"] == "any" and recs[9]["model"] == "some-unlisted-model"
    assert any("rule 1 → gold" in why for why in recs[5]["route"]["reasons"])
    assert "executor silver (no session)" in recs[6]["route"]["reasons"]
    # A tier's name with the wrong protocol, and nothing for an unknown model on OpenAI.
    with pytest.raises(openai.BadRequestError, match="speaks the anthropic API"):
        oai(srv).chat.completions.create(model="silver", messages=user("x"))
    with pytest.raises(openai.NotFoundError, match="'nope' is neither a tier") as err:
        oai(srv).chat.completions.create(model="nope", messages=user("x"))
    assert "burnless/auto, gold, silver, bronze, any" in str(err.value)
    with pytest.raises(anthropic.BadRequestError, match="session id"):
        c.messages.create(model="silver", max_tokens=5, messages=user("x"),
                          extra_headers={"x-model-affinity": "../etc"})
    assert len(fake.requests) == 10


def test_claude_code_session_inside_metadata_user_id(ws: Workspace, gateway: Start,
                                                     fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake) + "gateway: {route_models: ['claude-*']}\n")
    user_id = orjson.dumps({"device_id": "d",
                            "session_id": "0f1e2d3c-aaaa-bbbb-cccc-1234"}).decode()
    for text in ("one", "two"):
        ant(srv).messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=user(text),
                                 metadata={"user_id": user_id})
    # A side request on another model (Claude Code's titles, checks): one message, yet no
    # compaction of the main conversation, which goes on with the executor.
    ant(srv).messages.create(model="claude-haiku-4-5", max_tokens=20, messages=user("title"),
                             metadata={"user_id": user_id})
    ant(srv).messages.create(model="claude-sonnet-4-5", max_tokens=20,
                             messages=[*user("one"), {"role": "assistant", "content": "x"},
                                       *user("three")], metadata={"user_id": user_id})
    recs = records(ws, 4)
    assert [r["session"] for r in recs] == ["0f1e2d3c-aaaa-bbbb-cccc-1234"] * 4
    # Same transcript length: the second request is the executor's, not a new plan.
    assert [r["role"] for r in recs] == ["planning", "execution", "execution", "execution"]


def test_sessions_ttl_and_lru_bound() -> None:
    from burnless.gateway.routing import Sessions, SessionState

    now = [0.0]
    s = Sessions(ttl=10, max_sessions=3, clock=lambda: now[0])
    for i in range(4):
        s.put(f"s{i}", SessionState(tier="silver"))
    assert len(s) == 3 and s.get("s0") is None  # least recently used, dropped
    now[0] = 5
    assert s.get("s1") is not None
    s.put("s1", SessionState(tier="gold"))  # use refreshes the TTL
    now[0] = 12
    assert s.get("s2") is None  # last used at 0: expired
    state = s.get("s1")
    assert state is not None and state.tier == "gold"


# --------------------------------------------------------------------------- failover


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failover_before_the_first_byte(ws: Workspace, gateway: Start, fakes: Any) -> None:
    good = fakes()
    bad = {m: fakes(m, retry_after="0") for m in ("429", "503", "529")}
    dead = f"http://127.0.0.1:{closed_port()}"
    srv = gateway(
        "tiers:\n"
        f"  dead: {{api: anthropic, model: claude-opus-4-8, base_url: '{dead}', "
        "fallback: [r429]}\n"
        f"  r429: {{api: anthropic, model: claude-opus-4-8, base_url: '{bad['429'].url}', "
        "fallback: [r503]}\n"
        f"  r503: {{api: anthropic, model: claude-opus-4-8, base_url: '{bad['503'].url}'}}\n"
        f"  r529: {{api: anthropic, model: claude-opus-4-8, base_url: '{bad['529'].url}'}}\n"
        f"  good: {{api: anthropic, model: claude-sonnet-4-5, base_url: '{good.url}'}}\n"
        "routing: {ladder: [dead, r529, good]}\n")
    c = ant(srv)
    # dead → its fallback r429 (its own list only: r503 is r429's), retried once after its
    # retry-after (0 s) since no one else may serve → the 429 is passed on as it came.
    with pytest.raises(anthropic.RateLimitError) as err:
        c.messages.create(model="dead", max_tokens=10, messages=user("x"))
    assert err.value.response.headers["retry-after"] == "0"
    assert bad["503"].requests == []
    # r529 → the next rung of the ladder: good.
    m = c.messages.create(model="r529", max_tokens=10, messages=user("on the ladder"))
    assert m.content[0].text == "echo: on the ladder"  # type: ignore[union-attr]
    with c.messages.stream(model="r529", max_tokens=10, messages=user("streamed")) as s:
        assert "".join(s.text_stream) == "echo: streamed"
    recs = records(ws, 7)
    assert [(r["tier"], r["status"]) for r in recs] == [
        ("dead", "failed"), ("r429", "failed"), ("r429", "failed"),
        ("r529", "failed"), ("good", "ok"), ("r529", "failed"), ("good", "ok")]
    assert "cannot reach" in recs[0]["reason"] and "answered 429" in recs[1]["reason"]
    for r in recs:
        if r["status"] == "failed":  # an error answer is not billed
            assert r["tokens"]["input"] == 0 and r["cost_usd"] == 0
    assert any("r529: " in why and "529" in why for why in recs[4]["route"]["reasons"])
    assert recs[4]["model"] == "claude-sonnet-4-5"  # the fallback's own model
    # The breaker is run's: the gateway's failures count in .burnless/breaker.json.
    state = orjson.loads((ws.state / "breaker.json").read_bytes())
    assert state["r529"]["streak"] == 2 and state["r429"]["streak"] == 2
    assert "good" not in state  # successes on a clean tier write nothing


def test_breaker_opens_after_three_failures_and_is_skipped(ws: Workspace, gateway: Start,
                                                           fakes: Any) -> None:
    bad, good = fakes("500"), fakes()
    srv = gateway("tiers:\n"
                  f"  flaky: {{api: openai, model: gpt-5, base_url: '{bad.url}/v1', "
                  "fallback: [steady]}\n"
                  f"  steady: {{api: openai, model: gpt-5-mini, base_url: '{good.url}/v1'}}\n")
    for _ in range(4):
        r = oai(srv).chat.completions.create(model="flaky", messages=user("x"))
        assert r.choices[0].message.content == "echo: x"
    assert len(bad.requests) == 3  # the fourth request skipped the open breaker
    recs = records(ws, 7)
    assert any("breaker open on flaky" in why for why in recs[-1]["route"]["reasons"])


def test_retry_after_is_honoured_when_no_other_tier_serves(ws: Workspace, gateway: Start,
                                                           fakes: Any) -> None:
    fake = fakes("429", times=1, retry_after="1")
    srv = gateway(tiers_on(fake) + "routing: {ladder: [silver]}\n")
    t0 = time.monotonic()
    m = ant(srv).messages.create(model="silver", max_tokens=10, messages=user("patience"))
    assert time.monotonic() - t0 >= 1.0
    assert m.content[0].text == "echo: patience"  # type: ignore[union-attr]
    assert [r["status"] for r in records(ws, 2)] == ["failed", "ok"]
    # A retry-after past gateway.max_retry_wait is not waited for: the 429 goes to the client.
    fake2 = fakes("429", retry_after="60")
    srv2 = gateway(tiers_on(fake2) + "routing: {ladder: [silver]}\n")
    t0 = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as err:
        ant(srv2).messages.create(model="silver", max_tokens=10, messages=user("no"))
    assert time.monotonic() - t0 < 5 and err.value.response.headers["retry-after"] == "60"


def test_slow_first_byte_fails_over_after_the_tiers_timeout(ws: Workspace, gateway: Start,
                                                            fakes: Any) -> None:
    slow, good = fakes("slow", delay=5), fakes()
    srv = gateway("tiers:\n"
                  f"  slow: {{api: anthropic, model: claude-opus-4-8, base_url: '{slow.url}', "
                  "timeout: 0.5, fallback: [good]}\n"
                  f"  good: {{api: anthropic, model: claude-haiku-4-5, base_url: '{good.url}'}}\n")
    t0 = time.monotonic()
    m = ant(srv).messages.create(model="slow", max_tokens=10, messages=user("hurry"))
    assert time.monotonic() - t0 < 3 and m.model == "claude-haiku-4-5"
    first = records(ws, 2)[0]
    assert first["status"] == "failed" and "within 0.5s" in first["reason"]
    assert first["cost_source"] == "estimated" and first["cost_usd"] > 0  # sent: maybe billed


def test_a_stream_that_breaks_after_bytes_were_sent_ends_with_an_error_event(
        ws: Workspace, gateway: Start, fakes: Any) -> None:
    cut, garbage = fakes("cut"), fakes("garbage")
    srv = gateway("tiers:\n"
                  f"  cut: {{api: anthropic, model: claude-sonnet-4-5, base_url: '{cut.url}'}}\n"
                  f"  junk: {{api: anthropic, model: claude-sonnet-4-5, "
                  f"base_url: '{garbage.url}'}}\n"
                  f"  ocut: {{api: openai, model: gpt-5, base_url: '{cut.url}/v1'}}\n")
    for tier in ("cut", "junk"):
        with pytest.raises(anthropic.APIError, match="burnless gateway: the"):
            with ant(srv).messages.stream(model=tier, max_tokens=50, messages=user("x")) as s:
                for _ in s:
                    pass
    with pytest.raises(openai.APIError, match="burnless gateway"):
        list(oai(srv).chat.completions.create(model="ocut", messages=user("x"), stream=True))
    recs = records(ws, 3)
    assert [r["status"] for r in recs] == ["failed"] * 3
    # The cut stream had sent message_start: its input usage is kept, the output estimated.
    assert recs[0]["tokens"]["input"] == 100 and recs[0]["tokens"]["cache_write"] == 20
    assert recs[0]["cost_source"] == "estimated"
    assert len(cut.requests) == 2 and len(garbage.requests) == 1  # no retry after bytes


# --------------------------------------------------------------------------- money


def test_the_users_day_limit_counts_gateway_spend(ws: Workspace, gateway: Start,
                                                  fakes: Any) -> None:
    """With a user-level day limit ($BURNLESS_HOME/config.yaml), the gateway's calls and
    refusals are copied to the user's ledger as run's are (they used to stay in the project's
    only, so the limit across projects never saw gateway spend)."""
    import os

    home = Path(os.environ["BURNLESS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("budget: {max_cost_per_day: 0.006}\n")
    fake = fakes("greedy")
    srv = gateway(tiers_on(fake))
    c = ant(srv)
    c.messages.create(model="bronze", max_tokens=1000, messages=user("first"))
    with pytest.raises(anthropic.RateLimitError, match="across every project"):
        c.messages.create(model="bronze", max_tokens=1000, messages=user("second"))
    mine = [orjson.loads(x) for x in (home / "ledger.jsonl").read_bytes().splitlines()]
    assert [r["status"] for r in mine] == ["ok", "refused"]
    assert {r["workspace"] for r in mine} == {str(ws.root)}
    assert mine[0]["cost_usd"] == records(ws, 2)[0]["cost_usd"] > 0
    assert len(fake.requests) == 1


def test_budget_under_40_concurrent_clients_is_never_exceeded(ws: Workspace, gateway: Start,
                                                              fakes: Any) -> None:
    fake = fakes("greedy")
    limit = 0.02
    srv = gateway(tiers_on(fake) + f"budget: {{max_cost_per_day: {limit}}}\n")
    def client(i: int) -> list[str]:
        c = ant(srv)
        got = []
        for j in range(3):
            try:
                c.messages.create(model="bronze", max_tokens=1000,
                                  messages=user(f"client {i} request {j} " + "x" * 200))
                got.append("ok")
            except anthropic.RateLimitError as exc:
                assert exc.response.headers["x-should-retry"] == "false"
                body = exc.body if isinstance(exc.body, dict) else {}
                assert body["error"]["type"] == "budget_exceeded"
                assert "budget.max_cost_per_day" in body["error"]["message"]
                got.append("refused")
        return got

    outcomes = concurrently(40, client)
    assert len(outcomes) == 120
    # What the upstream billed (every prompt byte / 4 in, the whole cap out, at haiku's price).
    billed = sum((out_tokens(r.raw.decode()) * HAIKU[0] + 1000 * HAIKU[1]) / 1e6
                 for r in fake.requests)
    assert billed <= limit + 1e-12
    assert outcomes.count("ok") == len(fake.requests) >= 3  # nothing sent for a refusal
    assert outcomes.count("refused") > 0
    recs = records(ws, 120)
    assert sum(r["cost_usd"] for r in recs) == pytest.approx(billed, abs=1e-9)
    assert sum(r["status"] == "refused" and r["refused_by"] == "budget" for r in recs) == \
        outcomes.count("refused")


def test_response_cache_answers_identical_requests_for_free(ws: Workspace, gateway: Start,
                                                            fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake) + "cache: {responses: true}\n")
    c = ant(srv)
    for _ in range(2):
        m = c.messages.create(model="silver", max_tokens=20, messages=user("same"),
                              metadata={"user_id": "volatile-" + str(time.monotonic())})
        assert m.content[0].text == "echo: same"  # type: ignore[union-attr]
        with c.messages.stream(model="silver", max_tokens=20, messages=user("same")) as s:
            assert "".join(s.text_stream) == "echo: same"
    assert len(fake.requests) == 2  # one JSON, one stream; the repeats came from the cache
    recs = records(ws, 4)
    assert [r["cached"] for r in recs] == [False, False, True, True]
    assert recs[2]["cost_usd"] == 0 and recs[2]["tokens"]["input"] == 0


# --------------------------------------------------------------------------- policy


def test_sensitive_requests_only_reach_local_upstreams(ws: Workspace, gateway: Start,
                                                       fakes: Any) -> None:
    cloud, local = fakes(), fakes()
    srv = gateway(tiers_on(cloud) +
                  f"  ollama: {{api: anthropic, model: qwen3-coder, base_url: '{local.url}', "
                  "local: true, price: 0}\n"
                  "policy: {sensitive_patterns: ['(?i)payroll'], "
                  "sensitive_paths: ['secrets/**']}\n")
    c = ant(srv)
    m = c.messages.create(model="silver", max_tokens=20, messages=user("summarise the PAYROLL"))
    assert m.model == "qwen3-coder"
    c.messages.create(model="gold", max_tokens=20, messages=user("read secrets/prod.env"))
    c.messages.create(model="silver", max_tokens=20, messages=user("anything"),
                      extra_headers={"x-burnless-label": "urgent, sensitive"})
    # An earlier message of the transcript makes the whole conversation sensitive.
    c.messages.create(model="silver", max_tokens=20, messages=[
        *user("payroll figures"), {"role": "assistant", "content": "ok"}, *user("go on")])
    assert cloud.requests == [] and len(local.requests) == 4
    recs = records(ws, 4)
    assert {r["tier"] for r in recs} == {"ollama"}
    assert "policy: sensitive (path 'secrets/prod.env' matches 'secrets/**')" in \
        " ".join(recs[1]["route"]["reasons"])
    # Without a local tier of the protocol: 403, nothing sent, a refusal in the ledger.
    srv2 = gateway(tiers_on(cloud, "openai") + "policy: {sensitive_patterns: [payroll]}\n")
    with pytest.raises(openai.PermissionDeniedError, match="local: true"):
        oai(srv2).chat.completions.create(model="silver", messages=user("payroll"))
    assert cloud.requests == []
    assert ws.ledger()[-1]["refused_by"] == "policy"


def test_secrets_are_masked_upstream_and_restored_in_answers(ws: Workspace, gateway: Start,
                                                             fakes: Any) -> None:
    fake = fakes(chunk=5)  # masks arrive split across several deltas
    openai_tiers = tiers_on(fake, "openai").replace("tiers:\n", "")
    for name in ("gold", "silver", "bronze"):
        openai_tiers = openai_tiers.replace(f"  {name}:", f"  o{name}:")
    srv = gateway(tiers_on(fake) + openai_tiers)
    c, o = ant(srv), oai(srv)
    ask = f"store this token {SECRET} in the env file"
    echo = "echo: " + ask
    assert c.messages.create(model="silver", max_tokens=50,
                             messages=user(ask)).content[0].text == echo  # type: ignore[union-attr]
    with c.messages.stream(model="silver", max_tokens=50, messages=user(ask)) as s:
        assert "".join(s.text_stream) == echo
    tool = c.messages.create(model="silver", max_tokens=50, messages=user(ask),
                             extra_headers={"x-fake-mode": "tool"})
    assert tool.content[0].input["content"] == echo  # type: ignore[union-attr]
    with c.messages.stream(model="silver", max_tokens=50, messages=user(ask),
                           extra_headers={"x-fake-mode": "tool"}) as s:
        final = s.get_final_message()
    assert final.content[0].input["content"] == echo  # type: ignore[union-attr]
    assert o.chat.completions.create(model="osilver",
                                     messages=user(ask)).choices[0].message.content == echo
    streamed = list(o.chat.completions.create(model="osilver", messages=user(ask), stream=True,
                                              extra_headers={"x-fake-mode": "tool"}))
    args = "".join(ch.choices[0].delta.tool_calls[0].function.arguments or ""
                   for ch in streamed if ch.choices and ch.choices[0].delta.tool_calls)
    assert orjson.loads(args)["content"] == echo
    with o.responses.stream(model="obronze", input=ask) as rs:
        deltas = [e.delta for e in rs if e.type == "response.output_text.delta"]
        assert rs.get_final_response().output_text == echo
    assert "".join(deltas) == echo
    # A secret found only by its context (``api_key = ...``) comes back in the next request's
    # history without that context: it is still masked, with the mask the upstream first saw.
    value = "q8Vt3LmZp0XrW7sKd2Jf"
    first = c.messages.create(model="silver", max_tokens=50,
                              messages=user(f'config: api_key = "{value}"'))
    assert value in first.content[0].text  # type: ignore[union-attr]
    mask = fake.bodies()[-1]["messages"][0]["content"].split('"')[1]
    assert mask.startswith("[REDACTED:secret:")
    c.messages.create(model="silver", max_tokens=50, messages=[
        *user("hello"), {"role": "assistant", "content": f"the value is {value}"},
        *user("thanks")])
    assert fake.bodies()[-1]["messages"][1]["content"] == f"the value is {mask}"
    upstream = b"".join(r.raw for r in fake.requests)
    assert SECRET.encode() not in upstream and value.encode() not in upstream
    assert b"[REDACTED:github:" in upstream
    recs = records(ws, 9)
    assert all(r["redactions"] >= 1 for r in recs)
    for path in ws.state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and value.encode() not in data, path


def test_a_tier_can_forward_the_clients_own_key(ws: Workspace, gateway: Start,
                                                fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake, silver=", key: client"))
    ant(srv).messages.create(model="silver", max_tokens=5, messages=user("mine"))
    ant(srv).messages.create(model="gold", max_tokens=5, messages=user("theirs"))
    # (the anthropic SDK sends its key as a bearer token; Claude Code sends x-api-key)
    assert fake.requests[0].headers["authorization"] == "Bearer client-dummy"
    assert "x-api-key" not in fake.requests[0].headers
    assert fake.requests[1].headers["x-api-key"] == KEY
    assert "authorization" not in fake.requests[1].headers


# --------------------------------------------------------------------------- hostile input


def raw_http(srv: Server, data: bytes, timeout: float = 5) -> bytes:
    host, port = srv.bound  # type: ignore[misc]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return out


def post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n" + extra + b"\r\n" + body)


def test_malformed_json_oversized_body_huge_header_and_loops(ws: Workspace, gateway: Start,
                                                             fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake) + "gateway: {max_body_bytes: 100000}\n")
    answer = raw_http(srv, post(b"/v1/messages", b'{"model": "silver", "messages": [',
                                b"anthropic-version: 2023-06-01\r\n"))
    assert answer.startswith(b"HTTP/1.1 400") and b'"type":"invalid_request_error"' in answer
    answer = raw_http(srv, post(b"/v1/chat/completions", b"[1, 2]"))
    assert answer.startswith(b"HTTP/1.1 400") and b'"error":{"message":"the request body' in answer
    big = orjson.dumps({"model": "silver", "messages": user("x" * 200_000)})
    answer = raw_http(srv, post(b"/v1/messages", big))
    assert answer.startswith(b"HTTP/1.1 413") and b"gateway.max_body_bytes" in answer
    answer = raw_http(srv, b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 100_000
                      + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    answer = raw_http(srv, post(b"/v1/messages", orjson.dumps(
        {"model": "silver", "max_tokens": 5, "messages": user("x")}), b"x-burnless-via: 1\r\n"))
    assert answer.startswith(b"HTTP/1.1 508")
    assert raw_http(srv, b"GET /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    ).startswith(b"HTTP/1.1 405")
    assert fake.requests == [] and ws.ledger() == []
    # Still serving.
    m = ant(srv).messages.create(model="silver", max_tokens=5, messages=user("fine"))
    assert m.content[0].text == "echo: fine"  # type: ignore[union-attr]


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_and_is_recorded(
        ws: Workspace, gateway: Start, fakes: Any) -> None:
    fake = fakes("drip", drip=0.02)
    srv = gateway(tiers_on(fake))
    with ant(srv).messages.stream(model="silver", max_tokens=500, messages=user("long")) as s:
        for i, _ in enumerate(s.text_stream):
            if i == 5:
                break
    assert fake.cancelled.wait(5)  # the gateway closed the upstream request
    (rec,) = records(ws, 1)
    assert rec["status"] == "interrupted"
    assert rec["tokens"]["input"] == 100 and rec["tokens"]["output"] >= 1  # what was used
    assert rec["cost_source"] == "estimated" and rec["cost_usd"] > 0


def test_a_thousand_idle_connections_and_slow_clients(ws: Workspace, gateway: Start,
                                                      fakes: Any) -> None:
    fake = fakes()
    srv = gateway(tiers_on(fake) + "gateway: {request_timeout: 2}\n")
    host, port = srv.bound  # type: ignore[misc]
    idle = [socket.create_connection((host, port)) for _ in range(1000)]
    slow = [socket.create_connection((host, port)) for _ in range(50)]
    try:
        for s in slow:
            s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        m = ant(srv).messages.create(model="silver", max_tokens=5, messages=user("through"))
        assert m.content[0].text == "echo: through"  # type: ignore[union-attr]
        import urllib.request

        with urllib.request.urlopen(srv.url + "/metrics", timeout=5) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 3  # not held up by the 1,050 others
        for s in slow:  # a header line now and then does not keep a connection past the deadline
            s.sendall(b"X-A: b\r\n")
        slow[0].settimeout(8)
        assert slow[0].recv(100) == b""  # closed at its 2 s deadline (slack for a busy CI)
        assert time.monotonic() - t0 < 8
        idle[0].settimeout(6)
        assert idle[0].recv(100) == b""
    finally:
        for s in idle + slow:
            s.close()


def test_the_cost_of_a_truncated_stream_is_never_zero() -> None:
    """Unit: usage known only from message_start still prices the output seen."""
    from burnless.accounting.tokens import Tokens
    from burnless.gateway import core
    from burnless.settings import Tier

    tier = Tier(name="s", api="anthropic", model="claude-sonnet-4-5")
    tokens, usd, source = core.account(tier, None, Tokens(100, 1, 0, 0), 0, sent_bytes=0,
                                       output_bytes=400, partial=True)
    assert tokens.output == 100 and source == "estimated"
    assert usd == pytest.approx((100 * 3 + 100 * 15) / 1e6)
    tokens, usd, source = core.account(tier, None, None, 0, sent_bytes=4000, output_bytes=0)
    assert tokens.input == 1000 and source == "estimated" and usd is not None and usd > 0
    assert math.isclose(usd, 1000 * 3 / 1e6)
