"""`burnless keys create | list | revoke` and `burnless serve` with virtual keys, driven as
subprocesses: the store on disk, the binding rule, two gateway processes sharing one key's
budget, `usage --by key`, keys declared in config.yaml."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from tests.cli.conftest import serving
from tests.cli.test_serve import imported
from tests.conftest import Workspace, concurrently
from tests.fakes.upstream import FakeUpstream, out_tokens

KEY = "sk-ant-api03-cli-keys-KEY-0123456789abcdef"
KEY_RE = r"blk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}"


def config(ws: Workspace, url: str = "http://127.0.0.1:9", extra: str = "") -> None:
    ws.config("tiers:\n"
              f"  silver: {{api: anthropic, model: claude-sonnet-4-5, base_url: '{url}'}}\n"
              f"  bronze: {{api: anthropic, model: claude-haiku-4-5, base_url: '{url}'}}\n"
              + extra)


def create(ws: Workspace, *args: str) -> str:
    p = ws.run("keys", "create", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_create_prints_the_key_once_and_stores_only_its_hash(ws: Workspace) -> None:
    import re

    config(ws)
    p = ws.run("keys", "create", "alice", "--budget", "5", "--monthly", "50",
               "--tiers", "silver", "--label", "team-a", "-l", "ci")
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert re.fullmatch(KEY_RE, key), p.stdout  # stdout is the key alone: $(burnless keys ...)
    assert "shown only now" in p.stderr and key not in p.stderr
    store = ws.state / "keys.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    data = orjson.loads(store.read_bytes())["keys"]["alice"]
    assert data["max_cost_per_day"] == 5 and data["max_cost_per_month"] == 50
    assert data["tiers"] == ["silver"] and data["labels"] == ["team-a", "ci"]
    secret = key.split("_", 2)[2]
    assert secret not in store.read_text() and data["hash"].startswith(f"sha256:{key[4:12]}:")
    code, listed = ws.json("keys", "list")
    assert code == 0 and [k["name"] for k in listed["keys"]] == ["alice"]
    assert key not in str(listed) and secret not in str(listed)
    p = ws.run("keys", "list")
    assert p.returncode == 0 and "alice" in p.stdout and "$5.00" in p.stdout, p.stdout


@pytest.mark.parametrize("args, message", [
    (["bad name"], "key name 'bad name': 1-64 letters"),
    (["-x"], "No such option"),
    (["a", "--tiers", "gold"], "--tiers: no tier named 'gold'"),
    (["a", "--budget", "-1"], "--budget -1: expected a number of USD >= 0"),
    (["a", "--monthly", "nan"], "--monthly nan: expected a number of USD >= 0"),
    (["a", "--label", "x,y"], "--label 'x,y'"),
])
def test_create_refuses_bad_arguments(ws: Workspace, args: list[str], message: str) -> None:
    config(ws)
    p = ws.run("keys", "create", *args)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not (ws.state / "keys.json").exists()


def test_duplicates_revoke_and_json_errors(ws: Workspace) -> None:
    config(ws)
    create(ws, "alice")
    p = ws.run("keys", "create", "alice")
    assert p.returncode == 2 and "exists already" in p.stderr
    code, out = ws.json("keys", "revoke", "bob")
    assert code == 2 and out["ok"] is False and "keys: alice" in out["error"]
    p = ws.run("keys", "revoke", "alice")
    assert p.returncode == 0 and "revoked" in p.stdout
    code, out = ws.json("keys", "list")
    assert code == 0 and out == {"keys": []}
    assert "no virtual keys" in ws.run("keys", "list").stdout


def test_keys_never_imports_the_http_stack(ws: Workspace) -> None:
    config(ws)
    for args in (["keys", "list"], ["keys", "create", "a"]):
        mods = imported(ws, *args)
        assert "burnless.gateway.keys" in mods, args  # the measurement saw the command run
        heavy = {m for m in mods if m.split(".")[0] in ("aiohttp", "multidict", "yarl", "rich")
                 or m.startswith("burnless.gateway.app")}
        assert not heavy, (args, sorted(heavy)[:5])


def test_help_lists_keys_with_examples(ws: Workspace) -> None:
    assert "keys" in ws.run("--help").stdout
    out = ws.run("keys", "--help").stdout
    assert "burnless keys create alice --budget 5" in out and "revoke" in out


# --------------------------------------------------------------------------- serving


def test_keys_allow_binding_beyond_loopback_and_every_request_needs_one(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeUpstream() as up:
        config(ws, up.url)
        p = ws.run("serve", "--host", "0.0.0.0", "--port", "0", timeout=30)
        assert p.returncode == 2 and "burnless keys create" in p.stderr, p.stderr
        key = create(ws, "alice")
        with serving(ws, "--host", "0.0.0.0") as srv:
            assert srv.host == "0.0.0.0"
            with anthropic.Anthropic(base_url=srv.base, api_key=key, max_retries=0) as c:
                c.messages.create(model="silver", max_tokens=5,
                                  messages=[{"role": "user", "content": "hi"}])
            with anthropic.Anthropic(base_url=srv.base, api_key="sk-nope", max_retries=0) as c:
                with pytest.raises(anthropic.AuthenticationError):
                    c.messages.create(model="silver", max_tokens=5,
                                      messages=[{"role": "user", "content": "hi"}])
            # Revoking the last key does not open a gateway that listens beyond loopback.
            assert ws.run("keys", "revoke", "alice").returncode == 0
            with anthropic.Anthropic(base_url=srv.base, api_key=key, max_retries=0) as c:
                with pytest.raises(anthropic.AuthenticationError):
                    c.messages.create(model="silver", max_tokens=5,
                                      messages=[{"role": "user", "content": "hi"}])
    assert len(up.requests) == 1 and up.requests[0].headers["x-api-key"] == KEY
    assert [r["key"] for r in ws.ledger()] == ["alice"]


def test_a_damaged_store_stops_serve_from_starting(ws: Workspace) -> None:
    config(ws)
    (ws.state / "keys.json").write_text("{not json")
    p = ws.run("serve", "--port", "0", timeout=30)
    assert p.returncode == 2 and "keys.json: damaged" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    p = ws.run("keys", "list")
    assert p.returncode == 2 and "keys.json: damaged" in p.stderr


def test_two_gateway_processes_share_one_keys_budget(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A per-process counter would let N workers spend N times the limit; the budget is on
    disk, under one lock, for every process of the workspace."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    limit = 0.012
    with FakeUpstream("greedy") as up:
        config(ws, up.url)
        key = create(ws, "alice", "--budget", str(limit))
        with serving(ws) as one, serving(ws) as two:
            def client(i: int) -> str:
                base = (one, two)[i % 2].base
                with anthropic.Anthropic(base_url=base, api_key=key, max_retries=0) as c:
                    try:
                        c.messages.create(model="bronze", max_tokens=1000, messages=[
                            {"role": "user", "content": f"client {i} " + "x" * 200}])
                        return "ok"
                    except anthropic.RateLimitError:
                        return "refused"

            outcomes = concurrently(16, client)
        billed = sum((out_tokens(r.raw.decode()) * 1.0 + 1000 * 5.0) / 1e6 for r in up.requests)
    assert len(outcomes) == 16 and outcomes.count("refused") > 0
    assert billed <= limit + 1e-12 and outcomes.count("ok") == len(up.requests) >= 2
    assert {r["key"] for r in ws.ledger()} == {"alice"}


def test_usage_by_key(ws: Workspace) -> None:
    config(ws)
    base: dict[str, Any] = {
        "v": 1, "ts": "2026-01-05T10:00:00.000Z", "run_id": "r-1", "session": "s", "seq": None,
        "role": "execution", "tier": "silver", "model": "claude-sonnet-4-5", "status": "ok",
        "audit": "skipped", "exit": None, "cost_source": "priced", "duration_s": 1.0,
        "tokens": {"input": 10, "output": 5, "cache_read": 0, "cache_write": 0},
        "route": None, "redactions": 0, "cached": False, "task_id": "t"}
    lines = [{**base, "key": "alice", "cost_usd": 0.5}, {**base, "key": "alice", "cost_usd": 0.25},
             {**base, "key": "bob", "cost_usd": 1.0}, {**base, "cost_usd": 2.0},
             {**base, "key": "bob", "status": "refused", "cost_usd": 0.0}]
    (ws.state / "ledger.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    code, rep = ws.json("usage", "--by", "key", "--period", "all")
    assert code == 0
    rows = {r["key"]: r for r in rep["rows"]}
    assert rows["alice"]["calls"] == 2 and rows["alice"]["cost_usd"] == 0.75
    assert rows["bob"]["calls"] == 1 and rows["bob"]["refusals"] == 1
    assert rows[None]["cost_usd"] == 2.0  # `run`'s own calls carry no key
    table = ws.run("usage", "--by", "key", "--period", "all").stdout
    assert "Usage by key" in table and "alice" in table and "\n-" in table, table


def test_keys_declared_in_the_config(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from burnless.gateway.keys import new_key

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    key, hashed = new_key()
    with FakeUpstream() as up:
        config(ws, up.url, "gateway:\n  keys:\n"
               f"    ci: {{hash: '{hashed}', tiers: [bronze], max_cost_per_day: 1}}\n")
        listed = ws.json("keys", "list")[1]["keys"]
        assert [(k["name"], k["source"]) for k in listed] == [
            ("ci", str(ws.state / "config.yaml"))]
        p = ws.run("keys", "revoke", "ci")
        assert p.returncode == 2 and "declared in" in p.stderr and "config.yaml" in p.stderr
        p = ws.run("keys", "create", "ci")
        assert p.returncode == 2 and "already declared" in p.stderr
        with serving(ws) as srv:
            with anthropic.Anthropic(base_url=srv.base, api_key=key, max_retries=0) as c:
                c.messages.create(model="bronze", max_tokens=5,
                                  messages=[{"role": "user", "content": "hi"}])
                with pytest.raises(anthropic.PermissionDeniedError):
                    c.messages.create(model="silver", max_tokens=5,
                                      messages=[{"role": "user", "content": "hi"}])
    assert [r["key"] for r in ws.ledger()] == ["ci", "ci"]


@pytest.mark.parametrize("entry, message", [
    ("{hash: 'blk_0123abcd_" + "x" * 43 + "'}", "gateway.keys.ci.hash: must be the key's hash"),
    ("{hash: 'sha256:0123abcd:" + "0" * 32 + ":" + "0" * 64 + "', tiers: [gold]}",
     "gateway.keys.ci.tiers.0: names tier 'gold', which is not defined"),
    ("{hash: 'sha256:0123abcd:" + "0" * 32 + ":" + "0" * 64 + "', max_cost_per_day: -2}",
     "gateway.keys.ci.max_cost_per_day: must be >= 0"),
    ("{hash: 'sha256:0123abcd:" + "0" * 32 + ":" + "0" * 64 + "', labels: ['a b']}",
     "gateway.keys.ci.labels.0: 'a b' is not a label"),
    ("{hash: 'sha256:0123abcd:" + "0" * 32 + ":" + "0" * 64 + "', budget: 3}",
     "gateway.keys.ci.budget: unknown key"),
])
def test_config_key_errors(ws: Workspace, entry: str, message: str) -> None:
    config(ws, extra=f"gateway:\n  keys:\n    ci: {entry}\n")
    p = ws.run("route", "a task")
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert "config.yaml:" in p.stderr


def test_a_name_in_both_places_is_an_error(ws: Workspace, tmp_path: Path) -> None:
    config(ws)
    create(ws, "ci")
    hashed = orjson.loads((ws.state / "keys.json").read_bytes())["keys"]["ci"]["hash"]
    config(ws, extra=f"gateway:\n  keys:\n    ci: {{hash: '{hashed}'}}\n")
    p = ws.run("keys", "list")
    assert p.returncode == 2 and "also declared in" in p.stderr, p.stderr
    p = ws.run("serve", "--port", "0", timeout=30)
    assert p.returncode == 2 and "also declared in" in p.stderr, p.stderr


def test_doctor_checks_the_key_store(ws: Workspace) -> None:
    """`burnless doctor` says whether the gateway's keys can be read and are kept from other
    users (it said nothing about them: a damaged keys.json showed only when serve refused to
    start)."""
    config(ws)

    def keys_check() -> dict[str, Any] | None:
        p = ws.run("doctor", "--json")
        found = [c for c in orjson.loads(p.stdout)["checks"] if c["name"] == "virtual keys"]
        return found[0] if found else None

    assert keys_check() is None  # no keys: nothing to say
    create(ws, "alice", "--budget", "2")
    check = keys_check()
    assert check is not None and check["status"] == "ok", check
    assert "1 key(s), 1 with limits of their own" in check["detail"]
    store = ws.state / "keys.json"
    store.chmod(0o644)
    check = keys_check()
    assert check is not None and check["status"] == "warn" and "chmod 600" in check["detail"]
    store.write_text("{not json")
    check = keys_check()
    assert check is not None and check["status"] == "fail", check
    assert "refuses to start" in check["detail"]
