"""Adversarial review of the API tier and the simulator: hostile clients, hostile servers.

Everything is real loopback HTTP: the simulator's server (``SimServer``), the real anthropic
SDK inside ``burnless.workers.anthropic_api``, and for the misbehaving-server cases a small
raw-socket server that answers exactly the bytes a test asks for.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.agent import BurnlessAgent
from burnless.config import Tier
from burnless.prompt import Prompt
from burnless.sim import server as sim_server_module
from burnless.sim.billing import CacheControlError, PromptCache, split_blocks
from burnless.sim.server import MAX_BODY_BYTES, SimServer, parse_fault
from burnless.workers import Call, Reply
from burnless.workers import anthropic_api as api
from tests.conftest import Workspace

KEY = "sk-ant-api03-review-KEY-0123456789abcdef"
MODEL = "claude-sonnet-4-6"  # caches from 1024 tokens
RULES = "Project rules: keep functions small, typed and tested.\n" * 100  # ~1,400 tokens
PROMPT = Prompt(
    "executor",
    '<burnless-protocol role="executor" version="1">\n',
    RULES,
    "",
    "",
    "<task>\nexplain the cache\n</task>\n",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own exponential backoff in milliseconds (a server's retry-after is still obeyed)."""
    monkeypatch.setattr(api, "BACKOFF_S", 0.02)


# --------------------------------------------------------------------------- the simulator


@dataclass
class Sim:
    server: SimServer
    log: Path
    clock: Clock

    @property
    def url(self) -> str:
        return self.server.url

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines()]


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    started: list[SimServer] = []

    def start(fault: str | None = None) -> Sim:
        log = tmp_path / f"sim-{len(started)}.jsonl"
        clock = Clock()
        server = SimServer(log=log, fault=fault, clock=clock).start()
        started.append(server)
        return Sim(server, log, clock)

    yield start
    for s in started:
        s.close()


@pytest.fixture
def sim(sims: Callable[..., Sim]) -> Sim:
    return sims()


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return str(parts.hostname), int(parts.port or 80)


