"""What the gateway needs to know of each provider protocol: Anthropic Messages, OpenAI Chat
Completions and OpenAI Responses.

For a request: its model, whether it streams, its output cap, the text of its last user
message (what routing rules read), the size of its transcript (a client's own compaction makes
it shorter), a session id the client put in its body, and where its text lives (what policy
reads and masks). For an answer: the usage, from the JSON body or from the stream's events,
and whether a stream ended properly. For errors: the body each protocol's SDKs understand, and
the event that ends a stream that broke after bytes reached the client.

Pure functions over parsed JSON: no I/O, no aiohttp.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from burnless.accounting.tokens import Tokens

ANTHROPIC = "anthropic"
OPENAI = "openai"

# Anthropic's error types by HTTP status (what its SDKs and Claude Code expect).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    502: "api_error", 503: "overloaded_error", 504: "timeout_error", 508: "api_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error",
    413: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error",
    502: "server_error", 503: "server_error", 504: "timeout_error", 508: "server_error",
}


@dataclass(frozen=True)
class Endpoint:
    """One of the provider endpoints the gateway answers."""

    name: str  # messages | count_tokens | chat | responses
    api: str  # the protocol family: the tiers (``api:``) that can serve it
    upstream_path: str  # appended to the tier's base URL
    billed: bool = True  # count_tokens is free: no budget, no ledger record


MESSAGES = Endpoint("messages", ANTHROPIC, "/v1/messages")
COUNT_TOKENS = Endpoint("count_tokens", ANTHROPIC, "/v1/messages/count_tokens", billed=False)
CHAT = Endpoint("chat", OPENAI, "/chat/completions")  # an OpenAI base URL ends in /v1
RESPONSES = Endpoint("responses", OPENAI, "/responses")
ENDPOINTS = {
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": COUNT_TOKENS,
    "/v1/chat/completions": CHAT,
    "/v1/responses": RESPONSES,
}


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestInfo:
    """What routing needs to know of a client request, whatever its protocol."""
    model: str
    stream: bool
    max_tokens: int | None  # the request's output cap, if it gives one
    last_user_text: str
    transcript: int  # items in the transcript (messages, or Responses input items)
    session: str | None  # a session id inside the body (Claude Code's metadata.user_id)
    include_usage: bool  # an OpenAI chat stream that asked for its usage chunk itself


class BadRequest(Exception):
    """The request body is not a request of its protocol; the message says why."""


def inspect(endpoint: Endpoint, body: Mapping[str, Any]) -> RequestInfo:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: a non-empty string is required")
    if endpoint.api == ANTHROPIC:
        items = body.get("messages")
        if not isinstance(items, list):
            raise BadRequest("messages: a list is required")
        cap = body.get("max_tokens")
        session = _claude_code_session(body.get("metadata"))
        include = False
    elif endpoint is CHAT:
        items = body.get("messages")
        if not isinstance(items, list):
            raise BadRequest("messages: a list is required")
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        opts = body.get("stream_options")
        include = isinstance(opts, Mapping) and opts.get("include_usage") is True
        session = None
    else:
        raw = body.get("input")
        if raw is None and body.get("previous_response_id") is None:
            raise BadRequest("input: required (a string or a list of items)")
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
        if not isinstance(items, list):
            raise BadRequest("input: a string or a list of items is required")
        cap = body.get("max_output_tokens")
        session, include = None, False
    return RequestInfo(
        model=model,
        stream=body.get("stream") is True,
        max_tokens=cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0
        else None,
        last_user_text=_last_user_text(items),
        transcript=len(items),
        session=session,
        include_usage=include,
    )


_SESSION_IN_USER_ID = re.compile(r"_session_([A-Za-z0-9_-][A-Za-z0-9._-]{0,127})$")


def _claude_code_session(metadata: object) -> str | None:
    """Claude Code's session id from ``metadata.user_id``: a JSON string with ``session_id``
    (2.x), or ``user_<hash>_account_<uuid>_session_<uuid>`` (1.x)."""
    if not isinstance(metadata, Mapping):
        return None
    user_id = metadata.get("user_id")
    if not isinstance(user_id, str) or len(user_id) > 4096:
        return None
    if user_id.startswith("{"):
        try:
            data = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        sid = data.get("session_id") if isinstance(data, dict) else None
        return sid if isinstance(sid, str) else None
    m = _SESSION_IN_USER_ID.search(user_id)
    return m.group(1) if m else None


def _text_parts(content: object) -> list[str]:
    """The text a user typed in one message's content (not tool results, not images)."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text"):
                text = part.get("text")
                if isinstance(text, str):
                    out.append(text)
    return out


