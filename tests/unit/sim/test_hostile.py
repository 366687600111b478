"""Hostile request bodies on every endpoint: an API-shaped 4xx or a 200, never a 500."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burnless.sim.server import SimServer

ENDPOINTS = [
    ("/v1/messages", {"x-api-key": "k"}, "anthropic"),
    ("/v1/messages/count_tokens", {"x-api-key": "k"}, "anthropic"),
    ("/v1/chat/completions", {"authorization": "Bearer k"}, "openai"),
    ("/v1/responses", {"authorization": "Bearer k"}, "openai"),
    ("/v1beta/models/gemini-2.5-pro:generateContent", {"x-goog-api-key": "k"}, "gemini"),
    (
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        {"x-goog-api-key": "k"},
        "gemini",
    ),
    ("/v1beta/models/gemini-2.5-pro:countTokens", {"x-goog-api-key": "k"}, "gemini"),
]
KEYS = st.sampled_from(
    [
        "model",
        "messages",
        "role",
        "content",
        "text",
        "type",
        "tools",
        "system",
        "input",
        "instructions",
        "contents",
        "parts",
        "functionCall",
        "functionResponse",
        "tool_calls",
        "tool_call_id",
        "call_id",
        "arguments",
        "output",
        "name",
        "max_tokens",
        "stream",
        "stream_options",
        "include_usage",
        "systemInstruction",
        "functionDeclarations",
        "generationConfig",
        "maxOutputTokens",
        "max_output_tokens",
        "cache_control",
        "function",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 2**40),
    st.sampled_from(
        [
            "user",
            "assistant",
            "system",
            "model",
            "tool",
            "developer",
            "text",
            "function_call",
            "function_call_output",
            "message",
            "gpt-5",
            "x",
        ]
    ),
    st.text(max_size=20),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with SimServer() as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


def shaped(dialect: str, body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    if dialect == "anthropic":
        return body.get("type") == "error" and {"type", "message"} <= set(error)
    if dialect == "openai":
        return set(error) == {"message", "type", "param", "code"}
    return {"code", "message", "status"} <= set(error)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.dictionaries(KEYS, JSON, max_size=6), which=st.integers(0, len(ENDPOINTS) - 1))
def test_no_body_makes_the_server_fail(address: tuple[str, int], body: Any, which: int) -> None:
    path, headers, dialect = ENDPOINTS[which]
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    assert resp.status < 500, (path, body, raw[:300])
    if resp.status >= 400:
        assert shaped(dialect, json.loads(raw)), raw[:300]
