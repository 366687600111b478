"""OpenTelemetry spans (burnless[otel]), driven as subprocesses against a fake OTLP/HTTP
collector on loopback (tests/fakes/otlp.py): `burnless run`'s calls and the gateway's upstream
attempts arrive as spans with the GenAI attributes; nothing of OpenTelemetry is imported
without OTEL_EXPORTER_OTLP_ENDPOINT; a collector that is down or silent fails nothing and
delays the end of a run by the exit flush bound at most."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import orjson
import pytest

from burnless.accounting.telemetry import EXIT_FLUSH_S
from tests.cli.conftest import serving
from tests.cli.test_serve import imported
from tests.conftest import Workspace, fake
from tests.fakes.otlp import Collector
from tests.fakes.upstream import FakeUpstream

KEY = "sk-ant-api03-telemetry-KEY-0123456789abcdef"
OTEL = "OTEL_EXPORTER_OTLP_ENDPOINT"
CLIENT = 3  # SpanKind.CLIENT in OTLP
ERROR = 2  # StatusCode.ERROR


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as c:
        yield c


def claude_json_tier(ws: Workspace, extra: str = "") -> None:
    ws.config("tiers:\n"
              f"  silver: {{command: {orjson.dumps(fake('claude-json')).decode()}, "
              "format: claude-json}\n"
              "planner: null\n" + extra)


def test_run_calls_are_spans_with_the_genai_attributes(ws: Workspace,
                                                       collector: Collector) -> None:
    claude_json_tier(ws)
    p = ws.run("run", "write a.txt hello", "--session", "otel", env={OTEL: collector.url})
    assert p.returncode == 0, p.stderr
    (span,) = collector.wait(1)
    (rec,) = ws.ledger()
    a = span.attributes
    assert span.name == "invoke_agent claude-haiku-4-5" and span.kind == CLIENT
    assert a["gen_ai.operation.name"] == "invoke_agent"  # an agent CLI's loop, not one request
    assert a["gen_ai.provider.name"] == "anthropic"  # it speaks claude -p's format
    assert a["gen_ai.request.model"] == "claude-haiku-4-5"
    # The convention counts cached tokens in the input; the ledger keeps the four apart.
    assert a["gen_ai.usage.input_tokens"] == 100 + 8000 + 2000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 8000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 2000
    assert a["gen_ai.usage.output_tokens"] == 50
    assert rec["tokens"] == {"input": 100, "output": 50, "cache_read": 8000,
                             "cache_write": 2000}
    assert a["burnless.cost_usd"] == pytest.approx(0.0123) == rec["cost_usd"]
    assert (a["burnless.tier"], a["burnless.role"], a["burnless.session"]) == (
        "silver", "execution", "otel")
    assert a["burnless.run_id"] == rec["run_id"] and a["burnless.status"] == "ok"
    assert span.resource["service.name"] == "burnless"
    # The ledger keeps duration_s to the millisecond.
    assert span.end_ns - span.start_ns == pytest.approx(rec["duration_s"] * 1e9, abs=0.6e6)
    assert span.status_code != ERROR


def test_a_refusal_is_an_error_span(ws: Workspace, collector: Collector) -> None:
    claude_json_tier(ws, "budget: {max_cost_per_day: 1}\n")  # no price for its model: refused
    p = ws.run("run", "write a.txt hello", env={OTEL: collector.url,
                                                "OTEL_SERVICE_NAME": "ci-agents"})
    assert p.returncode == 4, p.stderr
    (span,) = collector.wait(1)
    assert span.status_code == ERROR and span.attributes["error.type"] == "budget"
    assert span.attributes["burnless.refused_by"] == "budget"
    assert span.attributes["burnless.status"] == "refused"
    assert span.resource["service.name"] == "ci-agents"  # the standard variables win


def test_gateway_attempts_are_spans(ws: Workspace, collector: Collector,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv(OTEL, collector.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # spans leave while it serves
    with FakeUpstream() as up:
        ws.config("tiers:\n"
                  f"  bronze: {{api: anthropic, model: claude-haiku-4-5, base_url: '{up.url}'}}\n")
        p = ws.run("keys", "create", "alice")
        assert p.returncode == 0, p.stderr
        with serving(ws) as srv:
            with anthropic.Anthropic(base_url=srv.base, api_key=p.stdout.strip(), max_retries=0,
                                     default_headers={"x-burnless-session": "s1"}) as c:
                c.messages.create(model="bronze", max_tokens=20,
                                  messages=[{"role": "user", "content": "hi"}])
                with c.messages.stream(model="bronze", max_tokens=20,
                                       messages=[{"role": "user", "content": "hi"}]) as s:
                    s.get_final_message()
            spans = collector.wait(2)  # before the server stops: exported as it runs
            assert len(spans) == 2
    recs = ws.ledger()
    for span, rec in zip(spans, recs, strict=True):
        a = span.attributes
        assert span.name == "chat claude-haiku-4-5"
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "anthropic"
        assert a["gen_ai.usage.input_tokens"] == 100 + 20 + 10  # the fake's usage
        assert a["gen_ai.usage.cache_read.input_tokens"] == 10
        assert a["gen_ai.usage.cache_creation.input_tokens"] == 20
        assert a["gen_ai.usage.output_tokens"] == rec["tokens"]["output"] > 0
        assert a["burnless.cost_usd"] == pytest.approx(rec["cost_usd"])
        assert a["burnless.key"] == "alice" and a["burnless.session"] == "alice:s1"
        assert a["burnless.client"].startswith("Anthropic/Python")


@pytest.mark.in_process
def test_nothing_is_imported_without_an_endpoint(ws: Workspace, collector: Collector) -> None:
    claude_json_tier(ws)
    mods = imported(ws, "run", "write a.txt hi")
    assert "burnless" in mods
    assert not {m for m in mods if m.startswith("opentelemetry") or "telemetry" in m}
    env = os.environ.copy()
    try:
        os.environ[OTEL] = collector.url
        mods = imported(ws, "run", "write b.txt hi")
        assert "opentelemetry.sdk.trace" in mods and "burnless.accounting.telemetry" in mods
        os.environ["OTEL_SDK_DISABLED"] = "true"
        mods = imported(ws, "run", "write c.txt hi")
        assert not {m for m in mods if m.startswith("opentelemetry")}
        assert "burnless.accounting.telemetry" in mods  # it read the switch, nothing more
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert len(collector.wait(1)) == 1


def timed_run(ws: Workspace, task: str, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    p = ws.run("run", task, env=env)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return elapsed


def test_a_collector_that_is_down_or_silent_fails_nothing_and_barely_waits(
        ws: Workspace, collector: Collector) -> None:
    claude_json_tier(ws)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        black_hole = f"http://127.0.0.1:{silent.getsockname()[1]}"
        live = timed_run(ws, "write a.txt hi", {OTEL: collector.url})
        down = timed_run(ws, "write b.txt hi", {OTEL: refused})
        hole = timed_run(ws, "write c.txt hi", {OTEL: black_hole})
    # Without the exit bound, the SDK waits for its export timeout and retries (10 s and more).
    margin = 1.5  # a loaded machine
    assert down <= live + EXIT_FLUSH_S + margin, (live, down)
    assert hole <= live + EXIT_FLUSH_S + margin, (live, hole)
    assert [r["status"] for r in ws.ledger()] == ["ok"] * 3
    assert len(collector.wait(1)) == 1


def test_without_the_extra_a_run_says_so_once_and_goes_on(ws: Workspace, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "opentelemetry"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no opentelemetry here')\n")
    ws.config("tiers:\n"
              f"  silver: {{command: {orjson.dumps(fake('claude-json')).decode()}, "
              "format: claude-json}\n"
              "  gold: {command: " + orjson.dumps(fake("claude-json")).decode()
              + ", format: claude-json}\n")
    p = ws.run("run", "write a.txt hi", env={OTEL: "http://127.0.0.1:9",
                                             "PYTHONPATH": str(shadow.parent)})
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("install burnless[otel]") == 1, p.stderr  # two calls, one warning
    assert len(ws.ledger()) == 2
