"""Talking to upstreams: one pooled client per upstream, one attempt at a time, and the answer
relayed to the client as it arrives.

An attempt ends before the first byte reaches the client (``Failed``: a status worth failing
over, a connection error, a timeout) or with an answer (``Opened``) that is relayed: a JSON body
as a whole (its usage is inside it), a stream chunk by chunk. A relayed stream is read event by
event for its usage and its proper end; it is rewritten only when it must be (masks to put back,
an OpenAI usage chunk the client did not ask for), else its bytes go out exactly as they came.
A stream that breaks after bytes were sent ends with the protocol's error event: there is no
retry once the client has seen part of an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from burnless.aio import aiohttp, tls, web
from burnless.gateway.masking import Restorer
from burnless.gateway.protocols import (
    ANTHROPIC,
    CHAT,
    Endpoint,
    Event,
    SSEReader,
    Usage,
    event_json,
    is_usage_chunk,
    read_event,
    sse,
    stream_error,
    usage_from_json,
    well_formed,
)
from burnless.settings import Tier

FAILOVER = frozenset({429, 500, 501, 502, 503, 504, 529})
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})
# Not forwarded upstream: hop-by-hop, what the gateway sets itself, the caller's credentials
# (unless the tier says key: client), and the gateway's own headers.
_DROP_REQUEST = HOP_BY_HOP | {
    "host", "content-length", "content-type", "accept-encoding", "x-api-key",
    "authorization", "cookie", "x-model-affinity", "expect",
}
_DROP_RESPONSE = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server",
                               "set-cookie"}
VIA = "x-burnless-via"  # set on every upstream request: a loop back into a gateway is refused
MAX_ERROR_BODY = 1 << 20  # bytes of an upstream error answer passed on
MAX_JSON_BODY = 256 << 20  # a whole (non-streamed) answer larger than this is refused


class Pool:
    """One ``ClientSession`` (keep-alive connections, TCP_NODELAY) per upstream origin."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, url: str) -> aiohttp.ClientSession:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        s = self._sessions.get(origin)
        if s is None or s.closed:
            # limit=0: concurrency is bounded by the clients, not by a pool queue that would
            # add a wait before the first byte; idle connections are dropped before typical
            # server idle timeouts, so a reused one is rarely already closed.
            # ssl: a verified context of our own; aiohttp's default ones trust nothing when it
            # was imported through burnless.aio.load().
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=15,
                                             ssl=tls() if parts.scheme == "https" else True)
            s = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                      skip_auto_headers=("User-Agent",))
            self._sessions[origin] = s
        return s

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()


def upstream_url(base: str, endpoint: Endpoint, query: str) -> str:
    base = base.rstrip("/")
    if endpoint.api == ANTHROPIC and base.endswith("/v1"):
        base = base[:-3]  # an Anthropic base URL is the host; tolerate one given with /v1
    return base + endpoint.upstream_path + (f"?{query}" if query else "")


def request_headers(incoming: Mapping[str, str], tier: Tier, key: str | None,
                    client: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """What goes upstream: the client's protocol headers (``anthropic-version``,
    ``anthropic-beta``, its user agent...), and the tier's key or, for ``key: client``, the
    caller's own credentials ``client`` (``keys.client_credentials``: never a virtual key)."""
    out = {k: v for k, v in incoming.items()
           if k.lower() not in _DROP_REQUEST and not k.lower().startswith("x-burnless-")}
    out["content-type"] = "application/json"
    out[VIA] = "1"
    if tier.key == "client":
        out.update(client)
    elif key:
        if tier.api == ANTHROPIC:
            out["x-api-key"] = key
        else:
            out["authorization"] = f"Bearer {key}"
    if tier.api == ANTHROPIC and "anthropic-version" not in {k.lower() for k in out}:
        out["anthropic-version"] = "2023-06-01"
    return out


def response_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """The upstream's answer headers worth passing on (request ids, rate limits, retry-after),
    with lowercase names."""
    return {k.lower(): v for k, v in upstream.items() if k.lower() not in _DROP_RESPONSE}


# --------------------------------------------------------------------------- one attempt


@dataclass
class Failed:
    """An attempt that ended before anything reached the client."""

    reason: str
    status: int | None = None  # the upstream's status, None when there was no answer
    retry_after: float | None = None
    body: bytes = b""  # the upstream's error answer (passed on if no one else serves)
    headers: dict[str, str] = field(default_factory=dict)
    stale: bool = False  # a pooled connection the upstream had closed: worth one more try
    timed_out: bool = False  # the request was sent and no answer came: it may be billed

    @property
    def failover(self) -> bool:
        return self.status is None or self.status in FAILOVER


@dataclass
class Opened:
    """An upstream answer whose first bytes may be relayed."""
    response: aiohttp.ClientResponse
    started: float  # when the request was sent


async def send(pool: Pool, url: str, headers: dict[str, str], body: bytes, *, timeout: float,
               ) -> Opened | Failed:
    """POST once; an answer worth failing over is read (bounded) and closed."""
    started = time.monotonic()
    shown = _shown(url)
    try:
        resp = await pool.session(url).post(
            url, data=body, headers=headers, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=pool.connect_timeout,
                                          sock_read=timeout))
    except asyncio.TimeoutError:
        return Failed(f"no answer from {shown} within {timeout:g}s", timed_out=True)
    except aiohttp.ServerDisconnectedError:
        return Failed(f"{shown} closed the connection before answering", stale=True)
    except aiohttp.ClientConnectorError as exc:
        return Failed(f"cannot reach {shown}: {exc.os_error.strerror or exc.os_error}")
    except aiohttp.ClientError as exc:
        return Failed(f"cannot reach {shown}: {type(exc).__name__}: {exc}")
    if resp.status in FAILOVER:
        try:
            raw = await resp.content.read(MAX_ERROR_BODY)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            raw = b""
        resp.release()
        from burnless.gateway import core

        headers_out = {k.lower(): v for k, v in resp.headers.items()}
        return Failed(f"{shown} answered {resp.status}{_error_kind(raw)}", resp.status,
                      core.retry_after(headers_out), raw, response_headers(resp.headers))
    return Opened(resp, started)


