"""A fake provider: a real aiohttp server on loopback that speaks Anthropic Messages, OpenAI Chat
Completions and OpenAI Responses (JSON and SSE), and misbehaves on request.

The answer echoes the last user message ("echo: <text>"), so a test can make the "model"
repeat whatever it was sent (a mask, say); with mode ``tool`` it calls a ``Write`` tool whose
``content`` is that echo. Streams are cut into deltas of ``chunk`` characters, so a mask arrives
split across several of them.

Modes (the server's ``mode`` for its first ``times`` requests, or a request's ``x-fake-mode``
header): ``ok``, ``tool``, a status (``429``, ``503``, ``529``...: an error answer in the
protocol's shape, with ``retry-after`` when set), ``garbage`` (a 200 event stream of junk),
``cut`` (a stream that stops after its first delta, connection closed), ``slow`` (``delay``
seconds before the headers), ``drip`` (a long stream, ``drips`` deltas ``drip`` seconds apart),
``close`` (the connection closed without an answer), ``greedy`` (an Anthropic JSON answer that
bills the worst case: every prompt byte / 4 as input, the whole ``max_tokens`` as output).

Usage is fixed so tests can compute costs: Anthropic 100 input, 20 cache-write, 10 cache-read
tokens and ceil(len(answer)/4) output; OpenAI 130 prompt tokens of which 10 cached, same output.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.served import Served

ANTHROPIC_USAGE = {"input_tokens": 100, "cache_creation_input_tokens": 20,
                   "cache_read_input_tokens": 10}
OPENAI_PROMPT, OPENAI_CACHED = 130, 10


def out_tokens(text: str) -> int:
    return -(-len(text.encode()) // 4)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class FakeUpstream:
    mode: str = "ok"
    times: int | None = None  # the mode holds for this many requests, then "ok"
    retry_after: str | None = None
    delay: float = 0.0
    drip: float = 0.05
    drips: int = 2000  # deltas a drip stream sends
    chunk: int = 7
    requests: list[Seen] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    tls: ssl.SSLContext | None = None  # serve HTTPS with this server context

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._served: Served | None = None

    # -- lifecycle

    def start(self) -> FakeUpstream:
        def app() -> web.Application:
            a = web.Application(client_max_size=64 << 20)
            a.router.add_route("*", "/{tail:.*}", self.handle)
            return a

        self._served = Served(app, tls=self.tls, handler_cancellation=True)
        self.url = self._served.start()
        return self

    def close(self) -> None:
        if self._served is not None:
            self._served.close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def _mode(self, request: web.Request) -> str:
        asked = request.headers.get("x-fake-mode")
        if asked:
            return asked
        with self._lock:
            n = self._count
            self._count += 1
        return self.mode if self.times is None or n < self.times else "ok"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.requests.append(Seen(request.path, {k.lower(): v for k, v in
                                                 request.headers.items()}, body, raw))
        path = request.path
        api = "anthropic" if path.startswith("/v1/messages") else "openai"
        mode = self._mode(request)
        if mode == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if mode == "slow":
            await asyncio.sleep(self.delay)
            mode = "ok"
        if mode.isdigit():
            status = int(mode)
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            if api == "anthropic":
                err = {"type": "error", "error": {"type": "overloaded_error" if status == 529
                                                  else "rate_limit_error" if status == 429
                                                  else "api_error",
                                                  "message": f"fake {status}"}}
            else:
                err = {"error": {"message": f"fake {status}", "type": "server_error",
                                 "code": None, "param": None}}
            return web.json_response(err, status=status, headers=headers)
        if path == "/v1/messages/count_tokens":
            return web.json_response({"input_tokens": 42})
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "bad json"}}, status=400)
        text = "echo: " + last_user_text(body)
        stream = body.get("stream") is True
        if mode == "greedy":  # bills the worst case: every prompt byte / 4, the whole cap
            cap = body.get("max_tokens") or body.get("max_completion_tokens") or 0
            usage = {"input_tokens": out_tokens(raw.decode()), "output_tokens": cap,
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            msg = anthropic_message(body, text, "ok")
            return web.json_response({**msg, "usage": usage})
        if path == "/v1/messages":
            if not stream:
                return web.json_response(anthropic_message(body, text, mode))
            return await self._sse(request, anthropic_events(body, text, mode, self.chunk), mode)
        if path.endswith("/chat/completions"):
            if not stream:
                return web.json_response(chat_completion(body, text, mode))
            return await self._sse(request, chat_events(body, text, mode, self.chunk), mode)
        if path.endswith("/responses"):
            if not stream:
                return web.json_response(response_object(body, text))
            return await self._sse(request, responses_events(body, text, self.chunk), mode)
        return web.json_response({"error": {"message": f"no route {path}"}}, status=404)

    async def _sse(self, request: web.Request, events: list[bytes],
                   mode: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream",
                                           "request-id": "req_fake"})
        await resp.prepare(request)
        if mode == "garbage":
            await resp.write(b"this is not an event stream \x00\xff\nat all\n")
            return resp
        if mode == "cut":
            await resp.write(b"".join(events[:3]))
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()
            return resp
        try:
            if mode == "drip":
                head, body_events = events[:2], events[2:]
                await resp.write(b"".join(head))
                for _ in range(self.drips):
                    await asyncio.sleep(self.drip)
                    await resp.write(body_events[0])
                events = body_events  # then the rest, the end of the answer
            for e in events:
                await resp.write(e)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled.set()
            raise
        return resp


# --------------------------------------------------------------------------- bodies


def last_user_text(body: dict[str, Any]) -> str:
    items = body.get("messages")
    if items is None:
        raw = body.get("input")
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
    for m in reversed(items):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                texts = [p.get("text", "") for p in c if isinstance(p, dict)
                         and p.get("type") in ("text", "input_text")]
                if texts:
                    return "".join(texts)
    return ""


def sse(data: Any, name: str | None = None) -> bytes:
    return (f"event: {name}\n".encode() if name else b"") + b"data: " + orjson.dumps(data) + \
        b"\n\n"


def pieces(text: str, n: int) -> list[str]:
    return [text[i:i + n] for i in range(0, len(text), n)] or [""]


def tool_input(text: str) -> dict[str, str]:
    return {"file_path": "/tmp/burnless-fake/out.txt", "content": text}


def anthropic_message(body: dict[str, Any], text: str, mode: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = (
        [{"type": "tool_use", "id": "toolu_1", "name": "Write", "input": tool_input(text)}]
        if mode == "tool" else [{"type": "text", "text": text}])
    size = orjson.dumps(tool_input(text)).decode() if mode == "tool" else text
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": "tool_use" if mode == "tool" else "end_turn",
            "stop_sequence": None,
            "usage": {**ANTHROPIC_USAGE, "output_tokens": out_tokens(size)}}


def anthropic_events(body: dict[str, Any], text: str, mode: str, chunk: int) -> list[bytes]:
    msg = anthropic_message(body, text, mode)
    start = {**msg, "content": [], "stop_reason": None,
             "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}
    out = [sse({"type": "message_start", "message": start}, "message_start")]
    if mode == "tool":
        out.append(sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "Write", "input": {}}},
            "content_block_start"))
        for p in pieces(orjson.dumps(tool_input(text)).decode(), chunk):
            out.append(sse({"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta", "partial_json": p}}, "content_block_delta"))
    else:
        out.append(sse({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}, "content_block_start"))
        for p in pieces(text, chunk):
            out.append(sse({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": p}}, "content_block_delta"))
    out.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    out.append(sse({"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"],
                                                       "stop_sequence": None},
                    "usage": {"output_tokens": msg["usage"]["output_tokens"]}},
                   "message_delta"))
    out.append(sse({"type": "message_stop"}, "message_stop"))
    return out


def _openai_usage(text: str) -> dict[str, Any]:
    out = out_tokens(text)
    return {"prompt_tokens": OPENAI_PROMPT, "completion_tokens": out,
            "total_tokens": OPENAI_PROMPT + out,
            "prompt_tokens_details": {"cached_tokens": OPENAI_CACHED}}


def chat_completion(body: dict[str, Any], text: str, mode: str) -> dict[str, Any]:
    if mode == "tool":
        args = orjson.dumps(tool_input(text)).decode()
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function", "function": {"name": "Write", "arguments": args}}]}
        size, finish = args, "tool_calls"
    else:
        message, size, finish = {"role": "assistant", "content": text}, text, "stop"
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "choices": [{"index": 0, "message": message,
                                                 "finish_reason": finish}],
            "usage": _openai_usage(size)}


def chat_events(body: dict[str, Any], text: str, mode: str, chunk: int) -> list[bytes]:
    include = (body.get("stream_options") or {}).get("include_usage") is True
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": body["model"]}
    extra = {"usage": None} if include else {}

    def c(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta,
                                         "finish_reason": finish}], **extra})

    out = [c({"role": "assistant", "content": ""})]
    if mode == "tool":
        args = orjson.dumps(tool_input(text)).decode()
        out.append(c({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                      "function": {"name": "Write", "arguments": ""}}]}))
        for p in pieces(args, chunk):
            out.append(c({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}))
        out.append(c({}, "tool_calls"))
        size = args
    else:
        for p in pieces(text, chunk):
            out.append(c({"content": p}))
        out.append(c({}, "stop"))
        size = text
    if include:
        out.append(sse({**base, "choices": [], "usage": _openai_usage(size)}))
    out.append(b"data: [DONE]\n\n")
    return out


def response_object(body: dict[str, Any], text: str) -> dict[str, Any]:
    out = out_tokens(text)
    return {"id": "resp_fake", "object": "response", "created_at": 1, "model": body["model"],
            "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                                     "status": "completed", "content": [
                                         {"type": "output_text", "text": text,
                                          "annotations": []}]}],
            "usage": {"input_tokens": OPENAI_PROMPT, "output_tokens": out,
                      "total_tokens": OPENAI_PROMPT + out,
                      "input_tokens_details": {"cached_tokens": OPENAI_CACHED},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def responses_events(body: dict[str, Any], text: str, chunk: int) -> list[bytes]:
    final = response_object(body, text)
    pending = {**final, "status": "in_progress", "output": [], "usage": None}
    seq = iter(range(10_000))
    item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress",
            "content": []}
    out = [
        sse({"type": "response.created", "response": pending, "sequence_number": next(seq)},
            "response.created"),
        sse({"type": "response.output_item.added", "output_index": 0, "item": item,
             "sequence_number": next(seq)}, "response.output_item.added"),
        sse({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0,
             "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []},
             "sequence_number": next(seq)}, "response.content_part.added"),
    ]
    for p in pieces(text, chunk):
        out.append(sse({"type": "response.output_text.delta", "item_id": "msg_1",
                        "output_index": 0, "content_index": 0, "delta": p,
                        "sequence_number": next(seq)}, "response.output_text.delta"))
    out += [
        sse({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0,
             "content_index": 0, "text": text, "sequence_number": next(seq)},
            "response.output_text.done"),
        sse({"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0,
             "content_index": 0, "part": {"type": "output_text", "text": text,
                                          "annotations": []},
             "sequence_number": next(seq)}, "response.content_part.done"),
        sse({"type": "response.output_item.done", "output_index": 0,
             "item": final["output"][0], "sequence_number": next(seq)},
            "response.output_item.done"),
        sse({"type": "response.completed", "response": final, "sequence_number": next(seq)},
            "response.completed"),
    ]
    return out
