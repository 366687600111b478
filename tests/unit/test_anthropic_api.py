"""The ``api: anthropic`` tier, through the real CLI and SDK against the simulator on loopback,
and against hostile servers: a small raw-socket server that answers exactly the bytes a test asks
for (errors, retry-after, silence, trickles, streams cut short); retries, deadlines, the usage
of every billed attempt, the key never logged."""

from __future__ import annotations

import os
import signal
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

import orjson
import pytest

from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.agent import BurnlessAgent
from burnless.prompt import Prompt
from burnless.settings import Tier
from burnless.sim.server import SimServer
from burnless.workers import Call, Reply
from burnless.workers import anthropic_api as api
from burnless.workers.anthropic_api import base_url, build_request, describe
from tests.conftest import Workspace, fake
from tests.unit.conftest import API_KEY, MODEL, RULES, Sim

KEY = "sk-ant-api03-test-KEY-0123456789abcdef"
# USD per million tokens: input, output, cache write (5 min), cache read.
PRICES = {"claude-sonnet-4-5": (3.0, 15.0, 3.75, 0.30), "claude-opus-4-8": (5.0, 25.0, 6.25, 0.50)}
# ~7 KB: with the protocol header, well above the 1,024-token minimum cacheable length.
PREFIX_MD = "Project rules: keep functions small, typed and tested; no global state.\n" * 100


class LoggedSim:
    def __init__(self, server: SimServer, log: Path) -> None:
        self.server, self.log = server, log

    @property
    def url(self) -> str:
        return self.server.url

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_bytes().splitlines()
        return [r for r in map(orjson.loads, lines) if r["method"] == "POST"]


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[SimServer] = []

    def start(fault: str | None = None) -> LoggedSim:
        log = tmp_path / f"sim-{len(servers)}.jsonl"  # outside the workspace (no audit noise)
        server = SimServer(log=log, fault=fault).start()
        servers.append(server)
        return LoggedSim(server, log)

    yield start
    for s in servers:
        s.close()


def api_config(ws: Workspace, url: str, *, planner: bool = False, extra: str = "") -> Workspace:
    tier = f"base_url: '{url}', pass_env: [ANTHROPIC_API_KEY]"
    text = (
        "tiers:\n"
        f"  gold: {{api: anthropic, model: claude-opus-4-8, {tier}}}\n"
        f"  silver: {{api: anthropic, model: claude-sonnet-4-5, {tier}{extra}}}\n"
        + ("" if planner else "planner: null\n")
    )
    (ws.state / "prefix.md").write_text(PREFIX_MD, encoding="utf-8")
    return ws.config(text)


