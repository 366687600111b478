"""The simulator's HTTP server (real loopback HTTP) and the deterministic model behind it; hostile
clients (bad bodies and lengths, chunked bodies, stalled and disconnecting clients, many at once)
get an API-shaped answer; streamed usage equals the JSON answer's."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from burnless.sim import server as sim_server_module
from burnless.sim.dialogue import next_turn
from burnless.sim.model import parse_actions, parse_prompt, think
from burnless.sim.server import MAX_BODY_BYTES, SimServer, parse_fail_rates, parse_fault, sim_server
from tests.unit.conftest import API_KEY, Sim
from tests.unit.sim.conftest import address, exchange, is_api_error, rules_message, send

MODEL = "claude-sonnet-4-6"  # caches from 1024 tokens
PROTOCOL = (
    '<burnless-protocol role="executor" version="1">\n'
    + "Follow the plan. End with one JSON envelope. " * 120
    + "\n</burnless-protocol>\n"
)  # about 1400 tokens: above the model's minimum


def post(url: str, path: str, body: object, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def message(task: str, *, tools: list | None = None, **extra) -> dict:
    body = {
        "model": MODEL,
        "max_tokens": 2000,
        "system": [{"type": "text", "text": PROTOCOL, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": f"<task>\n{task}\n</task>"}],
        **extra,
    }
    if tools is not None:
        body["tools"] = tools
    return body


WRITE_TOOL = {
    "name": "Write",
    "description": "write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
    },
}
KEY = {"x-api-key": "sk-test-secret-123"}


def envelope(text: str) -> dict:
    fenced = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    return json.loads(fenced)


@pytest.fixture
def server(tmp_path: Path):
    log = tmp_path / "sim.jsonl"
    with sim_server(log=log) as url:
        yield url, log


@pytest.fixture
def sdk(server):
    """A factory of anthropic clients on the server, closed after the test."""
    import anthropic  # about a second to import: only the tests that need it pay

    clients = []

    def make(**options):
        options.setdefault("max_retries", 0)
        client = anthropic.Anthropic(base_url=server[0], api_key="dummy", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- plain HTTP ----------------------------------------------------------------------------


def test_root_answers_get_and_head(server) -> None:
    url, _ = server
    with urllib.request.urlopen(url + "/", timeout=5) as r:
        assert r.status == 200
        assert json.loads(r.read())["simulated"] is True
    head = urllib.request.Request(url + "/", method="HEAD")
    with urllib.request.urlopen(head, timeout=5) as r:
        assert r.status == 200


def test_missing_key_is_a_401_with_an_anthropic_error(server) -> None:
    url, _ = server
    status, body = post(url, "/v1/messages", message("hi"))
    assert status == 401
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"


def test_bearer_key_and_beta_query_are_accepted(server) -> None:
    url, _ = server
    status, body = post(
        url, "/v1/messages?beta=true", message("hi"), {"authorization": "Bearer abc"}
    )
    assert status == 200
    assert body["type"] == "message"
    assert body["usage"]["input_tokens"] > 0


def test_unknown_path_is_a_404(server) -> None:
    url, _ = server
    status, body = post(url, "/v1/complete", {}, KEY)
    assert (status, body["error"]["type"]) == (404, "not_found_error")


def test_bad_requests_are_400(server) -> None:
    url, _ = server
    no_max = message("hi")
    del no_max["max_tokens"]
    status, body = post(url, "/v1/messages", no_max, KEY)
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")
    five = message("hi")
    five["messages"][0]["content"] = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(4)
    ]
    status, body = post(url, "/v1/messages", five, KEY)
    assert status == 400
    assert "maximum of 4" in body["error"]["message"]


def test_answers_are_deterministic(server) -> None:
    url, _ = server
    _, first = post(url, "/v1/messages", message("explain the cache"), KEY)
    _, second = post(url, "/v1/messages", message("explain the cache"), KEY)
    _, other = post(url, "/v1/messages", message("explain the ledger"), KEY)
    assert first["content"] == second["content"]
    assert first["content"] != other["content"]


def test_max_tokens_cuts_the_answer(server) -> None:
    url, _ = server
    status, body = post(url, "/v1/messages", message("explain the cache", max_tokens=5), KEY)
    assert status == 200
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] <= 5
    assert len(body["content"][0]["text"]) <= 20


# -- the anthropic SDK against the server ---------------------------------------------------


def test_sdk_parses_json_and_sees_cache_reads_on_the_second_call(sdk) -> None:
    client = sdk()
    body = message("summarize the plan")
    first = client.messages.create(**body)
    second = client.messages.create(**body)
    assert first.usage.cache_creation_input_tokens > 1000
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens > 1000
    assert envelope(second.content[0].text)["kind"] == "thought"


def test_sdk_parses_a_streamed_answer_with_usage(sdk) -> None:
    client = sdk()
    body = message("summarize the plan")
    plain = client.messages.create(**body)
    with client.messages.stream(**body) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed_text == plain.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.cache_read_input_tokens == plain.usage.cache_creation_input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_sdk_streams_a_write_tool_call_with_an_absolute_path(sdk) -> None:
    client = sdk()
    body = message("create file notes/a.txt with content hello world", tools=[WRITE_TOOL])
    body["messages"][0]["content"] = " - Primary working directory: /tmp/ws\n" + str(
        body["messages"][0]["content"]
    )
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = [b for b in final.content if b.type == "tool_use"][0]
    assert call.name == "Write"
    assert call.input == {"file_path": "/tmp/ws/notes/a.txt", "content": "hello world"}


def test_sdk_count_tokens(sdk) -> None:
    client = sdk()
    body = message("hi")
    del body["max_tokens"]
    counted = client.messages.count_tokens(**body)
    billed = client.messages.create(**message("hi"))
    u = billed.usage
    total = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens
    assert counted.input_tokens == total


# -- tool loop and envelopes over HTTP ------------------------------------------------------


def test_write_tool_then_result_gives_the_final_envelope(server) -> None:
    url, _ = server
    body = message("create file notes/a.txt with content hello", tools=[WRITE_TOOL])
    _, first = post(url, "/v1/messages", body, KEY)
    assert first["stop_reason"] == "tool_use"
    call = first["content"][-1]
    assert call["input"] == {"file_path": "notes/a.txt", "content": "hello"}  # no workdir given
    body["messages"] += [
        {"role": "assistant", "content": first["content"]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call["id"], "content": "File created"}
            ],
        },
    ]
    _, final = post(url, "/v1/messages", body, KEY)
    assert final["stop_reason"] == "end_turn"
    env = envelope(final["content"][0]["text"])
    assert env["status"] == "ok"
    assert env["kind"] == "execution"
    assert env["files"] == [
        {
            "path": "notes/a.txt",
            "action": "created",
            "bytes": 5,
            "sha256": hashlib.sha256(b"hello").hexdigest(),
        }
    ]


def test_a_tool_error_makes_the_envelope_fail(server) -> None:
    url, _ = server
    body = message("create file ../x.txt with content hello", tools=[WRITE_TOOL])
    _, first = post(url, "/v1/messages", body, KEY)
    call = first["content"][-1]
    body["messages"] += [
        {"role": "assistant", "content": first["content"]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call["id"],
                    "content": "refused: outside the working directory",
                    "is_error": True,
                }
            ],
        },
    ]
    _, final = post(url, "/v1/messages", body, KEY)
    env = envelope(final["content"][0]["text"])
    assert env["status"] == "failed"
    assert env["files"] == []
    assert "outside" in env["summary"]


def test_without_a_tool_the_model_does_not_claim_a_write(server) -> None:
    url, _ = server
    _, answer = post(url, "/v1/messages", message("create file a.txt with content hi"), KEY)
    env = envelope(answer["content"][0]["text"])
    assert (env["status"], env["files"]) == ("failed", [])


def test_a_lying_task_claims_a_write_without_a_tool_call(server) -> None:
    url, _ = server
    body = message("create file a.txt with content hi (lie)", tools=[WRITE_TOOL])
    _, answer = post(url, "/v1/messages", body, KEY)
    assert answer["stop_reason"] == "end_turn"
    env = envelope(answer["content"][0]["text"])
    assert env["status"] == "ok"
    assert env["files"][0]["path"] == "a.txt"
    assert env["files"][0]["bytes"] == 2


# -- the request log ------------------------------------------------------------------------


def test_log_has_one_line_per_request_with_keys_redacted(server) -> None:
    url, log = server
    post(url, "/v1/messages", message("hi"), KEY)
    post(url, "/v1/messages", message("hi"), {"authorization": "Bearer sk-bearer-456"})
    post(url, "/v1/messages", message("hi"))
    urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=5).close()
    text = log.read_text()
    assert "sk-test-secret-123" not in text
    assert "sk-bearer-456" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [(r["method"], r["status"]) for r in records] == [
        ("POST", 200),
        ("POST", 200),
        ("POST", 401),
        ("HEAD", 200),
    ]
    assert records[0]["headers"]["x-api-key"] == "[REDACTED]"
    assert records[1]["headers"]["authorization"] == "[REDACTED]"
    assert records[0]["body"]["model"] == MODEL
    assert records[1]["usage"]["cache_read_input_tokens"] > 0
    assert records[2]["usage"] is None


# -- fault injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [
        ("429", 429, "rate_limit_error"),
        ("500", 500, "api_error"),
        ("529", 529, "overloaded_error"),
        ("401", 401, "authentication_error"),
    ],
)
def test_fault_header_answers_that_error(server, fault: str, status: int, error_type: str) -> None:
    url, _ = server
    got, body = post(url, "/v1/messages", message("hi"), {**KEY, "x-sim-fault": fault})
    assert (got, body["error"]["type"]) == (status, error_type)


def test_fault_times_lets_a_retrying_client_succeed(sdk) -> None:
    import anthropic

    flaky = sdk(max_retries=1, default_headers={"x-sim-fault": "429,times=1"})
    assert flaky.messages.create(**message("hi")).stop_reason == "end_turn"
    strict = sdk(default_headers={"x-sim-fault": "429,times=1,sleep=0"})
    with pytest.raises(anthropic.RateLimitError):
        strict.messages.create(**message("hi"))


def test_fault_sleep_trips_a_client_timeout(sdk) -> None:
    import anthropic

    client = sdk(timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**message("hi"), extra_headers={"x-sim-fault": "sleep=1"})


def test_server_wide_fault_and_bad_specs() -> None:
    with sim_server(fault="500,times=1") as url:
        assert post(url, "/v1/messages", message("hi"), KEY)[0] == 500
        assert post(url, "/v1/messages", message("hi"), KEY)[0] == 200
        status, body = post(url, "/v1/messages", message("hi"), {**KEY, "x-sim-fault": "boom"})
        assert status == 400
        assert "fault spec" in body["error"]["message"]
    with pytest.raises(ValueError, match="fault spec"):
        parse_fault("sleep=abc")


# -- the CLI --------------------------------------------------------------------------------


def test_cli_serve_prints_its_url_and_serves(tmp_path: Path) -> None:
    log = tmp_path / "cli.jsonl"
    code = "from burnless.cli.sim import app; app()"
    with subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BURNLESS_SIM_FAULT": ""},
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("burnless sim: listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1].strip()
            status, body = post(url, "/v1/messages", message("hi"), KEY)
            assert status == 200
            assert body["model"] == MODEL
            assert json.loads(log.read_text())["status"] == 200
        finally:
            proc.terminate()


# -- the model, without HTTP ----------------------------------------------------------------


def burnless_prompt(role: str, task: str, capsules: str = "") -> str:
    return (
        f'<burnless-protocol role="{role}" version="1">\nrules\n</burnless-protocol>\n\n'
        f"<project>\nprefix\n</project>\n\n{capsules}<task>\n{task}\n</task>\n"
    )


def test_prompt_parsing_takes_the_role_and_the_last_task() -> None:
    text = burnless_prompt("planner", "real task") + "<task>\nnot at line start</task>"
    p = parse_prompt(text)
    assert (p.role, p.task) == ("planner", "real task")
    assert parse_prompt("no tags here", "from the user").task == "from the user"
    assert parse_prompt("no tags here").role == "executor"


def test_task_grammar() -> None:
    task = (
        'Create file notes/a.txt with content "two\\nlines"; '
        "append more text to notes/b.txt\n"
        "WRITE c.md containing # Title\n"
        "delete old/d.txt.\n"
        "remove file 'e f.txt'"
    )
    assert [(a.op, a.path, a.content) for a in parse_actions(task)] == [
        ("write", "notes/a.txt", "two\nlines"),
        ("append", "notes/b.txt", "more text"),
        ("write", "c.md", "# Title"),
        ("delete", "old/d.txt", ""),
        ("delete", "e f.txt", ""),
    ]
    assert parse_actions("remove the old comments from the module") == ()


def test_roles_and_statuses() -> None:
    plan = think(parse_prompt(burnless_prompt("planner", "add a test; fix the bug; ship it")))
    assert (plan.kind, plan.plan) == ("thought", ("add a test", "fix the bug", "ship it"))
    single = think(parse_prompt(burnless_prompt("planner", "tidy up")))
    assert 2 <= len(single.plan) <= 4
    capsules = '<capsule seq="2" role="exec">\ntask: t\nsummary: Wrote a.txt\n</capsule>\n\n'
    digest = think(parse_prompt(burnless_prompt("compactor", "compact", capsules)))
    assert digest.kind == "thought"
    assert "Wrote a.txt" in digest.summary
    assert think(parse_prompt(burnless_prompt("executor", "please escalate"))).status == "escalate"
    assert think(parse_prompt(burnless_prompt("executor", "this will fail"))).status == "failed"
    assert think(parse_prompt(burnless_prompt("executor", "fix the failing test"))).status == "ok"


def test_answer_length_varies_with_the_task() -> None:
    lengths = {
        len(think(parse_prompt(burnless_prompt("executor", f"task {i}"))).prose) for i in range(12)
    }
    assert len(lengths) > 3


def test_claude_code_workdir_and_tool_results_with_reminders() -> None:
    # Claude Code's shape: env in the system prompt, reminders in user messages.
    request = {
        "model": MODEL,
        "tools": [WRITE_TOOL, {"name": "Bash", "input_schema": {}}],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2;"},
            {"type": "text", "text": "<env>\nWorking directory: /work/ws\n</env>"},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>skills</system-reminder>"},
                    {"type": "text", "text": burnless_prompt("executor", "append x to log.txt")},
                ],
            }
        ],
    }
    first = next_turn(request)
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call["name"] == "Bash"
    assert call["input"]["command"] == "printf '%s' x >> log.txt"
    request["messages"] += [
        {"role": "assistant", "content": list(first.content)},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call["id"], "content": ""},
                {"type": "text", "text": "<system-reminder>todo list</system-reminder>"},
            ],
        },
    ]
    final = next_turn(request)
    assert final.stop_reason == "end_turn"
    env = envelope(final.content[0]["text"])
    assert env["files"] == [{"path": "log.txt", "action": "created"}]


# -- the aiohttp server: keep-alive, IPv6, system-role messages, the key ---------------------


def test_keep_alive_requests_do_not_stall(server) -> None:
    # Before the move to aiohttp each request on a kept-alive connection waited ~40 ms
    # (headers and body in two writes, no TCP_NODELAY, the client's delayed ACK): 20 requests
    # took 0.88 s. Now about 10 ms; the bound leaves room for a loaded machine.
    import http.client

    url, _ = server
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    data = json.dumps(message("hi")).encode()
    try:
        conn.request("POST", "/v1/messages", body=data, headers=KEY)
        conn.getresponse().read()
        t0 = time.perf_counter()
        for _ in range(20):
            conn.request("POST", "/v1/messages", body=data, headers=KEY)
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["type"] == "message"
        assert time.perf_counter() - t0 < 0.5
    finally:
        conn.close()


def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 here")
    with sim_server("::1") as url:
        assert url.startswith("http://[::1]:")
        assert post(url, "/v1/messages", message("hi"), KEY)[0] == 200


def test_a_system_role_message_is_accepted_read_and_billed(server) -> None:
    # Claude Code 2.1.197 sends one on claude-opus-4-8; before the fix this was a 400.
    url, _ = server
    body = message("explain the cache")
    extra = "You are running inside burnless. " * 50
    body["messages"].insert(0, {"role": "system", "content": extra})
    status, answer = post(url, "/v1/messages", body, KEY)
    assert status == 200, answer
    plain = message("explain the cache")
    _, counted = post(url, "/v1/messages/count_tokens", plain, KEY)
    _, with_system = post(url, "/v1/messages/count_tokens", body, KEY)
    assert with_system["input_tokens"] - counted["input_tokens"] == (len(extra) + 3) // 4
    # A system message may carry the protocol, as the system prompt does.
    planner = message("add a test; fix the bug")
    planner["system"] = "no protocol here"
    planner["messages"].insert(
        0, {"role": "system", "content": PROTOCOL.replace("executor", "planner")}
    )
    _, plan = post(url, "/v1/messages", planner, KEY)
    assert envelope(plan["content"][0]["text"])["plan"] == ["add a test", "fix the bug"]
    only_system = message("hi")
    only_system["messages"] = [{"role": "system", "content": "x"}]
    status, refused = post(url, "/v1/messages", only_system, KEY)
    assert (status, refused["error"]["type"]) == (400, "invalid_request_error")


def test_sdk_streams_with_a_system_role_message(sdk) -> None:
    body = message("summarize the plan")
    body["messages"].insert(0, {"role": "system", "content": "be brief"})
    with sdk().messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.input_tokens > 0


def test_a_configured_key_is_checked_for_every_dialect(tmp_path: Path) -> None:
    good = "sk-sim-right-0123"
    log = tmp_path / "log.jsonl"
    with sim_server(api_key=good, log=log) as url:
        assert post(url, "/v1/messages", message("hi"), {"x-api-key": good})[0] == 200
        status, body = post(url, "/v1/messages", message("hi"), {"x-api-key": "sk-wrong"})
        assert (status, body["error"]["type"]) == (401, "authentication_error")
        chat = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
        ok = {"authorization": f"Bearer {good}"}
        assert post(url, "/v1/chat/completions", chat, ok)[0] == 200
        status, body = post(url, "/v1/chat/completions", chat, {"authorization": "Bearer no"})
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        path = "/v1beta/models/gemini-2.5-flash:generateContent"
        assert post(url, f"{path}?key={good}", gemini)[0] == 200
        status, body = post(url, path, gemini, {"x-goog-api-key": "wrong"})
        assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
        status, body = post(url, path, gemini)
        assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert good not in log.read_text()


def test_cli_rejects_a_bad_fail_rate() -> None:
    for bad in ("gpt-5=1.5", "gpt-5", "gpt-5=abc", "=0.5", "gpt-5=nan"):
        with pytest.raises(ValueError, match="MODEL=P"):
            parse_fail_rates([bad])
    assert parse_fail_rates(["gpt-5-mini=0.25", "*=0.1"]) == {"gpt-5-mini": 0.25, "*": 0.1}
    code = "from burnless.cli.sim import app; app()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "serve", "--port", "0", "--fail-rate", "gpt-5=1.5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--fail-rate" in proc.stderr and "MODEL=P" in proc.stderr


# --------------------------------------------------------------------------- hostile clients


def test_invalid_json_and_non_object_bodies_are_400(sim: Sim) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        status, _, body = send(sim.url, raw=raw)
        assert status == 400 and is_api_error(body, "invalid_request_error"), raw


def test_a_huge_body_is_refused_without_being_read(sim: Sim) -> None:
    # Before the fix the server waited for all 64 MiB (and would have held them in memory).
    size = MAX_BODY_BYTES * 2
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\n"
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
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()
    status, _, body = exchange(sim.url, head + b"{}", timeout=3)
    assert status in (400, 413) and body["type"] == "error"


def test_a_body_shorter_than_its_content_length_is_a_400(sim: Sim) -> None:
    with socket.create_connection(address(sim.url), timeout=5) as s:
        s.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\n"
            "content-length: 500\r\n\r\n{}".encode()
        )
        s.shutdown(socket.SHUT_WR)  # the client gives up sending
        resp = http.client.HTTPResponse(s)
        resp.begin()
        assert resp.status == 400
        assert is_api_error(json.loads(resp.read()), "invalid_request_error")


def test_a_missing_content_length_is_an_empty_body(sim: Sim) -> None:
    head = f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\n\r\n".encode()
    status, _, body = exchange(sim.url, head)
    assert status == 400 and "JSON object" in body["error"]["message"]


def test_a_chunked_request_body_is_read(sim: Sim) -> None:
    # Before the fix the body was ignored (a 400), and its chunks were then parsed as the
    # next request on the connection.
    data = json.dumps(rules_message()).encode()
    conn = http.client.HTTPConnection(*address(sim.url), timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/messages",
            body=iter([data[:100], data[100:]]),
            headers={"x-api-key": API_KEY, "content-type": "application/json"},
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
    status, _, body = send(sim.url, rules_message(), headers={"content-type": "text/plain"})
    assert status == 200 and body["type"] == "message"


def test_request_fields_are_validated_like_the_api(sim: Sim) -> None:
    def status_of(**changes: Any) -> tuple[int, Any]:
        body = rules_message()
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
    status, _, warm = send(sim.url, rules_message(max_tokens=0))
    assert status == 200
    assert warm["content"] == [] and warm["usage"]["output_tokens"] == 0
    assert warm["usage"]["cache_creation_input_tokens"] > 1000
    _, _, real = send(sim.url, rules_message())
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
        status, _, body = send(sim.url, rules_message(), headers={"x-sim-fault": spec})
        assert status == 400 and is_api_error(body, "invalid_request_error"), spec


def test_many_concurrent_clients(sim: Sim) -> None:
    # Before the fix the listen backlog was 5: of 100 clients connecting at once, some were
    # reset and others waited a second for a SYN retransmit.
    n = 100
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            status, _, body = send(sim.url, rules_message(f"task {i % 4}"))
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
    body = json.dumps(rules_message(stream=True)).encode()
    for fault in ("sleep=0.05", "", "") * 6:
        s = socket.create_connection(address(sim.url), timeout=5)
        s.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\n"
            f"x-sim-fault: {fault}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        if not fault:
            s.recv(200)  # the first bytes of the stream, then gone
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset, mid-answer or just after it
    time.sleep(0.3)
    status, _, answer = send(sim.url, rules_message())
    assert status == 200 and answer["type"] == "message"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "internal error" not in err


def test_a_stalled_client_is_dropped_and_others_are_served(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim_server_module, "BODY_TIMEOUT_S", 0.5)
    with socket.create_connection(address(sim.url), timeout=5) as s:
        s.sendall(
            f"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {API_KEY}\r\n"
            "content-length: 100\r\n\r\n{".encode()
        )
        assert send(sim.url, rules_message())[0] == 200  # served while the other one stalls
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
        rules_message(
            "append x to " * 16000,
            system='<burnless-protocol role="' * 16000 + "<capsule>" * 16000 + "<task>\n" * 16000,
        ),
        rules_message("create file a.txt with content hi", system=" \n" * 40000, tools=tools),
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
        assert send(server.url, rules_message())[0] == 200
        assert send(server.url, rules_message())[0] == 200
    err = capfd.readouterr().err
    assert err.count("burnless sim: cannot write the log") == 1 and "Traceback" not in err


def test_the_request_log_never_holds_a_key(sim: Sim) -> None:
    secrets = ["sk-ant-a-111", "sk-ant-b-222", "sk-ant-c-333"]
    send(
        sim.url,
        rules_message(),
        headers={"X-Api-Key": secrets[0], "Proxy-Authorization": f"Basic {secrets[0]}"},
    )
    send(sim.url, rules_message(),
         headers={"x-api-key": "", "Authorization": f"bearer {secrets[1]}"})
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


# --------------------------------------------------------------------------- streaming usage


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
    body = rules_message(task, tools=tools)
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