def send(
    url: str,
    body: Any = None,
    *,
    method: str = "POST",
    path: str = "/v1/messages",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection; the answer's status, headers and JSON (or bytes)."""
    conn = http.client.HTTPConnection(*address(url), timeout=10)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"content-type": "application/json", "x-api-key": KEY, **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        got = {k.lower(): v for k, v in resp.getheaders()}
        try:
            return resp.status, got, json.loads(payload)
        except ValueError:
            return resp.status, got, payload
    finally:
        conn.close()


def exchange(url: str, data: bytes, *, timeout: float = 5.0) -> tuple[int, dict[str, str], Any]:
    """Raw bytes out, one parsed HTTP answer back (the server must answer within timeout)."""
    with socket.create_connection(address(url), timeout=timeout) as s:
        s.sendall(data)
        resp = http.client.HTTPResponse(s)
        resp.begin()
        payload = resp.read()
        got = {k.lower(): v for k, v in resp.getheaders()}
        resp.close()
    try:
        return resp.status, got, json.loads(payload)
    except ValueError:
        return resp.status, got, payload


def is_api_error(body: Any, error_type: str) -> bool:
    return (
        isinstance(body, dict)
        and body.get("type") == "error"
        and body["error"]["type"] == error_type
        and isinstance(body["error"]["message"], str)
    )


def message(task: str = "explain the cache", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1000,
        "system": [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": f"<task>\n{task}\n</task>"}],
        **extra,
    }


# --------------------------------------------------------------------------- a hostile server


@dataclass
class Request:
    head: bytes
    headers: dict[str, str]
    body: bytes
    at: float


Handler = Callable[[socket.socket, Request, threading.Event], None]


class Hostile:
    """A raw-socket HTTP server: request i on it is answered by ``handlers[i]`` (the last one
    for every request after), one request per connection."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = handlers
        self.requests: list[Request] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            request = read_request(conn)
            if request is None:
                return
            with self._lock:
                index = len(self.requests)
                self.requests.append(request)
            self.handlers[min(index, len(self.handlers) - 1)](conn, request, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self._sock.close()
        with self._lock:
            for c in self._conns:
                c.close()


@pytest.fixture
def hostile() -> Iterator[Callable[..., Hostile]]:
    servers: list[Hostile] = []

    def start(*handlers: Handler) -> Hostile:
        servers.append(Hostile(*handlers))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length", "0"))
    while len(body) < size:
        more = conn.recv(65536)
        if not more:
            return None
        body += more
    return Request(head, headers, body, time.monotonic())


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(name: str, data: dict[str, Any]) -> bytes:
    return chunk(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
)
STARTED_USAGE = {
    "input_tokens": 40,
    "output_tokens": 1,
    "cache_creation_input_tokens": 1500,
    "cache_read_input_tokens": 0,
}


def start_events(usage: dict[str, int] | None = None) -> bytes:
    msg = {
        "id": "msg_h",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or STARTED_USAGE,
    }
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "hel"},
    }
    return (
        event("message_start", {"type": "message_start", "message": msg})
        + event("content_block_start", start)
        + event("content_block_delta", delta)
    )


def end_events(usage: dict[str, int]) -> bytes:
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "lo"},
    }
    return (
        event("content_block_delta", delta)
        + event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + event(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage},
        )
        + event("message_stop", {"type": "message_stop"})
        + b"0\r\n\r\n"
    )


FINAL_USAGE = {
    "input_tokens": 40,
    "output_tokens": 7,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 1500,
}


def complete(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    usage = dict(FINAL_USAGE, output_tokens=1)
    conn.sendall(SSE_HEAD + start_events(usage) + end_events(FINAL_USAGE))


def json_error(status: int, error_type: str, text: str, extra: str = "") -> Handler:
    def answer(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": text}})
        conn.sendall(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )

    return answer


def silent(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    stop.wait(10)  # accepts, reads the request, never answers


def pings_forever(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    conn.sendall(SSE_HEAD + start_events())
    while not stop.wait(0.2):
        conn.sendall(event("ping", {"type": "ping"}))  # each read succeeds: no read timeout


def slow_headers(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.2):
        conn.sendall(b"x-slow: 1\r\n")  # headers that never end


def ends_early(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    conn.sendall(SSE_HEAD + start_events() + b"0\r\n\r\n")  # a clean end, but no message_stop


def cut_off(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    conn.sendall(SSE_HEAD + start_events())  # then the connection drops mid-body
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def overloaded_mid_stream(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    conn.sendall(SSE_HEAD + start_events() + event("error", err) + b"0\r\n\r\n")


# --------------------------------------------------------------------------- API tier calls


def tier(url: str | None, **kw: Any) -> Tier:
    options: dict[str, Any] = {
        "name": "silver",
        "api": "anthropic",
        "model": MODEL,
        "base_url": url,
        "env": {"ANTHROPIC_API_KEY": KEY},
    }
    options.update(kw)
    return Tier(**options)


def call(
    tmp_path: Path,
    t: Tier,
    *,
    timeout: float = 10.0,
    redact: Callable[[str], str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Reply:
    log = tmp_path / "logs" / "r-1.log"
    c = Call(
        t, PROMPT, "s", "r-1", tmp_path, tmp_path, timeout, log, redact=redact, on_line=on_line
    )
    return api.dispatch(c)


def run_log(tmp_path: Path) -> str:
    return (tmp_path / "logs" / "r-1.log").read_text()


@pytest.fixture(scope="module", autouse=True)
def _sdk_imported() -> None:
    """Pay the SDK's import once, so per-test deadlines measure the network, not the import."""
    import anthropic  # noqa: F401


def billed(record: dict[str, Any]) -> Tokens:
    u = record["usage"]
    return Tokens(
        u["input_tokens"],
        u["output_tokens"],
        u["cache_read_input_tokens"],
        u["cache_creation_input_tokens"],
    )


# =========================================================================== API tier


@pytest.mark.parametrize("status", [429, 500, 529])
def test_transient_errors_are_retried_and_only_the_answer_is_billed(
    tmp_path: Path, sims: Callable[..., Sim], status: int
) -> None:
    sim = sims(f"{status},times=2")
    reply = call(tmp_path, tier(sim.url))
    assert not reply.failed, reply.error
    records = sim.records()
    assert [r["status"] for r in records] == [status, status, 200]
    assert [r["usage"] for r in records[:2]] == [None, None]  # an error answer bills nothing
    assert reply.output.usage == billed(records[2])
    assert any("succeeded after 2 retries" in f for f in reply.output.findings)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_client_errors_are_not_retried(
    tmp_path: Path, sims: Callable[..., Sim], status: int
) -> None:
    sim = sims(str(status))
    reply = call(tmp_path, tier(sim.url))
    assert reply.exit_code == 1 and reply.failed
    assert [r["status"] for r in sim.records()] == [status]
    assert reply.output.usage == Tokens()
    assert "gave up" not in reply.error


def test_retry_after_is_obeyed(tmp_path: Path, hostile: Callable[..., Hostile]) -> None:
    server = hostile(
        json_error(429, "rate_limit_error", "slow down", "retry-after: 1\r\n"), complete
    )
    reply = call(tmp_path, tier(server.url))
    assert not reply.failed, reply.error
    first, second = server.requests
    assert second.at - first.at >= 0.95  # not our 20 ms backoff: the server's second
    assert "retrying in 1.00s" in run_log(tmp_path)


def test_a_retry_after_beyond_the_deadline_gives_up_at_once(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    # Before the fix a retry-after over 30 s was ignored: 3 requests in 60 ms, all refused.
    server = hostile(json_error(529, "overloaded_error", "busy", "retry-after: 45\r\n"))
    t0 = time.monotonic()
    reply = call(tmp_path, tier(server.url), timeout=5)
    assert time.monotonic() - t0 < 2
    assert len(server.requests) == 1
    assert reply.error.endswith("(retry-after 45s, no time left to retry within 5s)")


def test_retries_stop_at_the_call_deadline(tmp_path: Path, sims: Callable[..., Sim]) -> None:
    sim = sims("500,sleep=0.5")
    t0 = time.monotonic()
    reply = call(tmp_path, tier(sim.url), timeout=1.2)
    assert time.monotonic() - t0 < 1.9
    assert reply.failed
    assert 1 <= len(sim.records()) <= 3


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.monotonic()
    reply = call(tmp_path, tier(f"http://127.0.0.1:{port}"))
    assert time.monotonic() - t0 < 3
    assert reply.exit_code == 1
    assert reply.error.startswith(f"cannot reach http://127.0.0.1:{port}")
    assert reply.error.endswith("(gave up after 3 attempts)")
    assert reply.output.usage == Tokens()


def test_a_server_that_never_answers_times_out(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    server = hostile(silent)
    t0 = time.monotonic()
    reply = call(tmp_path, tier(server.url), timeout=1)
    assert time.monotonic() - t0 < 1.6
    assert reply.timed_out and reply.exit_code is None
    assert reply.output.usage is None  # nothing reported: the ledger estimates
    assert len(server.requests) == 1


@pytest.mark.parametrize("handler", [pings_forever, slow_headers], ids=["pings", "headers"])
def test_a_trickling_server_cannot_hold_the_call_past_its_deadline(
    tmp_path: Path, hostile: Callable[..., Hostile], handler: Handler
) -> None:
    # Before the fix: the SDK's timeout is per read, so bytes every 200 ms kept the call
    # alive forever (a ``timeout: 1`` call was still running after 20 s).
    server = hostile(handler)
    t0 = time.monotonic()
    reply = call(tmp_path, tier(server.url), timeout=1)
    assert time.monotonic() - t0 < 1.8
    assert reply.timed_out and reply.error == "timed out after 1s"
    if handler is pings_forever:  # message_start reported usage: it was billed
        assert reply.output.usage == Tokens(40, 1, 0, 1500)


def test_a_stream_without_message_stop_is_not_a_success(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    # Before the fix: "hel" with stop_reason None was returned as a successful answer.
    server = hostile(ends_early)
    reply = call(tmp_path, tier(server.url))
    assert reply.exit_code == 1 and reply.output.is_error
    assert "the answer stream ended before message_stop" in reply.error
    assert len(server.requests) == 3  # retried like a dropped connection
    # Each attempt's stream reported its usage: all three were billed.
    assert reply.output.usage == Tokens(120, 3, 0, 4500)


def test_a_dropped_stream_is_retried_and_both_attempts_are_in_the_usage(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    # Before the fix: httpx's RemoteProtocolError escaped dispatch (a traceback, no ledger).
    server = hostile(cut_off, complete)
    reply = call(tmp_path, tier(server.url))
    assert not reply.failed, reply.error
    assert reply.output.text == "hello"
    assert reply.output.usage == Tokens(40, 1, 0, 1500) + Tokens(40, 7, 1500, 0)
    (note,) = [f for f in reply.output.findings if "succeeded after 1 retry" in f]
    assert note == (
        "succeeded after 1 retry; the usage includes what the failed attempts reported "
        f"(incomplete answer from {server.url})"
    )


def test_ctrl_c_after_a_billed_failed_attempt_keeps_its_usage(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    def multiline(conn: socket.socket, request: Request, stop: threading.Event) -> None:
        line = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "a\nb"},
        }
        conn.sendall(SSE_HEAD + start_events() + event("content_block_delta", line))
        stop.wait(5)

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    server = hostile(cut_off, multiline)
    reply = call(tmp_path, tier(server.url), on_line=interrupt)
    assert reply.interrupted and reply.error == "interrupted"
    assert reply.output.usage == Tokens(80, 2, 0, 3000)  # both attempts' message_start


def test_an_error_event_mid_stream_is_retried(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    server = hostile(overloaded_mid_stream, complete)
    reply = call(tmp_path, tier(server.url))
    assert not reply.failed, reply.error
    assert "attempt 1: API error in the answer stream overloaded_error: Overloaded" in run_log(
        tmp_path
    )
    assert reply.output.usage == Tokens(40, 1, 0, 1500) + Tokens(40, 7, 1500, 0)


def test_the_key_is_never_logged_even_when_the_server_echoes_it(
    tmp_path: Path, hostile: Callable[..., Hostile]
) -> None:
    server = hostile(json_error(400, "invalid_request_error", f"bad key {KEY} for this org"))
    reply = call(tmp_path, tier(server.url), redact=None)  # policy.redact_secrets: false
    assert reply.exit_code == 1
    assert "bad key [REDACTED] for this org" in reply.error
    text = run_log(tmp_path)
    assert KEY not in text and "[REDACTED]" in text
    assert all(KEY not in f for f in reply.output.findings)
    # It did reach the server, as a header (the SDK 2.14 sends a Bearer token).
    (request,) = server.requests
    headers = request.headers
    assert headers.get("authorization") == f"Bearer {KEY}" or headers.get("x-api-key") == KEY


def test_the_key_and_base_url_come_only_through_pass_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hostile: Callable[..., Hostile],
    sim: Sim,
) -> None:
    server = hostile(complete)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "tok-from-the-shell")  # the SDK would read it
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    # Listed nowhere: not seen, nothing sent.
    bare = call(tmp_path, tier(server.url, env={}))
    assert "$ANTHROPIC_API_KEY is not set or not passed" in bare.error
    assert server.requests == []
    # pass_env: the caller's key and ANTHROPIC_BASE_URL reach the tier; nothing else does.
    passed = tier(None, env={}, pass_env=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"))
    reply = call(tmp_path, passed)
    assert not reply.failed, reply.error
    (request,) = server.requests
    assert "tok-from-the-shell" not in request.head.decode("latin-1")
    assert KEY in request.head.decode("latin-1")
    # The tier's env may set ANTHROPIC_BASE_URL too (here, the simulator).
    via_env = call(
        tmp_path, tier(None, env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": sim.url})
    )
    assert not via_env.failed, via_env.error
    assert len(sim.records()) == 1 and len(server.requests) == 1


def test_the_sdk_is_imported_only_when_an_api_tier_runs() -> None:
    code = (
        "import sys, burnless.workers, burnless.workers.anthropic_api, burnless.sim.server\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anthropic', 'httpx',"
        " 'httpx2')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]"


def test_ledger_matches_what_the_simulator_billed_after_retries(
    ws: Workspace, sims: Callable[..., Sim], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = sims("529,times=1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    tier_yaml = f"api: anthropic, base_url: '{sim.url}', pass_env: [ANTHROPIC_API_KEY]"
    ws.config(f"tiers:\n  silver: {{{tier_yaml}, model: claude-sonnet-4-6}}\nplanner: null\n")
    (ws.state / "prefix.md").write_text(RULES, encoding="utf-8")
    agent = BurnlessAgent(ws.state / "config.yaml", workspace=ws.root)
    first = agent.run("explain the auth module", "s")
    second = agent.run("review the session code", "s")
    assert first.ok and second.ok, (first.summary, second.summary)
    records = sim.records()
    assert [r["status"] for r in records] == [529, 200, 200]
    ledger = ws.ledger()
    assert [Tokens.from_dict(r["tokens"]) for r in ledger] == [billed(r) for r in records[1:]]
    assert ledger[1]["tokens"]["cache_read"] > 1000  # turn 2 read what turn 1 wrote
    for rec in ledger:
        t = rec["tokens"]
        price = (t["input"] * 3 + t["output"] * 15 + t["cache_write"] * 3.75) + t[
            "cache_read"
        ] * 0.3
        assert rec["cost_source"] == "priced"
        assert rec["cost_usd"] == pytest.approx(price / 1e6, abs=1e-9)
    assert KEY not in (ws.state / "ledger.jsonl").read_text()
    assert KEY not in sim.log.read_text()


# =========================================================================== the HTTP server


def test_invalid_json_and_non_object_bodies_are_400(sim: Sim) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        status, _, body = send(sim.url, raw=raw)
        assert status == 400 and is_api_error(body, "invalid_request_error"), raw


def test_a_huge_body_is_refused_without_being_read(sim: Sim) -> None:
    # Before the fix the server waited for all 64 MiB (and would have held them in memory).
    size = MAX_BODY_BYTES * 2
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {size}\r\n\r\n"
    ).encode()
    status, headers, body = exchange(sim.url, head + b'{"model": "')
    assert status == 413 and is_api_error(body, "request_too_large")
    assert headers.get("connection") == "close"
    assert sim.records()[-1]["status"] == 413


@pytest.mark.parametrize("length", ["-1", "-5", "abc", "1_0", "+3", "99999999999999999999999"])
def test_a_bad_content_length_is_a_400_not_a_hang(sim: Sim, length: str) -> None:
    # Before the fix: -1 read until EOF (a hang for a keep-alive client), -5, "abc" and the
    # huge one dropped the connection with a traceback on the server's stderr, "1_0" and
    # "+3" (Python's int() takes them) waited for 10 and 3 bytes.
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()
    status, _, body = exchange(sim.url, head + b"{}", timeout=3)
    assert status in (400, 413) and body["type"] == "error"


def test_a_body_shorter_than_its_content_length_is_a_400(sim: Sim) -> None:
    with socket.create_connection(address(sim.url), timeout=5) as s:
        s.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n"
            "content-length: 500\r\n\r\n{}".encode()
        )
        s.shutdown(socket.SHUT_WR)  # the client gives up sending
        resp = http.client.HTTPResponse(s)
        resp.begin()
        assert resp.status == 400
        assert is_api_error(json.loads(resp.read()), "invalid_request_error")


def test_a_missing_content_length_is_an_empty_body(sim: Sim) -> None:
    head = f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n\r\n".encode()
    status, _, body = exchange(sim.url, head)
    assert status == 400 and "JSON object" in body["error"]["message"]


def test_a_chunked_request_body_is_read(sim: Sim) -> None:
    # Before the fix the body was ignored (a 400), and its chunks were then parsed as the
    # next request on the connection.
    data = json.dumps(message()).encode()
    conn = http.client.HTTPConnection(*address(sim.url), timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/messages",
            body=iter([data[:100], data[100:]]),
            headers={"x-api-key": KEY, "content-type": "application/json"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        assert json.loads(resp.read())["type"] == "message"
        conn.request("GET", "/")  # the same connection still works
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    bad = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
    status, _, body = exchange(sim.url, bad)
    assert status == 400 and is_api_error(body, "invalid_request_error")


def test_content_type_is_not_required(sim: Sim) -> None:
    status, _, body = send(sim.url, message(), headers={"content-type": "text/plain"})
    assert status == 200 and body["type"] == "message"


def test_request_fields_are_validated_like_the_api(sim: Sim) -> None:
    def status_of(**changes: Any) -> tuple[int, Any]:
        body = message()
        for k, v in changes.items():
            if v is ...:
                del body[k]
            else:
                body[k] = v
        status, _, answer = send(sim.url, body)
        return status, answer

    for bad in (
        {"max_tokens": ...},
        {"max_tokens": -1},
        {"max_tokens": "10"},
        {"max_tokens": True},
        {"max_tokens": 1.5},
        {"messages": []},
        {"messages": ...},
        {"messages": {"role": "user"}},
        {"messages": [{"role": "system", "content": "x"}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": [1]}]},
        {"model": ...},
        {"model": ""},
        {"system": 5},  # before the fix: a 500 "simulator internal error"
        {"system": {"type": "text", "text": "x"}},  # before: its keys were system blocks
        {"tools": 5},  # before the fix: a 500
        {"tools": {"name": "Write"}},
        {"system": [{"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}]},
    ):
        status, answer = status_of(**bad)
        assert status == 400 and is_api_error(answer, "invalid_request_error"), bad

    # Accepted, as the API does: any model id (documented), unknown fields, turns of one
    # role in a row (combined), an assistant turn first or last (a prefill).
    for ok in (
        {"model": "claude-not-a-real-model"},
        {"temperature": 0.2, "metadata": {"user_id": "u"}, "some_new_field": [1]},
        {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "A"}]},
        {"tools": None, "system": None},
    ):
        status, answer = status_of(**ok)
        assert status == 200 and answer["type"] == "message", (ok, answer)


def test_max_tokens_0_prewarms_the_cache_without_an_answer(sim: Sim) -> None:
    status, _, warm = send(sim.url, message(max_tokens=0))
    assert status == 200
    assert warm["content"] == [] and warm["usage"]["output_tokens"] == 0
    assert warm["usage"]["cache_creation_input_tokens"] > 1000
    _, _, real = send(sim.url, message())
    assert real["usage"]["cache_read_input_tokens"] == warm["usage"]["cache_creation_input_tokens"]


def test_the_stdlibs_own_refusals_have_the_api_shape(sim: Sim) -> None:
    # Before the fix these were HTML pages.
    status, _, body = exchange(sim.url, b"PUT /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n")
    assert status == 501 and is_api_error(body, "api_error")
    status, _, body = exchange(
        sim.url, b"GET / HTTP/1.1\r\n" + b"x-long: " + b"a" * 70000 + b"\r\n\r\n"
    )
    assert status in (400, 431) and is_api_error(body, "invalid_request_error")
    status, _, body = exchange(sim.url, b"GET / HTTP/1.1 extra\r\n\r\n")
    assert status == 400 and is_api_error(body, "invalid_request_error")


def test_bad_fault_specs_are_400_not_500(sim: Sim) -> None:
    for spec in ("sleep=inf", "sleep=nan", "sleep=-1", "times=-1", "600", "boom"):
        with pytest.raises(ValueError, match="fault spec"):
            parse_fault(spec)
        status, _, body = send(sim.url, message(), headers={"x-sim-fault": spec})
        assert status == 400 and is_api_error(body, "invalid_request_error"), spec


def test_many_concurrent_clients(sim: Sim) -> None:
    # Before the fix the listen backlog was 5: of 100 clients connecting at once, some were
    # reset and others waited a second for a SYN retransmit.
    n = 100
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            status, _, body = send(sim.url, message(f"task {i % 4}"))
        except OSError as e:
            status, body = 0, {"error": repr(e)}
        with lock:
            results.append((status, body))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert time.monotonic() - t0 < 10
    assert [s for s, _ in results] == [200] * n, [b for s, b in results if s != 200][:3]
    usages = [b["usage"] for _, b in results]
    # The shared system prompt was written exactly once (billing is serialised); every
    # other request read it.
    writes = [u for u in usages if u["cache_creation_input_tokens"]]
    assert len(writes) == 1
    assert sum(1 for u in usages if u["cache_read_input_tokens"]) == n - 1
    assert len(sim.records()) == n


def test_a_client_that_disconnects_mid_answer_does_not_hurt_the_server(
    sim: Sim, capfd: pytest.CaptureFixture[str]
) -> None:
    # Before the fix a reset between two requests of a keep-alive connection printed a
    # socketserver traceback on the server's stderr (`burnless sim serve`'s terminal).
    body = json.dumps(message(stream=True)).encode()
    for fault in ("sleep=0.05", "", "") * 6:
        s = socket.create_connection(address(sim.url), timeout=5)
        s.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n"
            f"x-sim-fault: {fault}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        if not fault:
            s.recv(200)  # the first bytes of the stream, then gone
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset, mid-answer or just after it
    time.sleep(0.3)
    status, _, answer = send(sim.url, message())
    assert status == 200 and answer["type"] == "message"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "internal error" not in err


def test_a_stalled_client_is_dropped_and_others_are_served(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim_server_module, "BODY_TIMEOUT_S", 0.5)
    with socket.create_connection(address(sim.url), timeout=5) as s:
        s.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n"
            "content-length: 100\r\n\r\n{".encode()
        )
        assert send(sim.url, message())[0] == 200  # served while the other one stalls
        resp = http.client.HTTPResponse(s)
        resp.begin()  # the server gave up on the body after 0.5 s
        assert resp.status == 408
        assert resp.getheader("connection") == "close"


def test_hostile_prompt_text_is_parsed_in_linear_time(sim: Sim) -> None:
    # Before the fix each of these took 10-60 s of CPU in a server thread (quadratic regexes:
    # unclosed tags, many "append" words, a run of blank lines before a file task's
    # working-directory lookup); now well under a second each.
    tools = [{"name": "Write", "input_schema": {"type": "object"}}]
    for body in (
        message(
            "append x to " * 16000,
            system='<burnless-protocol role="' * 16000 + "<capsule>" * 16000 + "<task>\n" * 16000,
        ),
        message("create file a.txt with content hi", system=" \n" * 40000, tools=tools),
    ):
        t0 = time.monotonic()
        status, _, answer = send(sim.url, body)
        assert status == 200 and answer["type"] == "message"
        assert time.monotonic() - t0 < 3


def test_an_unwritable_log_does_not_stop_the_answers(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Before the fix every request was dropped without an answer (and a traceback printed).
    with SimServer(log=tmp_path / "no-such-dir" / "sim.jsonl") as server:
        assert send(server.url, message())[0] == 200
        assert send(server.url, message())[0] == 200
    err = capfd.readouterr().err
    assert err.count("burnless sim: cannot write the log") == 1 and "Traceback" not in err


def test_the_request_log_never_holds_a_key(sim: Sim) -> None:
    secrets = ["sk-ant-a-111", "sk-ant-b-222", "sk-ant-c-333"]
    send(
        sim.url,
        message(),
        headers={"X-Api-Key": secrets[0], "Proxy-Authorization": f"Basic {secrets[0]}"},
    )
    send(sim.url, message(), headers={"x-api-key": "", "Authorization": f"bearer {secrets[1]}"})
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nX-API-KEY: {secrets[2]}\r\n"
        f"Proxy-Authorization: Basic {secrets[2]}\r\ncontent-length: -1\r\n\r\n"
    ).encode()
    assert exchange(sim.url, head)[0] == 400
    text = sim.log.read_text()
    assert not [s for s in secrets if s in text]
    records = sim.records()
    assert [r["status"] for r in records] == [200, 200, 400]
    assert records[1]["headers"]["authorization"] == "[REDACTED]"
    assert records[0]["headers"]["proxy-authorization"] == "[REDACTED]"
    # A request refused before its headers could be parsed is logged without them.
    assert records[2]["headers"] == {} and records[2]["method"] is None


# =========================================================================== streaming usage


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.mark.parametrize("task", ["explain the cache", "create file a.txt with content hi"])
def test_streamed_usage_matches_the_json_answer(sims: Callable[..., Sim], task: str) -> None:
    tools = [{"name": "Write", "input_schema": {"type": "object"}}]
    body = message(task, tools=tools)
    plain_sim, stream_sim = sims(), sims()  # the same cache state for both
    _, _, plain = send(plain_sim.url, body)
    status, headers, raw = send(stream_sim.url, dict(body, stream=True))
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == [
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]["usage"]
    delta = events[-2][1]["usage"]
    final = plain["usage"]
    for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        assert start[k] == delta[k] == final[k], k
    assert start["cache_creation"] == final["cache_creation"]
    assert start["output_tokens"] <= delta["output_tokens"] == final["output_tokens"]
    # The blocks rebuild the JSON answer, tool input included.
    blocks: list[dict[str, Any]] = []
    for name, data in events:
        if name == "content_block_start":
            blocks.append(dict(data["content_block"]))
            blocks[-1]["_json"] = ""
        elif name == "content_block_delta":
            d = data["delta"]
            if d["type"] == "text_delta":
                blocks[data["index"]]["text"] += d["text"]
            else:
                blocks[data["index"]]["_json"] += d["partial_json"]
    for b in blocks:
        partial = b.pop("_json")
        if b["type"] == "tool_use":
            b["input"] = json.loads(partial)
    assert blocks == plain["content"]
    assert events[-2][1]["delta"]["stop_reason"] == plain["stop_reason"]
    assert stream_sim.records()[0]["usage"] == plain_sim.records()[0]["usage"]


# =========================================================================== billing rules


def text(tokens: int, tag: str, ttl: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": f"{tag}:".ljust(tokens * 4, "x")}
    if ttl:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return block


def req(*content: dict[str, Any], model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": list(content)}],
        **extra,
    }


def tool(name: str, tokens: int, ttl: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"name": name, "description": "d" * (tokens * 4), "input_schema": {}}
    if ttl:
        t["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return t


def test_five_breakpoints_across_tools_system_and_messages_are_a_400(sim: Sim) -> None:
    body = req(
        text(10, "m", "5m"),
        tools=[tool("a", 10, "1h"), tool("b", 10, "1h")],
        system=[text(10, "s1", "5m"), text(10, "s2", "5m")],
    )
    status, _, answer = send(sim.url, body)
    assert status == 400 and "Found 5" in answer["error"]["message"]
    assert sim.records()[-1]["usage"] is None  # nothing billed, nothing cached
    assert len(sim.server.state.cache) == 0


def test_a_lookback_hit_refreshes_the_entry_it_found() -> None:
    clock = Clock()
    cache = PromptCache(clock)

    def turn(n: int, bp: int) -> dict[str, Any]:
        return req(*(text(200, f"b{i}", "5m" if i == bp else None) for i in range(1, n + 1)))

    cache.bill(turn(10, 10))
    clock.now += 240
    assert cache.bill(turn(15, 15)).cache_read_input_tokens == 2000  # read at block 10
    clock.now += 240  # 8 minutes after block 10 was written, 4 after it was read
    assert cache.bill(turn(10, 10)).cache_read_input_tokens == 2000


def test_a_1h_entry_is_refreshed_by_an_hour() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    r = req(text(1500, "doc", "1h"), text(5, "q"))
    cache.bill(r)
    clock.now += 3000
    assert cache.bill(r).cache_read_input_tokens == 1500
    clock.now += 3500  # 6,500 s after the write, 3,500 after the hit
    assert cache.bill(r).cache_read_input_tokens == 1500
    clock.now += 3600
    assert cache.bill(r).cache_read_input_tokens == 0


def test_mixed_ttls_1h_must_come_first_and_bill_as_the_docs_say() -> None:
    cache = PromptCache(Clock())
    system = [text(1500, "sys", "1h")]
    first = cache.bill(req(text(600, "hist1", "5m"), text(5, "q"), system=system))
    assert (first.ephemeral_1h_input_tokens, first.ephemeral_5m_input_tokens) == (1500, 600)
    # The history changed: A = the 1-hour entry (read), B = A, C = the 5-minute breakpoint.
    second = cache.bill(req(text(700, "hist2", "5m"), text(5, "q"), system=system))
    assert second.cache_read_input_tokens == 1500
    assert (second.ephemeral_1h_input_tokens, second.ephemeral_5m_input_tokens) == (0, 700)
    assert second.input_tokens == 5
    # 1h on tools, 5m on the system: accepted. 5m on tools, 1h on the system: a 400.
    cache.bill(req(text(5, "q"), tools=[tool("t", 900, "1h")], system=[text(900, "s", "5m")]))
    with pytest.raises(CacheControlError, match="1h"):
        cache.bill(req(text(5, "q"), tools=[tool("t", 900, "5m")], system=[text(900, "s", "1h")]))
    # Automatic caching with a 1h TTL lands on the last block, after an explicit 5m one.
    with pytest.raises(CacheControlError, match="1h"):
        cache.bill(
            req(
                text(900, "a", "5m"),
                text(900, "b"),
                cache_control={"type": "ephemeral", "ttl": "1h"},
            )
        )
    with pytest.raises(CacheControlError, match="ttl"):
        cache.bill(req(text(900, "a", "10m")))


def test_tool_definitions_are_a_cache_level_of_their_own() -> None:
    cache = PromptCache(Clock())
    tools = [tool("Read", 600), tool("Write", 600, "5m")]
    first = cache.bill(req(text(5, "q"), tools=tools, system="be terse"))
    tools_only = sum(b.tokens for b in split_blocks({"model": MODEL, "tools": tools}))
    assert first.cache_creation_input_tokens == tools_only > 1024
    # Another system prompt: the tools prefix is still read.
    other = cache.bill(req(text(5, "q"), tools=tools, system="be verbose"))
    assert other.cache_read_input_tokens == first.cache_creation_input_tokens
    # A tool changed: nothing is read.
    changed = [tool("Read", 601), tools[1]]
    assert cache.bill(req(text(5, "q"), tools=changed)).cache_read_input_tokens == 0


def test_tool_result_and_image_blocks_can_be_breakpoints() -> None:
    cache = PromptCache(Clock())
    tools = [{"name": "Read", "input_schema": {"type": "object"}}]
    use = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "y" * 6000}
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QUJD" * 1200},
    }

    def convo(*, mark_result: bool, tail: list[dict[str, Any]]) -> dict[str, Any]:
        res = dict(result, cache_control={"type": "ephemeral"}) if mark_result else result
        return {
            "model": MODEL,
            "tools": tools,
            "messages": [
                {"role": "user", "content": "read a.py"},
                {"role": "assistant", "content": [use]},
                {"role": "user", "content": [res, *tail]},
            ],
        }

    first = cache.bill(convo(mark_result=True, tail=[]))
    assert first.cache_creation_input_tokens > 1500 and first.input_tokens == 0
    # The next turn moves the breakpoint to an image after the result: it reads the prefix
    # up to the result (the breakpoint's own cache_control is not part of the prefix).
    marked_image = dict(image, cache_control={"type": "ephemeral"})
    second = cache.bill(convo(mark_result=False, tail=[marked_image]))
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == estimate_tokens(
        orjson.dumps(image, option=orjson.OPT_SORT_KEYS)
    )
    assert (
        cache.bill(convo(mark_result=False, tail=[marked_image])).cache_creation_input_tokens == 0
    )


def test_minimum_cacheable_length_over_http(sim: Sim) -> None:
    # Haiku 4.5 needs 4,096 tokens, Opus 4.7 2,048, Sonnet 4.6 1,024: a 3,000-token prompt is
    # cached by the last two only, silently (no error), and an unknown model uses 1,024.
    prefix = [text(3000, "doc", "5m")]
    for model, cached in (
        ("claude-haiku-4-5", False),
        ("claude-opus-4-7", True),
        (MODEL, True),
        ("my-local-model", True),
    ):
        body = req(text(5, "q"), model=model, system=prefix)
        send(sim.url, body)
        _, _, again = send(sim.url, body)
        assert (again["usage"]["cache_read_input_tokens"] == 3000) is cached, model
        if not cached:
            assert again["usage"]["input_tokens"] == 3005


def test_entries_are_per_model_string(sim: Sim) -> None:
    body = req(text(5000, "doc", "5m"))
    send(sim.url, body)
    for model, hit in (("claude-haiku-4-5", False), ("claude-haiku-4-5-20251001", False)):
        _, _, answer = send(sim.url, dict(body, model=model))
        assert (answer["usage"]["cache_read_input_tokens"] > 0) is hit
    _, _, same = send(sim.url, body)
    assert same["usage"]["cache_read_input_tokens"] == 5000


def test_cache_entries_expire_on_the_servers_clock(sim: Sim) -> None:
    body = message()
    _, _, first = send(sim.url, body)
    sim.clock.now += 299
    assert send(sim.url, body)[2]["usage"]["cache_read_input_tokens"] > 0
    sim.clock.now += 299  # refreshed by the hit: still alive
    assert send(sim.url, body)[2]["usage"]["cache_read_input_tokens"] > 0
    sim.clock.now += 300
    expired = send(sim.url, body)[2]["usage"]
    assert expired["cache_read_input_tokens"] == 0
    assert expired["cache_creation_input_tokens"] == first["usage"]["cache_creation_input_tokens"]