def run(ws: Workspace, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {"ANTHROPIC_API_KEY": KEY, **kw.pop("env", {})}
    return ws.run("run", *args, env=env, **kw)


def run_json(ws: Workspace, *args: str, **kw: Any) -> tuple[int, dict[str, Any], str]:
    p = run(ws, *args, "--json", **kw)
    assert p.stdout.strip(), p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, orjson.loads(p.stdout), p.stderr


def expected(prompt: Prompt, model: str) -> dict[str, Any]:
    """What the next call must be billed: the previous turn wrote everything but its last
    context block (and the task), so that is read; the last block is written."""
    tok = estimate_tokens
    blocks = [b for b in prompt.blocks if b]
    cached = tok(prompt.stable_prefix) + sum(tok(b) for b in blocks[:-1])
    return {
        "input": tok(prompt.task),
        "cache_read": cached if blocks else 0,
        "cache_write": tok(blocks[-1]) if blocks else tok(prompt.stable_prefix),
    }


def hand_cost(model: str, t: dict[str, int]) -> float:
    i, o, w, r = PRICES[model]
    return (t["input"] * i + t["output"] * o + t["cache_write"] * w + t["cache_read"] * r) / 1e6


# --------------------------------------------------------------------------- the session


def test_each_turn_reads_the_cache_the_previous_turn_wrote(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory()
    api_config(ws, sim.url, planner=True)
    agent = BurnlessAgent(ws.state / "config.yaml", workspace=ws.root)
    tasks = ["explain the auth module", "review the session code", "list the open items"]

    first = agent.next_prompt("s", tasks[0])
    assert first.role == "planner" and first.blocks == ()
    code, res, _ = run_json(ws, tasks[0], "--session", "s")
    assert code == 0, res
    assert [c["role"] for c in res["calls"]] == ["planning", "execution"]
    assert res["plan"]  # the api planner's plan reached the executor

    wanted = []
    for task in tasks[1:]:
        prompt = BurnlessAgent(workspace=ws.root).next_prompt("s", task)
        assert prompt.role == "executor"
        wanted.append(expected(prompt, "claude-sonnet-4-5"))
        code, res, _ = run_json(ws, task, "--session", "s")
        assert code == 0, res

    ledger = ws.ledger()
    assert [(r["role"], r["tier"], r["model"]) for r in ledger] == [
        ("planning", "gold", "claude-opus-4-8"),
        ("execution", "silver", "claude-sonnet-4-5"),
        ("execution", "silver", "claude-sonnet-4-5"),
        ("execution", "silver", "claude-sonnet-4-5"),
    ]
    # The ledger holds exactly what the server billed, priced by burnless from its table.
    billed = [r["usage"] for r in sim.requests()]
    assert len(billed) == 4
    for rec, usage in zip(ledger, billed, strict=True):
        assert rec["tokens"] == {
            "input": usage["input_tokens"],
            "output": usage["output_tokens"],
            "cache_read": usage["cache_read_input_tokens"],
            "cache_write": usage["cache_creation_input_tokens"],
        }
        assert rec["cost_source"] == "priced" and rec["status"] == "ok" and rec["exit"] == 0
        assert rec["cost_usd"] == pytest.approx(hand_cost(rec["model"], rec["tokens"]), abs=1e-8)

    plan_rec, exec1, exec2, exec3 = (r["tokens"] for r in ledger)
    # Turn 1: nothing to read; the planner writes its prefix, the executor its prefix + plan.
    assert plan_rec["cache_read"] == 0
    assert plan_rec["cache_write"] == estimate_tokens(first.stable_prefix) > 1024
    assert exec1["cache_read"] == 0 and exec1["cache_write"] > 1024
    # Turns 2 and 3 read what the turn before wrote and write only their newest capsule.
    for got, want in zip((exec2, exec3), wanted, strict=True):
        assert {k: got[k] for k in want} == want
    assert exec2["cache_read"] == exec1["cache_write"]
    assert exec3["cache_read"] == exec2["cache_read"] + exec2["cache_write"]

    # The last request as the server saw it: breakpoints on the prefix and the last capsule.
    body = sim.requests()[-1]["body"]
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 8192
    (system,) = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert system["text"].startswith('<burnless-protocol role="executor"')
    (user,) = body["messages"]
    assert ["cache_control" in b for b in user["content"]] == [False, False, True, False]
    assert user["content"][-1]["text"] == f"<task>\n{tasks[-1]}\n</task>\n"
    log = (ws.root / res["log"]).read_text()
    assert "request: model claude-sonnet-4-5, max_tokens 8192" in log
    assert '"stop_reason":"end_turn"' in log and "attempt 1: end_turn" in log
    assert KEY not in log and KEY[:16] not in log
    assert KEY not in sim.log.read_text()  # the simulator redacts the auth header too


def test_truncated_answer_is_a_finding(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory()
    api_config(ws, sim.url, extra=", max_output_tokens: 8")
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 0
    assert any("cut at max_output_tokens (8)" in f for f in res["findings"]), res["findings"]
    assert ws.ledger()[0]["tokens"]["output"] <= 8


# --------------------------------------------------------------------------- failures


def test_401_fails_at_once_with_a_clear_message(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("401")
    api_config(ws, sim.url)
    p = run(ws, "explain the auth module")
    assert p.returncode == 1
    assert "authentication failed (401)" in p.stdout and "$ANTHROPIC_API_KEY" in p.stdout
    assert "Traceback" not in p.stderr
    assert [r["status"] for r in sim.requests()] == [401]  # no retry
    (rec,) = ws.ledger()
    assert rec["status"] == "failed" and rec["exit"] == 1
    assert rec["reason"].startswith("authentication failed (401)")
    # An error answer is not billed: zero tokens, cost 0 (not an estimate).
    assert rec["tokens"] == {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    assert rec["cost_usd"] == 0 and rec["cost_source"] == "priced"


def test_429_once_is_retried(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("429,times=1")
    api_config(ws, sim.url)
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 0, res
    assert [r["status"] for r in sim.requests()] == [429, 200]
    assert "succeeded after 1 retry (API error 429 rate_limit_error)" in res["findings"]
    log = (ws.root / res["log"]).read_text()
    assert "attempt 1: API error 429" in log and "attempt 2: end_turn" in log
    assert ws.ledger()[0]["tokens"]["output"] > 0


def test_500_always_gives_up_after_the_retries(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("500")
    api_config(ws, sim.url)
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 1 and res["status"] == "failed"
    assert [r["status"] for r in sim.requests()] == [500] * 3
    (rec,) = ws.ledger()
    # The call's own time (not the interpreter's start-up, which a busy machine stretches).
    assert rec["duration_s"] < 12
    assert rec["reason"].startswith("API error 500 api_error")
    assert rec["reason"].endswith("(gave up after 3 attempts)")
    log = (ws.root / res["log"]).read_text()
    assert log.count("retrying in") == 2


def test_timeout_is_bounded(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("sleep=10")
    api_config(ws, sim.url, extra=", timeout: 1")
    code, res, _ = run_json(ws, "explain the auth module")
    assert code == 1 and res["status"] == "failed"
    (rec,) = ws.ledger()
    # The call's own time (its deadline counts from before the SDK import, ~1 s, which a busy
    # machine can stretch several-fold): far below the server's 10 s.
    assert rec["duration_s"] < 8
    assert rec["reason"] == "timed out after 1s" and rec["exit"] is None
    assert rec["cost_source"] == "estimated"  # nothing reported: the prompt is estimated


def test_ctrl_c_during_the_call_exits_130(ws: Workspace, sim_factory: Any) -> None:
    sim = sim_factory("sleep=8")
    api_config(ws, sim.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "burnless", "run", "explain the auth module"],
        cwd=ws.root,
        env={**os.environ, "ANTHROPIC_API_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    logs = ws.state / "logs"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the request is on its way (logged just before)
        if logs.is_dir() and any("attempt 1: sending" in p.read_text() for p in logs.iterdir()):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 6  # not the server's 8 s (slack for a busy machine)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    (rec,) = ws.ledger()
    assert rec["status"] == "interrupted"
    assert "interrupted" in next(logs.iterdir()).read_text()


# --------------------------------------------------------------------------- before dispatch


def test_missing_key_fails_before_anything_is_sent(
    ws: Workspace, sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = sim_factory()
    api_config(ws, sim.url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    p = ws.run("run", "explain the auth module")
    assert p.returncode == 2
    assert "tier 'silver'" in p.stderr and "$ANTHROPIC_API_KEY is not set" in p.stderr
    assert "tiers.silver.pass_env" in p.stderr and "Traceback" not in p.stderr
    # Set in the caller's environment but not passed: the message says what to add.
    ws.config((ws.state / "config.yaml").read_text().replace(", pass_env: [ANTHROPIC_API_KEY]", ""))
    p = ws.run("run", "explain the auth module", env={"ANTHROPIC_API_KEY": KEY})
    assert p.returncode == 2
    assert "add ANTHROPIC_API_KEY to tiers.silver.pass_env" in p.stderr
    assert sim.requests() == [] and ws.ledger() == []


def test_api_tier_without_model_is_a_config_error(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {api: anthropic, pass_env: [ANTHROPIC_API_KEY]}\n")
    p = ws.run("run", "explain the auth module", env={"ANTHROPIC_API_KEY": KEY})
    assert p.returncode == 2
    assert "config.yaml:2: tiers.silver.model: required for an api tier" in p.stderr


def test_a_command_tier_run_never_imports_the_sdk(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(fake('honest')).decode()}}}\n")
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "burnless", "run", "write a.txt hi"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    modules = [
        ln.rsplit("|", 1)[-1].strip()
        for ln in p.stderr.splitlines()
        if ln.startswith("import time:")
    ]
    assert "burnless.agent" in modules  # the measurement saw the run path
    assert not [m for m in modules if m.split(".")[0] in ("anthropic", "httpx", "httpx2")]


# --------------------------------------------------------------------------- pure parts


def test_build_request_puts_breakpoints_on_the_prefix_and_the_last_context_block() -> None:
    tier = Tier(name="silver", api="anthropic", model="claude-sonnet-4-5", max_output_tokens=99)
    p = Prompt(
        "executor",
        "H\n",
        "P\n",
        "plan\n",
        "c1\nc2\n",
        "<task>\nt\n</task>\n",
        blocks=("plan\n", "c1\n", "c2\n"),
    )
    req = build_request(p, tier)
    assert req["model"] == "claude-sonnet-4-5" and req["max_tokens"] == 99
    assert req["system"] == [
        {"type": "text", "text": "H\nP\n", "cache_control": {"type": "ephemeral"}}
    ]
    content = req["messages"][0]["content"]
    assert [b["text"] for b in content] == ["plan\n", "c1\n", "c2\n", "<task>\nt\n</task>\n"]
    assert ["cache_control" in b for b in content] == [False, False, True, False]
    assert describe(req)[1:] == [
        "  system: 4 bytes [cache_control]",
        "  context: 5 bytes",
        "  context: 3 bytes",
        "  context: 3 bytes [cache_control]",
        "  task: 17 bytes",
    ]
    bare = build_request(Prompt("planner", "H\n", "", "", "", "<task>\nt\n</task>\n"), tier)
    assert ["cache_control" in b for b in bare["messages"][0]["content"]] == [False]


def test_key_and_base_url_follow_the_scrubbed_environment_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-shell")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    bare = Tier(name="t", api="anthropic", model="m")
    assert bare.env_value("ANTHROPIC_API_KEY") is None  # not listed: not seen
    assert base_url(bare) == "https://api.anthropic.com"
    in_env = Tier(
        name="t",
        api="anthropic",
        model="m",
        env={"ANTHROPIC_API_KEY": "from-config", "ANTHROPIC_BASE_URL": "http://h:2"},
    )
    assert in_env.env_value("ANTHROPIC_API_KEY") == "from-config"
    assert base_url(in_env) == "http://h:2"
    passed = Tier(
        name="t",
        api="anthropic",
        model="m",
        env=in_env.env,
        pass_env=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    )
    assert passed.env_value("ANTHROPIC_API_KEY") == "from-shell"
    assert base_url(passed) == "http://127.0.0.1:1"
    explicit = Tier(
        name="t", api="anthropic", model="m", base_url="http://x:3", pass_env=passed.pass_env
    )
    assert base_url(explicit) == "http://x:3"


PROMPT = Prompt(
    "executor",
    '<burnless-protocol role="executor" version="1">\n',
    RULES,
    "",
    "",
    "<task>\nexplain the cache\n</task>\n",
)



@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own exponential backoff in milliseconds (a server's retry-after is still obeyed)."""
    monkeypatch.setattr(api, "BACKOFF_S", 0.02)



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
        "env": {"ANTHROPIC_API_KEY": API_KEY},
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


# --------------------------------------------------------------------------- hostile servers


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
    server = hostile(json_error(400, "invalid_request_error", f"bad key {API_KEY} for this org"))
    reply = call(tmp_path, tier(server.url), redact=None)  # policy.redact_secrets: false
    assert reply.exit_code == 1
    assert "bad key [REDACTED] for this org" in reply.error
    text = run_log(tmp_path)
    assert API_KEY not in text and "[REDACTED]" in text
    assert all(API_KEY not in f for f in reply.output.findings)
    # It did reach the server, as a header (the SDK 2.14 sends a Bearer token).
    (request,) = server.requests
    headers = request.headers
    assert (headers.get("authorization") == f"Bearer {API_KEY}"
            or headers.get("x-api-key") == API_KEY)


def test_the_key_and_base_url_come_only_through_pass_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hostile: Callable[..., Hostile],
    sim: Sim,
) -> None:
    server = hostile(complete)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
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
    assert API_KEY in request.head.decode("latin-1")
    # The tier's env may set ANTHROPIC_BASE_URL too (here, the simulator).
    via_env = call(
        tmp_path, tier(None, env={"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": sim.url})
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
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
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
    assert API_KEY not in (ws.state / "ledger.jsonl").read_text()
    assert API_KEY not in sim.log.read_text()
