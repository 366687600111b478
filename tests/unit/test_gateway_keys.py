"""Virtual keys on the gateway, in-process on loopback, the real SDKs as clients and the fake
provider as upstream.

LiteLLM's key budgets have been bypassed in several ways; each shape has a test here: a key
type whose budget is not enforced (every endpoint and stream, and keys without a budget of
their own still under the workspace's), end-user fields and headers that move the budgeted
identity, a master key that skips the meter (there is none: every key is metered and
recorded), and a process-local counter that parallel workers do not share (40 concurrent
clients here; two gateway processes in tests/cli/test_keys.py)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from burnless.config import load_config
from burnless.gateway import keys
from burnless.gateway.app import Server
from tests.conftest import Workspace, concurrently, parse_metrics, records, user
from tests.fakes.upstream import FakeUpstream, out_tokens

KEY = "sk-ant-api03-gatewaytest-KEY-0123456789abcdef"
OKEY = "sk-proj-gatewaytestKEY0123456789abcdefABCDEF"
HAIKU = (1.0, 5.0)  # USD per million, input and output


@pytest.fixture
def fake(fakes: Callable[..., FakeUpstream]) -> Callable[..., FakeUpstream]:
    return fakes


class Gw:
    """A keyed gateway: its config, its keys (name -> key), the server, open clients."""

    def __init__(self, ws: Workspace, config: str, **key_args: dict[str, Any]) -> None:
        ws.config(config)
        self.ws = ws
        self.cfg = load_config(cwd=ws.root)
        self.keys = {name: keys.create(self.cfg, name, **args)[0]
                     for name, args in key_args.items()}
        self.srv = Server(self.cfg, environ={"ANTHROPIC_API_KEY": KEY,
                                             "OPENAI_API_KEY": OKEY}).start()
        self.clients: list[Any] = []

    def ant(self, key: str | None, **kw: Any) -> anthropic.Anthropic:
        c = anthropic.Anthropic(base_url=self.srv.url, api_key=key, max_retries=0, **kw)
        self.clients.append(c)
        return c

    def oai(self, key: str, **kw: Any) -> openai.OpenAI:
        c = openai.OpenAI(base_url=self.srv.url + "/v1", api_key=key, max_retries=0, **kw)
        self.clients.append(c)
        return c

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        return self.http(path, None, headers)[0]

    def http(self, path: str, body: Any, headers: dict[str, str] | None = None
             ) -> tuple[int, bytes, dict[str, str]]:
        """A plain request (no SDK: it insists on sending some key)."""
        data = None if body is None else orjson.dumps(body)
        req = urllib.request.Request(self.srv.url + path, data=data, headers={
            "content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), resp.read(), _lower(resp.headers.items())
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), exc.read(), _lower(exc.headers.items())

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.srv.close()


def _lower(items: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


@pytest.fixture
def gw(ws: Workspace) -> Iterator[Callable[..., Gw]]:
    made: list[Gw] = []

    def start(config: str, **key_args: dict[str, Any]) -> Gw:
        g = Gw(ws, config, **key_args)
        made.append(g)
        return g

    yield start
    for g in made:
        g.close()


def tiers(fake: FakeUpstream, extra: str = "", local: FakeUpstream | None = None,
          **per_tier: str) -> str:
    lines = ["tiers:"]
    for name, model in (("gold", "claude-opus-4-8"), ("silver", "claude-sonnet-4-5"),
                        ("bronze", "claude-haiku-4-5")):
        lines.append(f"  {name}: {{api: anthropic, model: {model}, base_url: '{fake.url}'"
                     f"{per_tier.get(name, '')}}}")
    lines.append(f"  obronze: {{api: openai, model: gpt-5-nano, base_url: '{fake.url}/v1'}}")
    if local is not None:
        lines.append(f"  ollama: {{api: anthropic, model: qwen3, base_url: '{local.url}', "
                     "local: true, price: 0}")
    return "\n".join(lines) + "\n" + extra




def billed(fake: FakeUpstream) -> float:
    """What the greedy fake billed: every prompt byte / 4 in, the whole cap out, at haiku's."""
    return sum((out_tokens(r.raw.decode()) * HAIKU[0] + r.body["max_tokens"] * HAIKU[1]) / 1e6
               for r in fake.requests)


# --------------------------------------------------------------------------- who may call


