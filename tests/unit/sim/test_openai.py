"""The simulator's OpenAI endpoints, driven by the real ``openai`` SDK over loopback HTTP:
``/v1/chat/completions``, ``/v1/responses`` (Codex's), ``/v1/models``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burnless.sim.server import sim_server

SYSTEM = "Follow the project rules; end with one JSON envelope. " * 100  # ~1,350 tokens
WRITE_FILE = {
    "type": "function",
    "function": {
        "name": "write_file",
        "description": "Write a file.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
}
# The shapes of Codex's shell tools (function tools of the Responses API).
EXEC_COMMAND = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command in a PTY.",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
        "required": ["cmd"],
    },
}
SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Runs a shell command.",
    "parameters": {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}},
            "workdir": {"type": "string"},
        },
        "required": ["command"],
    },
}


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    with sim_server(log=tmp_path / "sim.jsonl") as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[Any]:
    import openai

    with openai.OpenAI(base_url=base + "/v1", api_key="sk-sim-test", max_retries=0) as c:
        yield c


def chat(task: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"<task>\n{task}\n</task>"},
    ]


def envelope(text: str) -> dict[str, Any]:
    return json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])


def raw_post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


# -- chat completions -------------------------------------------------------------------------


def test_chat_json_usage_counts_cached_tokens_inside_the_prompt(client: Any) -> None:
    first = client.chat.completions.create(model="gpt-4.1", messages=chat("explain the cache"))
    second = client.chat.completions.create(model="gpt-4.1", messages=chat("explain the ledger"))
    assert first.choices[0].finish_reason == "stop"
    assert envelope(first.choices[0].message.content)["kind"] == "thought"
    u1, u2 = first.usage, second.usage
    assert u1.prompt_tokens_details.cached_tokens == 0
    # The system message is shared: read back from 1,024 tokens in steps of 128.
    cached = u2.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached <= u2.prompt_tokens
    assert u2.total_tokens == u2.prompt_tokens + u2.completion_tokens
    assert u1.completion_tokens_details.reasoning_tokens == 0  # not a reasoning model


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(client: Any) -> None:
    messages = chat("summarize the plan")
    plain = client.chat.completions.create(model="gpt-5-mini", messages=messages)
    chunks = list(
        client.chat.completions.create(
            model="gpt-5-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert last.usage.completion_tokens == plain.usage.completion_tokens
    reasoning = last.usage.completion_tokens_details.reasoning_tokens
    assert 8 <= reasoning <= 64  # gpt-5-mini thinks; its reasoning is part of its output
    without = list(
        client.chat.completions.create(model="gpt-5-mini", messages=messages, stream=True)
    )
    assert all(c.usage is None for c in without)


def test_chat_tool_loop_writes_a_file(client: Any, tmp_path: Path) -> None:
    messages: list[Any] = chat("create file notes/a.txt with content hello world")
    first = client.chat.completions.create(model="gpt-4.1", messages=messages, tools=[WRITE_FILE])
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    args = json.loads(call.function.arguments)
    assert (call.function.name, args) == (
        "write_file",
        {"path": "notes/a.txt", "content": "hello world"},
    )
    target = tmp_path / args["path"]  # the agent framework's side: really write it
    target.parent.mkdir(parents=True)
    target.write_text(args["content"])
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": f"Wrote {args['path']}"},
    ]
    final = client.chat.completions.create(model="gpt-4.1", messages=messages, tools=[WRITE_FILE])
    env = envelope(final.choices[0].message.content)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert env["status"] == "ok"
    assert env["files"] == [
        {"path": "notes/a.txt", "action": "created", "bytes": 11, "sha256": digest}
    ]


def test_chat_stream_delivers_tool_calls(client: Any) -> None:
    messages = chat("create file a.txt with content hi")
    stream = client.chat.completions.create(
        model="gpt-4.1", messages=messages, tools=[WRITE_FILE], stream=True
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert calls[0].function.name == "write_file" and calls[0].id.startswith("toolu_sim_")
    assert json.loads(arguments) == {"path": "a.txt", "content": "hi"}


def test_chat_errors_have_openai_shape(client: Any, base: str) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4.1", messages=[])
    assert bad.value.body["type"] == "invalid_request_error"
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "robot", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4.1", messages=chat("x"), max_tokens=0)
    body = {"model": "gpt-4.1", "messages": chat("hi")}
    status, refused = raw_post(base + "/v1/chat/completions", body)  # no Bearer key
    assert status == 401
    assert set(refused["error"]) == {"message", "type", "param", "code"}
    status, missing = raw_post(base + "/v1/completions", body, {"authorization": "Bearer k"})
    assert status == 404 and missing["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4.1", messages=chat("hi"), extra_headers={"x-sim-fault": "429"}
        )


def test_chat_max_tokens_cuts_the_answer(client: Any) -> None:
    cut = client.chat.completions.create(model="gpt-4.1", messages=chat("explain"), max_tokens=5)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens <= 5


# -- responses ---------------------------------------------------------------------------------


def codex_input(task: str, cwd: str = "/tmp/ws") -> list[dict[str, Any]]:
    """Codex's layout: developer instructions, the environment, then the user's prompt."""
    return [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": SYSTEM}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": f"<environment_context>\n  <cwd>{cwd}</cwd>\n</environment_context>",
                }
            ],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": task}]},
    ]


def test_responses_json_usage(client: Any) -> None:
    first = client.responses.create(model="gpt-5-codex", input=codex_input("explain the cache"))
    second = client.responses.create(model="gpt-5-codex", input=codex_input("explain the ledger"))
    assert first.status == "completed"
    assert envelope(first.output_text)["kind"] == "thought"
    u1, u2 = first.usage, second.usage
    assert u1.input_tokens_details.cached_tokens == 0
    assert 1024 <= u2.input_tokens_details.cached_tokens <= u2.input_tokens
    assert u2.input_tokens_details.cached_tokens % 128 == 0
    assert u1.output_tokens_details.reasoning_tokens > 0
    assert u1.total_tokens == u1.input_tokens + u1.output_tokens


def test_responses_report_cache_writes_for_models_that_bill_them(client: Any) -> None:
    """GPT-5.6 and later bill cache writes and report them in ``cache_write_tokens`` (inside
    ``input_tokens``); older models report only ``cached_tokens``."""
    first = client.responses.create(model="gpt-5.6-codex", input=codex_input("explain the cache"))
    second = client.responses.create(model="gpt-5.6-codex", input=codex_input("explain the log"))
    again = client.responses.create(model="gpt-5.6-codex", input=codex_input("explain the log"))
    d1, d2, d3 = (r.usage.model_dump()["input_tokens_details"] for r in (first, second, again))
    assert (d1["cached_tokens"], d1["cache_write_tokens"]) == (0, first.usage.input_tokens)
    # the shared start was read; what follows it was written, and the two never overlap
    assert d2["cached_tokens"] >= 1024
    assert 0 < d2["cache_write_tokens"] <= second.usage.input_tokens - d2["cached_tokens"]
    assert d3["cache_write_tokens"] == 0  # the same prompt again: nothing new to write
    old = client.responses.create(model="gpt-5-codex", input=codex_input("explain the cache"))
    assert old.usage.model_dump()["input_tokens_details"].get("cache_write_tokens") is None
    chat = client.chat.completions.create(
        model="gpt-6", messages=[{"role": "system", "content": SYSTEM},
                                 {"role": "user", "content": "explain the cache"}])
    assert chat.usage.model_dump()["prompt_tokens_details"]["cache_write_tokens"] > 0


def test_responses_stream_has_the_real_event_sequence(client: Any) -> None:
    task = codex_input("summarize the plan")
    plain = client.responses.create(model="gpt-4.1", input=task, instructions="be brief")
    events = list(
        client.responses.create(model="gpt-4.1", input=task, instructions="be brief", stream=True)
    )
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(d.delta for d in deltas) == plain.output_text
    done = events[-1].response
    assert done.output_text == plain.output_text and done.status == "completed"
    assert done.usage.output_tokens == plain.usage.output_tokens
    assert events[0].response.status == "in_progress" and events[0].response.output == []


@pytest.mark.parametrize("tool", [EXEC_COMMAND, SHELL])
def test_responses_calls_codexs_shell_tool_and_the_command_writes_the_file(
    client: Any, tmp_path: Path, tool: dict[str, Any]
) -> None:
    items: list[Any] = codex_input("create file out/a.txt with content hi there", str(tmp_path))
    first = client.responses.create(model="gpt-5-codex", input=items, tools=[tool], stream=True)
    done = [e for e in first if e.type == "response.completed"][0].response
    (call,) = done.output
    assert call.type == "function_call" and call.name == tool["name"]
    args = json.loads(call.arguments)
    assert args["workdir"] == str(tmp_path)
    argv = ["bash", "-lc", args["cmd"]] if "cmd" in args else args["command"]
    ran = subprocess.run(argv, cwd=args["workdir"], capture_output=True, text=True, timeout=10)
    assert (tmp_path / "out" / "a.txt").read_text() == "hi there"
    items += [
        call.model_dump(exclude_none=True),
        {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": f"Process exited with code {ran.returncode}\nOutput:\n{ran.stdout}",
        },
    ]
    final = client.responses.create(model="gpt-5-codex", input=items, tools=[tool])
    env = envelope(final.output_text)
    assert env["status"] == "ok"
    assert env["files"][0]["path"] == "out/a.txt" and env["files"][0]["bytes"] == 8


def test_responses_a_failed_command_fails_the_envelope(client: Any) -> None:
    items: list[Any] = codex_input("create file a.txt with content hi")
    first = client.responses.create(model="gpt-5-codex", input=items, tools=[EXEC_COMMAND])
    call = first.output[0]
    items += [
        call.model_dump(exclude_none=True),
        {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": "Process exited with code 1\nOutput:\nPermission denied",
        },
    ]
    final = client.responses.create(model="gpt-5-codex", input=items, tools=[EXEC_COMMAND])
    assert envelope(final.output_text)["status"] == "failed"


def test_responses_errors_have_openai_shape(client: Any) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="gpt-5", input=[])
    assert bad.value.body["param"] == "input"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-5", input="hi", extra_headers={"x-sim-fault": "500"})


# -- models ------------------------------------------------------------------------------------


def test_models_list_for_both_sdks(client: Any, base: str) -> None:
    import anthropic

    ids = [m.id for m in client.models.list()]
    assert "gpt-5" in ids and "claude-haiku-4-5" in ids and "gemini-2.5-pro" in ids
    with anthropic.Anthropic(base_url=base, api_key="k", max_retries=0) as a:
        assert "claude-haiku-4-5" in [m.id for m in a.models.list()]
    assert client.models.retrieve("gpt-5").owned_by == "openai"
