"""The simulator's Gemini API fake over loopback HTTP: generateContent, streamGenerateContent
(SSE), countTokens, usageMetadata, a write_file call, Google-shaped errors, the key."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burnless.sim.server import sim_server

MODEL = "gemini-2.5-flash"
KEY = {"x-goog-api-key": "AIza-sim-test-key"}
SYSTEM = {"parts": [{"text": "Follow the project rules; end with one JSON envelope. " * 100}]}
WRITE_FILE = {
    "functionDeclarations": [
        {
            "name": "write_file",
            "description": "Writes content to a file.",
            "parametersJsonSchema": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
            },
        }
    ]
}
SHELL = {
    "functionDeclarations": [
        {
            "name": "run_shell_command",
            "parameters": {"type": "OBJECT", "properties": {"command": {"type": "STRING"}}},
        }
    ]
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "sim.jsonl"
    with sim_server(log=log) as url:
        yield url, log


def call(
    url: str, method: str, body: Any, headers: dict[str, str] | None = KEY, query: str = ""
) -> tuple[int, bytes]:
    path = f"{url}/v1beta/models/{MODEL}:{method}{query}"
    req = urllib.request.Request(
        path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def request(task: str, tools: list[Any] | None = None) -> dict[str, Any]:
    """Gemini CLI 0.61's layout: a session context part, then the prompt, in one user turn."""
    context = (
        "<session_context>\nThis is the Gemini CLI. We are setting up the context for our chat.\n"
        "My operating system is: linux\n- **Workspace Directories:**\n  - /tmp/ws\n"
        "- **Directory Structure:**\n\n/tmp/ws/\n\n</session_context>"
    )
    body: dict[str, Any] = {
        "systemInstruction": SYSTEM,
        "contents": [{"role": "user", "parts": [{"text": context}, {"text": task}]}],
    }
    if tools is not None:
        body["tools"] = tools
    return body


def events(raw: bytes) -> list[dict[str, Any]]:
    frames = [f for f in raw.decode().split("\r\n\r\n") if f.strip()]
    assert all(f.startswith("data: ") for f in frames)
    return [json.loads(f[6:]) for f in frames]


def text_of(answer: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in answer["candidates"][0]["content"]["parts"])


def envelope(text: str) -> dict[str, Any]:
    return json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])


def test_generate_content_usage_metadata_and_implicit_caching(server) -> None:
    url, _ = server
    status, raw = call(url, "generateContent", request("explain the cache"))
    assert status == 200
    first = json.loads(raw)
    assert first["candidates"][0]["finishReason"] == "STOP"
    assert envelope(text_of(first))["kind"] == "thought"
    _, raw = call(url, "generateContent", request("explain the ledger"))
    u1, u2 = first["usageMetadata"], json.loads(raw)["usageMetadata"]
    assert u1["cachedContentTokenCount"] == 0
    # The system instruction and the context part are shared: read from the cache, and
    # still counted in promptTokenCount.
    assert 1024 <= u2["cachedContentTokenCount"] < u2["promptTokenCount"]
    for u in (u1, u2):
        assert u["thoughtsTokenCount"] > 0  # Gemini 2.5 thinks
        total = u["promptTokenCount"] + u["candidatesTokenCount"] + u["thoughtsTokenCount"]
        assert u["totalTokenCount"] == total
    _, counted = call(url, "countTokens", request("explain the ledger"))
    assert json.loads(counted)["totalTokens"] == u2["promptTokenCount"]


def test_stream_generate_content_sse(server) -> None:
    url, _ = server
    _, plain = call(url, "generateContent", request("summarize the plan"))
    status, raw = call(
        url, "streamGenerateContent", request("summarize the plan"), query="?alt=sse"
    )
    assert status == 200
    chunks = events(raw)
    assert len(chunks) > 2
    assert "".join(text_of(c) for c in chunks) == text_of(json.loads(plain))
    assert [("usageMetadata" in c) for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert (
        chunks[-1]["usageMetadata"]["candidatesTokenCount"]
        == json.loads(plain)["usageMetadata"]["candidatesTokenCount"]
    )


def test_write_file_call_then_function_response(server, tmp_path: Path) -> None:
    url, _ = server
    body = request("create file notes/a.txt with content hello", [WRITE_FILE])
    _, raw = call(url, "streamGenerateContent", body, query="?alt=sse")
    (chunk,) = events(raw)
    (part,) = chunk["candidates"][0]["content"]["parts"]
    fn = part["functionCall"]
    assert fn["name"] == "write_file"
    assert fn["args"] == {"file_path": "/tmp/ws/notes/a.txt", "content": "hello"}
    written = tmp_path / "a.txt"  # the CLI's side: write it for real
    written.write_text(fn["args"]["content"])
    # Gemini CLI 0.61's own words: "created", and "updated" after it (before the fix, the
    # claim said "modified"; and the path was relative, the workspace not found).
    response = {
        "output": f"Successfully created and wrote to new file: {fn['args']['file_path']}. "
        "Here is the updated code:\nhello"
    }
    body["contents"] += [
        {"role": "model", "parts": [part]},
        # Without the call's id: matched by name, as an older CLI would send it.
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "write_file", "response": response}}],
        },
    ]
    _, raw = call(url, "generateContent", body)
    env = envelope(text_of(json.loads(raw)))
    digest = hashlib.sha256(written.read_bytes()).hexdigest()
    assert env["status"] == "ok"
    assert env["files"] == [
        {"path": "notes/a.txt", "action": "created", "bytes": 5, "sha256": digest}
    ]
    body["contents"][-1]["parts"][0]["functionResponse"] = {
        "id": fn["id"],
        "name": "write_file",
        "response": {"error": "Permission denied"},
    }
    _, raw = call(url, "generateContent", body)
    failed = envelope(text_of(json.loads(raw)))
    assert failed["status"] == "failed" and "Permission denied" in failed["summary"]


def test_without_write_file_the_shell_tool_is_used(server) -> None:
    url, _ = server
    _, raw = call(url, "generateContent", request("create file a.txt with content hi", [SHELL]))
    fn = json.loads(raw)["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert fn["name"] == "run_shell_command"
    assert fn["args"]["command"].endswith("printf '%s' hi > a.txt")


def test_errors_have_googles_shape_and_the_query_key_is_not_logged(server) -> None:
    url, log = server
    status, raw = call(url, "generateContent", {"contents": []})
    error = json.loads(raw)["error"]
    assert (status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    status, raw = call(url, "embedContent", request("hi"))
    assert (status, json.loads(raw)["error"]["status"]) == (404, "NOT_FOUND")
    status, raw = call(url, "generateContent", request("hi"), {"x-sim-fault": "429"})
    assert (status, json.loads(raw)["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")
    bad_limit = dict(request("hi"), generationConfig={"maxOutputTokens": 0})
    assert call(url, "generateContent", bad_limit)[0] == 400
    secret = "AIza-query-secret-999"
    status, _ = call(url, "generateContent", request("hi"), None, f"?key={secret}")
    assert status == 200
    text = log.read_text()
    assert secret not in text and "AIza-sim-test-key" not in text
    assert json.loads(text.splitlines()[-1])["path"].endswith("key=[REDACTED]")


def test_max_output_tokens_cuts_the_answer(server) -> None:
    url, _ = server
    body = dict(request("explain the cache"), generationConfig={"maxOutputTokens": 40})
    _, raw = call(url, "generateContent", body)
    answer = json.loads(raw)
    assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"
    usage = answer["usageMetadata"]
    assert usage["candidatesTokenCount"] + usage["thoughtsTokenCount"] <= 40
