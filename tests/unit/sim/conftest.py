"""Helpers of the simulator tests: one request on a fresh connection, raw bytes out and one
parsed answer back, the shape of an API error, a message with a cached system prompt."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from tests.unit.conftest import API_KEY, MODEL, RULES


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
        hdrs = {"content-type": "application/json", "x-api-key": API_KEY, **(headers or {})}
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


def rules_message(task: str = "explain the cache", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1000,
        "system": [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": f"<task>\n{task}\n</task>"}],
        **extra,
    }