def _error_kind(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        kind = err.get("type") or err.get("code")
        msg = err.get("message")
        return (f" ({kind})" if isinstance(kind, str) else "") + (
            f": {msg[:200]}" if isinstance(msg, str) else "")
    return ""


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


# --------------------------------------------------------------------------- relaying


@dataclass
class Relayed:
    """What a relayed answer came to."""

    usage: Usage
    status: int
    stream: bool
    client_gone: bool = False
    error: str = ""  # why the answer is not whole ("" when it is)
    body: bytes | None = None  # the upstream's bytes (for the response cache), when kept


async def upstream_chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """An upstream answer's bytes as they arrive (each read bounded by the tier's timeout)."""
    async for chunk in resp.content.iter_any():
        yield chunk


async def relay_json(request: web.Request, endpoint: Endpoint, status: int,
                     headers: Mapping[str, str], raw: bytes, restorer: Restorer | None,
                     ) -> tuple[web.StreamResponse, Relayed]:
    """A whole answer: parsed for its usage, masks put back, sent in one piece."""
    try:
        parsed: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    usage = usage_from_json(endpoint, parsed) if status == 200 else Usage(complete=True)
    out = raw
    if restorer is not None and parsed is not None:
        out = orjson.dumps(restorer.obj(parsed))
    hdrs = response_headers(headers)
    hdrs["content-type"] = next((v for k, v in headers.items() if k.lower() == "content-type"),
                                "application/json")
    # A Response (not a StreamResponse) sends its headers and body in one write: one packet
    # and one wake-up of the client instead of two.
    resp = web.Response(status=status, headers=hdrs, body=out)
    relayed = Relayed(usage, status, stream=False, body=raw)
    try:
        await resp.prepare(request)
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        relayed.client_gone = True
    return resp, relayed


class _EventStream(web.StreamResponse):
    """An SSE answer whose headers go out with its first event (aiohttp sends a stream's
    headers on their own by default): the client's first read has the first event."""

    _send_headers_immediately = False


@dataclass
class StreamRewrite:
    """How a stream must be changed on its way: masks put back, a usage chunk dropped."""

    restorer: Restorer | None = None
    drop_usage_chunk: bool = False  # the gateway asked for it; the client did not

    @property
    def needed(self) -> bool:
        return self.restorer is not None or self.drop_usage_chunk


async def relay_stream(request: web.Request, endpoint: Endpoint, headers: Mapping[str, str],
                       chunks: AsyncIterator[bytes], rewrite: StreamRewrite, relayed: Relayed,
                       keep: int = 0) -> web.StreamResponse:
    """An SSE answer, event by event as it comes, into ``relayed`` (the caller's, so what a
    cancelled relay saw is still known); ``keep``: bytes of it kept for the response cache."""
    hdrs = response_headers(headers)
    hdrs["content-type"] = next((v for k, v in headers.items() if k.lower() == "content-type"),
                                "text/event-stream; charset=utf-8")
    hdrs["cache-control"] = "no-cache"
    resp = _EventStream(status=200, headers=hdrs)
    usage = relayed.usage
    reader = SSEReader()
    state = _StreamState(endpoint, rewrite, usage)
    kept: bytearray | None = bytearray() if keep else None
    try:
        await resp.prepare(request)
        async for chunk in chunks:
            if kept is not None:
                if len(kept) + len(chunk) > keep:
                    kept = None  # too big to cache: not kept at all
                else:
                    kept += chunk
            # Whole events only: an event is complete when the upstream flushes it, so this
            # waits for nothing, and garbage never reaches the client.
            out = b"".join(state.process(event) for event in reader.feed(chunk))
            if out:
                await resp.write(out)
            if state.broken:
                break
        if reader.rest().strip() and not state.broken:
            state.broken = "the stream ended in the middle of an event"
        tail = state.finish()
        if state.upstream_error:
            relayed.error = state.upstream_error  # its own error event already went out
        elif state.broken or not usage.complete:
            relayed.error = state.broken or "the upstream stream ended before its last event"
            tail += stream_error(endpoint, f"burnless gateway: {relayed.error}",
                                 state.next_sequence())
        if tail:
            await resp.write(tail)
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        relayed.client_gone = True
        relayed.error = "the client disconnected mid-stream"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        # the upstream broke or went silent past the tier's timeout, after bytes were sent
        why = "went silent" if isinstance(exc, asyncio.TimeoutError) else f"broke ({exc})"
        relayed.error = f"the upstream stream {why}"
        try:
            await resp.write(state.finish() + stream_error(
                endpoint, f"burnless gateway: {relayed.error}", state.next_sequence()))
            await resp.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            relayed.client_gone = True
    if kept is not None and usage.complete and not relayed.error:
        relayed.body = bytes(kept)
    return resp


class _StreamState:
    """Per stream: usage as it comes, the end seen or not, masks being put back."""

    def __init__(self, endpoint: Endpoint, rewrite: StreamRewrite, usage: Usage) -> None:
        self.endpoint = endpoint
        self.change = rewrite
        self.usage = usage
        self.upstream_error = ""
        self.broken = ""
        self.seq_shift = 0  # events the gateway added to a Responses stream
        self.last_seq: int | None = None
        self._last_chunk: dict[str, Any] = {}

    def next_sequence(self) -> int | None:
        return None if self.last_seq is None else self.last_seq + 1

    def process(self, event: Event) -> bytes:
        """What of one upstream event goes to the client: the event as it came, rewritten,
        or nothing (a dropped usage chunk; anything once the stream is broken)."""
        if self.broken:
            return b""
        data = self.observe(event)
        if self.broken:
            return b""
        if data is None or not self.change.needed:
            return event.raw
        if self.change.drop_usage_chunk and self.endpoint is CHAT and is_usage_chunk(data):
            return b""
        restorer = self.change.restorer
        if restorer is None:
            return event.raw
        if self.endpoint.api == ANTHROPIC:
            return self._anthropic(event.name, data, restorer)
        if self.endpoint is CHAT:
            return self._chat(data, restorer)
        return self._responses(event.name, data, restorer)

    def observe(self, event: Event) -> dict[str, Any] | None:
        if not well_formed(event):
            self.broken = "the upstream sent something that is not a server-sent event"
            return None
        if event.data == b"[DONE]":
            self.usage.complete = True
            return None
        if not event.data:
            return None  # a comment or a keep-alive
        data = event_json(event)
        if data is None:
            self.broken = "the upstream sent an event whose data is not a JSON object"
            return None
        if event.name == "error" or (data.get("type") == "error") or (
                self.endpoint is CHAT and "error" in data):
            err = data.get("error")
            msg = err.get("message") if isinstance(err, Mapping) else data.get("message")
            self.upstream_error = f"the upstream sent an error event: {str(msg)[:300]}"
        read_event(self.endpoint, data, self.usage)
        seq = data.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.last_seq = seq + self.seq_shift
        return data

    def finish(self) -> bytes:
        """Whatever a channel still holds (the stream ended without closing it)."""
        restorer = self.change.restorer
        if restorer is None:
            return b""
        out = b""
        for channel in restorer.channels():
            out += self._flush(channel, restorer, at_end=True)
        return out

    # -- Anthropic: content_block_delta events, channel = block index

    def _anthropic(self, name: str, data: dict[str, Any], restorer: Restorer) -> bytes:
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta")
            index = data.get("index")
            if isinstance(delta, dict):
                for key, json_text in (("text", False), ("partial_json", True)):
                    value = delta.get(key)
                    if isinstance(value, str):
                        data = {**data, "delta": {**delta, key: restorer.delta(
                            ("a", index), value, json_text)}}
                        return sse(data, name or "content_block_delta")
            return sse(data, name or "content_block_delta")
        if kind == "content_block_stop":
            return self._flush(("a", data.get("index")), restorer) + sse(data, name or kind)
        return sse(restorer.obj(data), name or str(kind))

    # -- OpenAI chat: choices[].delta.content and tool_calls[].function.arguments

    def _chat(self, data: dict[str, Any], restorer: Restorer) -> bytes:
        self._last_chunk = data
        before = b""
        choices = data.get("choices")
        if isinstance(choices, list):
            new_choices = []
            for choice in choices:
                if not isinstance(choice, dict):
                    new_choices.append(choice)
                    continue
                c = choice.get("index", 0)
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    delta = dict(delta)
                    if isinstance(delta.get("content"), str):
                        delta["content"] = restorer.delta(("c", c, "text"), delta["content"])
                    calls = delta.get("tool_calls")
                    if isinstance(calls, list):
                        delta["tool_calls"] = [self._chat_call(c, call, restorer)
                                               for call in calls]
                    choice = {**choice, "delta": delta}
                if choice.get("finish_reason"):
                    for channel in restorer.channels():
                        if channel[:2] == ("c", c):
                            before += self._flush(channel, restorer)
                new_choices.append(choice)
            data = {**data, "choices": new_choices}
        return before + sse(restorer.obj(data) if "choices" not in data else data)

    def _chat_call(self, c: Any, call: Any, restorer: Restorer) -> Any:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            return call
        fn = call["function"]
        if isinstance(fn.get("arguments"), str):
            fn = {**fn, "arguments": restorer.delta(("c", c, "tool", call.get("index", 0)),
                                                    fn["arguments"], True)}
        return {**call, "function": fn}

    # -- OpenAI Responses: output_text / function_call_arguments deltas, numbered events

    def _responses(self, name: str, data: dict[str, Any], restorer: Restorer) -> bytes:
        kind = str(data.get("type") or name)
        before = b""
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            json_text = kind.startswith("response.function_call")
            channel = ("r", kind.split(".")[1], data.get("output_index"),
                       data.get("content_index"), data.get("item_id"))
            if isinstance(data.get("delta"), str):
                data = {**data, "delta": restorer.delta(channel, data["delta"], json_text)}
        elif kind in ("response.output_text.done", "response.function_call_arguments.done"):
            for channel in restorer.channels():
                if channel[2:] == (data.get("output_index"), data.get("content_index"),
                                   data.get("item_id")) and channel[1] == kind.split(".")[1]:
                    before += self._flush(channel, restorer)
            data = restorer.obj(data)
        else:
            data = restorer.obj(data)
        return before + self._numbered(data, name or kind)

    def _numbered(self, data: dict[str, Any], name: str) -> bytes:
        seq = data.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool) and self.seq_shift:
            data = {**data, "sequence_number": seq + self.seq_shift}
        return sse(data, name)

    # -- a held tail sent as a delta of its own

    def _flush(self, channel: Any, restorer: Restorer, *, at_end: bool = False) -> bytes:
        """The channel's held tail as one more delta event, sent before the event that closes
        the channel (or at the stream's end)."""
        text, json_text = restorer.flush(channel)
        if not text:
            return b""
        if channel[0] == "a":
            delta = ({"type": "input_json_delta", "partial_json": text} if json_text
                     else {"type": "text_delta", "text": text})
            return sse({"type": "content_block_delta", "index": channel[1], "delta": delta},
                       "content_block_delta")
        if channel[0] == "c":
            base: dict[str, Any] = {k: self._last_chunk[k] for k in ("id", "object",
                                                                     "created", "model")
                                    if k in self._last_chunk}
            if channel[2] == "text":
                chat_delta: dict[str, Any] = {"content": text}
            else:
                chat_delta = {"tool_calls": [{"index": channel[3],
                                              "function": {"arguments": text}}]}
            return sse({**base, "choices": [{"index": channel[1], "delta": chat_delta,
                                             "finish_reason": None}]})
        kind = f"response.{channel[1]}.delta"
        event: dict[str, Any] = {"type": kind, "output_index": channel[2], "delta": text}
        if channel[3] is not None:
            event["content_index"] = channel[3]
        if channel[4] is not None:
            event["item_id"] = channel[4]
        if self.last_seq is not None:
            # Inserted before the current event (which moves one number up), or at the end.
            event["sequence_number"] = self.last_seq + 1 if at_end else self.last_seq
            self.last_seq += 1
            if not at_end:
                self.seq_shift += 1
        return sse(event, kind)