def _last_user_text(items: list[Any]) -> str:
    """The last user message that carries text. A message of tool results only continues the
    same turn (an agent loop), so the routing rules keep reading the instruction before it."""
    for item in reversed(items):
        if isinstance(item, Mapping) and item.get("role") == "user":
            parts = _text_parts(item.get("content"))
            if parts:
                return "\n".join(parts)
    return ""


# Where the text of a request lives: (path of keys from the body's top level). A list step is
# walked item by item. Tool definitions are left alone (the client's own schema, not user data).
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "messages": ("system", "messages"),
    "count_tokens": ("system", "messages"),
    "chat": ("messages",),
    "responses": ("instructions", "input"),
}


# --------------------------------------------------------------------------- usage


@dataclass
class Usage:
    """Usage of one answer as it comes in. ``tokens`` is None until the upstream reports any."""

    tokens: Tokens | None = None
    cache_write_1h: int = 0
    model: str | None = None
    complete: bool = False  # the stream's proper end was seen (JSON answers: always)
    output_bytes: int = 0  # answer text seen, for an estimate when no usage comes
    output_reported: bool = False  # the output figure is final (not message_start's 1)


def _num(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 else 0


def _model(v: object) -> str | None:
    return v[:200] if isinstance(v, str) and v else None


def anthropic_usage(u: Mapping[str, Any], was: Tokens | None = None) -> tuple[Tokens, int]:
    """Tokens (and 1-hour cache writes) of an Anthropic ``usage`` object; figures a
    ``message_delta`` leaves out keep their earlier value."""
    base = was or Tokens()

    def get(key: str, default: int) -> int:
        return _num(u[key]) if key in u and u[key] is not None else default

    creation = u.get("cache_creation")
    one_hour = _num(creation.get("ephemeral_1h_input_tokens")) if isinstance(
        creation, Mapping) else 0
    return Tokens(
        input=get("input_tokens", base.input),
        output=get("output_tokens", base.output),
        cache_read=get("cache_read_input_tokens", base.cache_read),
        cache_write=get("cache_creation_input_tokens", base.cache_write),
    ), one_hour


def openai_usage(u: Mapping[str, Any]) -> Tokens:
    """Chat Completions (``prompt_tokens``) or Responses (``input_tokens``) usage, with the
    cached tokens taken out of the input (the ledger's four figures are disjoint), and the cache
    writes too: from the GPT-5.6 family on, OpenAI bills them (``cache_write_tokens``, included
    in the input figure) at their own rate, as Codex reports them."""
    if "input_tokens" in u:
        total, out, details = u.get("input_tokens"), u.get("output_tokens"), u.get(
            "input_tokens_details")
    else:
        total, out, details = u.get("prompt_tokens"), u.get("completion_tokens"), u.get(
            "prompt_tokens_details")
    prompt = _num(total)
    cached = written = 0
    if isinstance(details, Mapping):
        cached = min(_num(details.get("cached_tokens")), prompt)
        written = min(_num(details.get("cache_write_tokens")), prompt - cached)
    return Tokens(input=prompt - cached - written, output=_num(out), cache_read=cached,
                  cache_write=written)


def usage_from_json(endpoint: Endpoint, body: object) -> Usage:
    """Usage of a whole (non-streamed) answer."""
    usage = Usage(complete=True)
    if not isinstance(body, Mapping):
        return usage
    usage.model = _model(body.get("model"))
    u = body.get("usage")
    if isinstance(u, Mapping):
        if endpoint.api == ANTHROPIC:
            usage.tokens, usage.cache_write_1h = anthropic_usage(u)
        else:
            usage.tokens = openai_usage(u)
        usage.output_reported = True
    return usage


def read_event(endpoint: Endpoint, event: Mapping[str, Any], usage: Usage) -> None:
    """Take what one stream event says about usage and the stream's end into ``usage``."""
    if endpoint.api == ANTHROPIC:
        kind = event.get("type")
        if kind == "message_start":
            msg = event.get("message")
            if isinstance(msg, Mapping):
                usage.model = _model(msg.get("model")) or usage.model
                u = msg.get("usage")
                if isinstance(u, Mapping):
                    usage.tokens, usage.cache_write_1h = anthropic_usage(u)
        elif kind == "message_delta":
            u = event.get("usage")
            if isinstance(u, Mapping):
                usage.tokens, one_hour = anthropic_usage(u, usage.tokens)
                usage.cache_write_1h = one_hour or usage.cache_write_1h
                usage.output_reported = "output_tokens" in u
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, Mapping):
                for key in ("text", "partial_json", "thinking"):
                    value = delta.get(key)
                    if isinstance(value, str):
                        usage.output_bytes += len(value.encode("utf-8"))
        elif kind == "message_stop":
            usage.complete = True
        return
    if endpoint is CHAT:
        usage.model = _model(event.get("model")) or usage.model
        u = event.get("usage")
        if isinstance(u, Mapping):
            usage.tokens = openai_usage(u)
            usage.output_reported = True
        for choice in event.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, Mapping) else None
            if isinstance(delta, Mapping):
                content = delta.get("content")
                if isinstance(content, str):
                    usage.output_bytes += len(content.encode("utf-8"))
                for call in delta.get("tool_calls") or ():
                    fn = call.get("function") if isinstance(call, Mapping) else None
                    args = fn.get("arguments") if isinstance(fn, Mapping) else None
                    if isinstance(args, str):
                        usage.output_bytes += len(args.encode("utf-8"))
        return
    kind = event.get("type")
    if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
        delta = event.get("delta")
        if isinstance(delta, str):
            usage.output_bytes += len(delta.encode("utf-8"))
    elif kind in ("response.created", "response.completed", "response.incomplete",
                  "response.failed"):
        resp = event.get("response")
        if isinstance(resp, Mapping):
            usage.model = _model(resp.get("model")) or usage.model
            u = resp.get("usage")
            if isinstance(u, Mapping):
                usage.tokens = openai_usage(u)
                usage.output_reported = True
        if kind in ("response.completed", "response.incomplete"):
            usage.complete = True


