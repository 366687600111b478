"""`burnless serve` as the gateway, driven as a subprocess: binding rules, the keys it reads from
its environment, config errors of the gateway's settings, and what the other commands import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anthropic
import orjson
import pytest

from burnless.sim.server import SimServer
from tests.conftest import Workspace
from tests.test_serve_review import serving

KEY = "sk-ant-api03-cli-gateway-KEY-0123456789abcdef"


def test_beyond_loopback_needs_insecure_no_auth(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    for host in ("0.0.0.0", "192.0.2.1", "example.com", "::"):
        p = ws.run("serve", "--host", host, "--port", "0", timeout=30)
        assert p.returncode == 2, (host, p.stderr)
        assert f"refusing to listen on {host}" in p.stderr and "--insecure-no-auth" in p.stderr
        assert "Traceback" not in p.stderr
    with serving(ws, "--host", "0.0.0.0", "--insecure-no-auth") as srv:
        assert srv.host == "0.0.0.0"
        assert srv.proc.stderr is not None
    # serving() checked: exit 0 on Ctrl-C; the warning was on the first line it read.


def test_localhost_is_loopback(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    with serving(ws, "--host", "localhost") as srv:
        assert srv.port > 0


def test_the_gateway_reads_the_tiers_keys_from_its_environment(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "sim.jsonl"
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # where `burnless serve` is started
    with SimServer(log=log) as sim:
        ws.config("tiers:\n"
                  f"  silver: {{api: anthropic, model: claude-haiku-4-5, base_url: '{sim.url}'}}\n")
        with serving(ws) as srv:
            with anthropic.Anthropic(base_url=srv.base, api_key="dummy",
                                     max_retries=0) as client:
                m = client.messages.create(model="silver", max_tokens=100,
                                           messages=[{"role": "user", "content": "hello"}],
                                           extra_headers={"x-model-affinity": "cli"})
            assert m.model == "claude-haiku-4-5"
    (rec,) = ws.ledger()
    assert rec["session"] == "cli" and rec["status"] == "ok" and rec["tier"] == "silver"
    (req,) = [r for r in map(orjson.loads, log.read_bytes().splitlines()) if r["method"] == "POST"]
    assert req["status"] == 200  # the sim demands a key: the gateway sent the tier's


@pytest.mark.parametrize("config, message", [
    ("tiers:\n  a: {api: openai, model: m, fallback: [b]}\n",
     "config.yaml:2: tiers.a.fallback.0: names tier 'b', which is not defined"),
    ("tiers:\n  a: {api: openai, model: m, fallback: [a]}\n",
     "tiers.a.fallback.0: names the tier itself"),
    ("tiers:\n  a: {api: openai, model: m, key: mine}\n",
     "tiers.a.key: must be 'env' (the key in api_key_env) or 'client'"),
    ("tiers:\n  a: {command: 'echo', key: client}\n", "tiers.a.key: key: client needs an api tier"),
    ("tiers:\n  a: {api: grpc, model: m}\n", "unknown api 'grpc'; known: anthropic, openai"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {passthrough: a}\n",
     "gateway.passthrough: tier 'a' is a command tier"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {passthroug: a}\n",
     "gateway.passthroug: unknown key; did you mean 'passthrough'?"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {max_sessions: 0}\n",
     "gateway.max_sessions: must be > 0"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {route_models: ['']}\n",
     "gateway.route_models.0: is empty"),
])
def test_gateway_config_errors(ws: Workspace, config: str, message: str) -> None:
    ws.config(config)
    p = ws.run("route", "a task")
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_api_key_env_defaults_per_kind(ws: Workspace) -> None:
    from burnless.config import load_config

    ws.config("tiers:\n  a: {api: openai, model: gpt-5}\n  b: {api: anthropic, model: x}\n"
              "  c: {api: openai, model: m, api_key_env: MY_KEY}\n  d: {command: echo}\n")
    cfg = load_config(ws.state / "config.yaml")
    assert [t.api_key_env for t in cfg.tiers.values()] == [
        "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_KEY", "ANTHROPIC_API_KEY"]


def imported(ws: Workspace, *args: str) -> set[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", *args],
                       cwd=ws.root, capture_output=True, text=True, timeout=60)
    return {m.group(1).strip() for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$",
                                                     p.stderr, re.M)}


def test_run_route_usage_and_help_never_import_the_gateway(ws: Workspace) -> None:
    from tests.conftest import fake

    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(fake('honest')).decode()}}}\n")
    for args in (["--help"], ["run", "write a.txt hi"], ["route", "a task"],
                 ["usage", "--period", "all"], ["metrics"]):
        mods = imported(ws, *args)
        assert "burnless" in mods, args  # the measurement saw burnless start
        heavy = {m for m in mods if m.split(".")[0] in ("aiohttp", "multidict", "yarl")
                 or m.startswith("burnless.gateway")}
        assert not heavy, (args, sorted(heavy)[:5])


def test_the_readme_gateway_config_loads(ws: Workspace) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Use it with Claude Code / any OpenAI client", 1)[1]
    ws.config(section.split("```yaml", 1)[1].split("```", 1)[0])
    p = ws.run("route", "anything", "--json")
    assert p.returncode == 0, p.stderr
    assert orjson.loads(p.stdout)["tier"] == "silver"


def test_doctor_on_gateway_tiers(ws: Workspace) -> None:
    ws.config("tiers:\n"
              "  qwen: {api: openai, model: qwen3-coder, base_url: 'http://127.0.0.1:9/v1', "
              "local: true, price: 0}\n"
              "  cc: {api: anthropic, model: claude-opus-4-8, key: client}\n")
    p = ws.run("doctor", "--json")
    checks = {c["name"]: c for c in orjson.loads(p.stdout)["checks"]}
    assert checks["tier qwen"]["status"] == "ok"  # a local OpenAI-compatible server: no key
    assert checks["tier cc"]["status"] == "ok" and "key: client" in checks["tier cc"]["detail"]