def test_no_key_a_wrong_key_and_a_malformed_key_are_refused_before_anything(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    up = fake()
    g = gw(tiers(up), alice={})
    good = g.keys["alice"]
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")  # its id, not its secret
    msg = {"model": "silver", "max_tokens": 5, "messages": user("hi")}
    for headers in ({}, {"x-api-key": ""}, {"authorization": "Basic abc"},
                    {"anthropic-version": "2023-06-01"}):
        status, body, got = g.http("/v1/messages", msg, headers)
        assert status == 401 and got["www-authenticate"].startswith("Bearer"), body
        assert orjson.loads(body)["error"]["type"] == "authentication_error"
        assert b"needs a virtual key" in body
    for key in (wrong, "blk_00000000_" + "x" * 43, "sk-ant-api03-someone-elses-key"):
        with pytest.raises(anthropic.AuthenticationError) as err:
            g.ant(key).messages.create(model="silver", max_tokens=5, messages=user("hi"))
        assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        assert err.value.response.headers["www-authenticate"].startswith("Bearer")
        assert good not in err.value.response.text
    with pytest.raises(openai.AuthenticationError):
        g.oai(wrong).chat.completions.create(model="obronze", messages=user("hi"))
    with pytest.raises(openai.AuthenticationError):
        g.oai("nope").models.list()
    assert g.get("/healthz") == 200  # load balancers ask without a key
    assert g.get("/metrics") == 401 and g.get("/stats") == 401
    assert g.get("/metrics", {"authorization": f"Bearer {good}"}) == 200
    assert up.requests == [] and ws.ledger() == []  # a stranger leaves no record to fill a disk
    # The right key works, by either header.
    g.ant(good).messages.create(model="silver", max_tokens=5, messages=user("hi"))
    g.oai(good).chat.completions.create(model="obronze", messages=user("hi"))
    assert [r["key"] for r in records(ws, 2)] == ["alice", "alice"]


def test_the_clients_key_is_never_forwarded_upstream(ws: Workspace, gw: Callable[..., Gw],
                                                     fake: Any) -> None:
    up = fake()
    g = gw(tiers(up, silver=", key: client"), alice={})
    vk = g.keys["alice"]
    g.ant(vk).messages.create(model="bronze", max_tokens=5, messages=user("env key"))
    g.oai(vk).chat.completions.create(model="obronze", messages=user("env key"))
    # key: client with the virtual key in the credential slot: there is nothing of the
    # caller's own to forward (the virtual key never is): the ladder's next rung serves.
    served = g.ant(vk).messages.with_raw_response.create(model="silver", max_tokens=5,
                                                         messages=user("own key?"))
    assert served.headers["x-burnless-tier"] == "gold"
    # The virtual key as X-Burnless-Key: the caller's own credential goes to the key: client tier.
    own = "sk-ant-oat01-the-callers-own-subscription-token"
    g.ant(None, auth_token=own, default_headers={"x-burnless-key": vk}).messages.create(
        model="silver", max_tokens=5, messages=user("own key"))
    assert len(up.requests) == 4
    assert up.requests[0].headers["x-api-key"] == KEY
    assert up.requests[1].headers["authorization"] == f"Bearer {OKEY}"
    assert up.requests[2].headers["x-api-key"] == KEY  # gold, with the tier's key
    assert up.requests[3].headers["authorization"] == f"Bearer {own}"
    for r in up.requests:
        assert vk not in str(r.headers) and vk.encode() not in r.raw
        assert not any(k.startswith("x-burnless") and k != "x-burnless-via" for k in r.headers)
    recs = records(ws, 4)
    assert [r["key"] for r in recs] == ["alice"] * 4
    assert "the caller sent no credential of its own" in " ".join(recs[2]["route"]["reasons"])
    for path in ws.state.rglob("*"):  # only the hash is at rest
        if path.is_file():
            assert vk.encode() not in path.read_bytes(), path
            assert vk.split("_", 2)[2].encode() not in path.read_bytes(), path  # the secret


def test_two_different_keys_in_one_request_are_refused(ws: Workspace, gw: Callable[..., Gw],
                                                       fake: Any) -> None:
    up = fake()
    g = gw(tiers(up), alice={}, bob={})
    a, b = g.keys["alice"], g.keys["bob"]
    with pytest.raises(anthropic.AuthenticationError, match="two different virtual keys"):
        g.ant(a, default_headers={"x-api-key": b}).messages.create(
            model="bronze", max_tokens=5, messages=user("who pays?"))
    with pytest.raises(anthropic.AuthenticationError, match="two different"):
        g.ant(a, default_headers={"x-burnless-key": b}).messages.create(
            model="bronze", max_tokens=5, messages=user("who pays?"))
    assert up.requests == []


def test_a_revoked_key_is_refused_at_once_and_the_last_one_does_not_open_the_gateway(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    up = fake()
    g = gw(tiers(up), alice={}, bob={})
    client = g.ant(g.keys["alice"])
    client.messages.create(model="bronze", max_tokens=5, messages=user("before"))
    keys.revoke(g.cfg, "alice")
    with pytest.raises(anthropic.AuthenticationError, match="revoked"):
        client.messages.create(model="bronze", max_tokens=5, messages=user("after"))
    g.ant(g.keys["bob"]).messages.create(model="bronze", max_tokens=5, messages=user("bob"))
    keys.revoke(g.cfg, "bob")
    with pytest.raises(anthropic.AuthenticationError):
        g.ant(g.keys["bob"]).messages.create(model="bronze", max_tokens=5, messages=user("x"))
    status, body, _ = g.http("/v1/messages", {"model": "bronze", "max_tokens": 5,
                                              "messages": user("open now?")})
    assert status == 401, body
    # A key created while it runs is accepted from its first request.
    carol, _ = keys.create(g.cfg, "carol")
    g.ant(carol).messages.create(model="bronze", max_tokens=5, messages=user("carol"))
    assert [r.body["messages"][0]["content"] for r in up.requests] == ["before", "bob", "carol"]


def test_a_damaged_key_store_refuses_every_request(ws: Workspace, gw: Callable[..., Gw],
                                                   fake: Any) -> None:
    up = fake()
    g = gw(tiers(up), alice={})
    store = ws.state / "keys.json"
    store.write_text('{"v": 1, "keys": {"alice": {"hash": "not a hash"}}}')
    with pytest.raises(anthropic.InternalServerError, match="cannot be read"):
        g.ant(g.keys["alice"]).messages.create(model="bronze", max_tokens=5, messages=user("x"))
    assert up.requests == []


# --------------------------------------------------------------------------- budgets


def test_a_keys_daily_budget_refuses_with_429_and_sends_nothing(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    up = fake("greedy")
    limit = 0.004  # two requests of this size at haiku's price, not three
    g = gw(tiers(up), alice={"max_cost_per_day": limit}, bob={})
    alice, bob = g.ant(g.keys["alice"]), g.ant(g.keys["bob"])
    outcomes = []
    for i in range(4):
        try:
            alice.messages.create(model="bronze", max_tokens=300, messages=user(f"a{i}"))
            outcomes.append("ok")
        except anthropic.RateLimitError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            assert body["error"]["type"] == "budget_exceeded"
            assert "key 'alice': max_cost_per_day = $0.0040" in body["error"]["message"]
            assert exc.response.headers["x-should-retry"] == "false"
            outcomes.append("refused")
    assert outcomes[:2] == ["ok", "ok"] and outcomes[2:] == ["refused", "refused"]
    assert len(up.requests) == 2 and billed(up) <= limit
    bob.messages.create(model="bronze", max_tokens=300, messages=user("bob is not alice"))
    recs = records(ws, 5)
    assert [(r["key"], r["status"]) for r in recs] == [
        ("alice", "ok"), ("alice", "ok"), ("alice", "refused"), ("alice", "refused"),
        ("bob", "ok")]
    assert recs[2]["refused_by"] == "budget"


def test_a_keys_monthly_budget(ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    up = fake("greedy")
    from burnless.accounting.budget import today

    day = today()
    earlier = f"{day[:7]}-01" if day[8:] != "01" else None
    last_month = "2000-01-15"
    old = {"v": 1, "run_id": "r-x", "session": "", "seq": None, "role": "execution",
           "tier": "bronze", "model": "claude-haiku-4-5", "status": "ok", "audit": "skipped",
           "exit": None, "tokens": {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0},
           "cost_source": "priced", "duration_s": 1, "route": None, "redactions": 0,
           "cached": False, "task_id": "", "key": "alice"}
    lines = [{**old, "ts": f"{last_month}T10:00:00.000Z", "cost_usd": 5.0}]  # another month
    lines.append({**old, "ts": f"{earlier or day}T00:00:01.000Z", "cost_usd": 0.009})
    ws.state.joinpath("ledger.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n"
                                                           for x in lines))
    g = gw(tiers(up), alice={"max_cost_per_month": 0.01, "max_cost_per_day": 1.0})
    with pytest.raises(anthropic.RateLimitError, match="key 'alice': max_cost_per_month"):
        g.ant(g.keys["alice"]).messages.create(model="bronze", max_tokens=300,
                                               messages=user("over the month"))
    assert up.requests == []


def test_every_endpoint_and_stream_is_metered_against_the_key(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    """No request kind slips past a key's budget: JSON and streams, three protocols."""
    up = fake()
    g = gw(tiers(up), alice={"max_cost_per_day": 0.00001})  # below any call's worst case
    a, o = g.ant(g.keys["alice"]), g.oai(g.keys["alice"])
    calls: list[Callable[[], object]] = [
        lambda: a.messages.create(model="bronze", max_tokens=100, messages=user("json")),
        lambda: list(a.messages.create(model="bronze", max_tokens=100, messages=user("s"),
                                       stream=True)),
        lambda: o.chat.completions.create(model="obronze", max_tokens=100, messages=user("c")),
        lambda: list(o.chat.completions.create(model="obronze", max_tokens=100,
                                               messages=user("cs"), stream=True)),
        lambda: o.responses.create(model="obronze", max_output_tokens=100, input="r"),
        lambda: list(o.responses.create(model="obronze", max_output_tokens=100, input="rs",
                                        stream=True)),
    ]
    for call in calls:
        with pytest.raises((anthropic.RateLimitError, openai.RateLimitError)):
            call()
    assert up.requests == []
    recs = records(ws, len(calls))
    assert all(r["key"] == "alice" and r["refused_by"] == "budget" for r in recs)


def test_a_key_without_a_budget_is_still_under_the_workspaces(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    """No key skips the meter: budget.* binds every key, with or without limits of its own."""
    up = fake("greedy")
    g = gw(tiers(up, "budget: {max_cost_per_day: 0.002}\n"), admin={},
           ci={"max_cost_per_day": 100.0})
    g.ant(g.keys["admin"]).messages.create(model="bronze", max_tokens=300, messages=user("one"))
    for name in ("admin", "ci"):
        with pytest.raises(anthropic.RateLimitError, match="budget.max_cost_per_day"):
            g.ant(g.keys[name]).messages.create(model="bronze", max_tokens=300,
                                                messages=user("two"))
    assert len(up.requests) == 1


def test_40_concurrent_requests_on_one_key_never_exceed_its_budget(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    up = fake("greedy")
    limit = 0.02
    g = gw(tiers(up), alice={"max_cost_per_day": limit})
    def client(i: int) -> str:
        c = g.ant(g.keys["alice"])
        try:
            c.messages.create(model="bronze", max_tokens=1000,
                              messages=user(f"client {i} " + "x" * 200))
            return "ok"
        except anthropic.RateLimitError:
            return "refused"

    outcomes = concurrently(40, client)
    assert len(outcomes) == 40
    assert billed(up) <= limit + 1e-12
    assert outcomes.count("ok") == len(up.requests) >= 3 and outcomes.count("refused") > 0
    recs = records(ws, 40)
    assert sum(r["cost_usd"] for r in recs) == pytest.approx(billed(up), abs=1e-9)
    assert {r["key"] for r in recs} == {"alice"}


def test_end_user_fields_and_headers_cannot_move_spend_to_another_key_or_session(
        ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    """LiteLLM budgets the end user a request names (``user``, ``metadata.user_id``, an
    end-user header) instead of its key; here the key pays, whatever the request says."""
    up = fake("greedy")  # ~$0.0015 a request below: two fit in $0.004, three do not
    g = gw(tiers(up, "budget: {max_cost_per_session: 0.004}\n"),
           alice={"max_cost_per_day": 0.004}, bob={})
    a = g.ant(g.keys["alice"])
    bob = g.ant(g.keys["bob"], default_headers={"x-burnless-session": "shared"})
    bob.messages.create(model="bronze", max_tokens=300, messages=user("bob's turn"))
    a.messages.create(model="bronze", max_tokens=300, messages=user("alice"),
                      metadata={"user_id": "bob"})
    a.messages.create(model="bronze", max_tokens=300, messages=user("alice"), extra_headers={
        "x-end-user-id": "bob", "x-litellm-end-user-id": "bob", "x-burnless-session": "shared",
        "openai-organization": "bob", "x-burnless-label": "bob"})
    with pytest.raises(anthropic.RateLimitError, match="key 'alice': max_cost_per_day"):
        a.messages.create(model="bronze", max_tokens=300, messages=user("alice"),
                          extra_body={"user": "bob"})
    with pytest.raises(anthropic.BadRequestError, match="is not a session id"):
        a.messages.create(model="bronze", max_tokens=300, messages=user("alice"),
                          extra_headers={"x-model-affinity": "bob:shared"})
    # Had alice's request counted in bob's session "shared", this third one would not fit.
    bob.messages.create(model="bronze", max_tokens=300, messages=user("bob again"))
    recs = records(ws, 5)
    assert [(r["key"], r["session"], r["status"]) for r in recs] == [
        ("bob", "bob:shared", "ok"), ("alice", "", "ok"), ("alice", "alice:shared", "ok"),
        ("alice", "", "refused"), ("bob", "bob:shared", "ok")]


# --------------------------------------------------------------------------- tiers, labels


def test_a_key_may_only_use_its_tiers(ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    up, down = fake(), fake("503")
    config = tiers(up, "gateway: {route_models: ['claude-*']}\n", bronze=", fallback: [silver]")
    g = gw(config.replace(f"claude-haiku-4-5, base_url: '{up.url}'",
                          f"claude-haiku-4-5, base_url: '{down.url}'"),
           alice={"tiers": ("bronze",)})
    a = g.ant(g.keys["alice"])
    for model in ("silver", "gold", "burnless/auto", "claude-opus-4-8"):
        with pytest.raises(anthropic.PermissionDeniedError, match="may not use tier"):
            a.messages.create(model=model, max_tokens=5, messages=user("plan the migration"))
    # Its tier fails: no failover to a tier the key may not use.
    with pytest.raises(anthropic.APIStatusError) as err:
        a.messages.create(model="bronze", max_tokens=5, messages=user("hi"))
    assert err.value.status_code == 503 and up.requests == [] and len(down.requests) == 1
    models = {m.id for m in a.models.list()}
    assert models == {"burnless/auto", "bronze"}
    recs = records(ws, 5)
    assert [r["refused_by"] for r in recs[:4]] == ["policy"] * 4
    assert all(r["key"] == "alice" for r in recs)
    assert "may not fail over to silver" in " ".join(recs[4]["route"]["reasons"])


def test_a_keys_labels_join_the_requests(ws: Workspace, gw: Callable[..., Gw],
                                         fake: Any) -> None:
    up, local = fake(), fake()
    g = gw(tiers(up, "routing: {rules: [{labels: [team-cheap], tier: bronze}]}\n"
                 "gateway: {route_models: ['claude-*']}\n"
                 "policy: {sensitive_patterns: ['(?i)never-matches-anything']}\n", local=local),
           cheap={"labels": ("team-cheap",)}, private={"labels": ("sensitive",)})
    g.ant(g.keys["cheap"]).messages.create(model="claude-opus-4-8", max_tokens=5,
                                           messages=user("anything"))
    g.ant(g.keys["private"]).messages.create(model="silver", max_tokens=5,
                                             messages=user("anything"))
    assert up.requests[0].body["model"] == "claude-haiku-4-5"  # the label's rule: bronze
    assert len(up.requests) == 1 and len(local.requests) == 1  # sensitive: local only


def test_usage_groups_by_key(ws: Workspace, gw: Callable[..., Gw], fake: Any) -> None:
    from burnless.accounting.usage import report

    up = fake()
    g = gw(tiers(up, "cache: {responses: true}\n"), alice={}, bob={})
    for name, n in (("alice", 2), ("bob", 1)):
        for i in range(n):
            g.ant(g.keys[name]).messages.create(model="bronze", max_tokens=5,
                                                messages=user(f"{name} {i}"))
    g.ant(g.keys["bob"]).messages.create(model="bronze", max_tokens=5,
                                         messages=user("alice 0"))  # a cache hit: bob's
    recs = records(ws, 4)
    assert recs[-1]["cached"] is True and recs[-1]["key"] == "bob"
    rows = {r.key: r.stats for r in report(ws.state, by="key", period="all").rows}
    assert rows["alice"].calls == 2 and rows["bob"].calls == 1 and rows["bob"].cached_hits == 1
    assert rows["alice"].cost_usd == pytest.approx(sum(r["cost_usd"] for r in recs[:2]))
    status, text, _ = g.http("/metrics", None, {"x-api-key": g.keys["bob"]})
    samples = parse_metrics(text.decode())
    assert samples[("burnless_key_calls_total", frozenset({("key", "alice")}))] == 2
    assert samples[("burnless_key_cost_usd_total", frozenset({("key", "alice")}))] == \
        pytest.approx(rows["alice"].cost_usd)


def test_a_key_matches_only_its_own_secret(tmp_path: Path) -> None:
    from burnless.settings import KeySettings

    key, hashed = keys.new_key()
    m = keys.KEY_RE.fullmatch(key)
    assert m is not None and keys.HASH_RE.fullmatch(hashed) and key[4:12] in hashed
    vk = keys.VirtualKey("k", KeySettings(hash=hashed), tmp_path)
    assert vk.matches(m.group(2))
    assert not vk.matches(m.group(2)[:-1] + ("A" if m.group(2)[-1] != "A" else "B"))
    assert m.group(2) not in hashed