def is_usage_chunk(event: Mapping[str, Any]) -> bool:
    """The chunk an OpenAI chat stream adds for ``stream_options.include_usage``."""
    return event.get("choices") == [] and isinstance(event.get("usage"), Mapping)


# --------------------------------------------------------------------------- server-sent events


@dataclass(frozen=True)
class Event:
    """One server-sent event as read from a stream."""
    raw: bytes  # the whole event, its blank line included
    name: str  # the ``event:`` field ("" when absent)
    data: bytes  # the ``data:`` lines joined by newlines


_BOUNDARY = re.compile(rb"\r?\n\r?\n")


class SSEReader:
    """Splits a byte stream into server-sent events, whatever chunks it arrives in. A stream
    that never separates its events is not held in memory: past ``max_event`` bytes without a
    boundary, what is buffered comes back as one unparsed event."""

    def __init__(self, max_event: int = 8 << 20) -> None:
        self._buf = bytearray()
        self.max_event = max_event
        self.garbled = False  # an oversized event was cut

    def feed(self, chunk: bytes) -> Iterator[Event]:
        self._buf += chunk
        start = 0
        while True:
            m = _BOUNDARY.search(self._buf, start)
            if m is None:
                break
            yield _parse_event(bytes(self._buf[start:m.end()]))
            start = m.end()
        if start:
            del self._buf[:start]
        if len(self._buf) > self.max_event:
            self.garbled = True
            raw = bytes(self._buf)
            self._buf.clear()
            yield Event(raw, "", b"")

    def rest(self) -> bytes:
        """What is left after the last complete event (a stream cut mid-event)."""
        raw = bytes(self._buf)
        self._buf.clear()
        return raw


def _parse_event(raw: bytes) -> Event:
    name = ""
    data: list[bytes] = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return Event(raw, name, b"\n".join(data))


_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")


def well_formed(event: Event) -> bool:
    """Every line a field of the SSE format, in UTF-8 (a provider's events are JSON)."""
    if not event.raw.strip():
        return True
    try:
        event.raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(not line or line.startswith(_FIELDS) for line in event.raw.splitlines())


def event_json(event: Event) -> dict[str, Any] | None:
    if not event.data or event.data == b"[DONE]":
        return None
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def sse(data: Mapping[str, Any], name: str | None = None) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


# --------------------------------------------------------------------------- errors


def error_body(api: str, status: int, message: str, kind: str | None = None) -> bytes:
    """A JSON error in the shape the protocol's SDKs read."""
    if api == ANTHROPIC:
        kind = kind or _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500
                                            else "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    kind = kind or _OPENAI_TYPES.get(status, "server_error" if status >= 500
                                     else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None,
                                   "code": kind}})


def stream_error(endpoint: Endpoint, message: str, sequence: int | None = None) -> bytes:
    """The event that ends a stream that broke after bytes reached the client."""
    if endpoint.api == ANTHROPIC:
        return sse({"type": "error", "error": {"type": "api_error", "message": message}},
                   "error")
    if endpoint is CHAT:
        return sse({"error": {"message": message, "type": "server_error", "param": None,
                              "code": "server_error"}})
    event: dict[str, Any] = {"type": "error", "code": "server_error", "message": message,
                             "param": None}
    if sequence is not None:
        event["sequence_number"] = sequence
    return sse(event, "error")
