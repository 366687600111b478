"""An Anthropic Messages-compatible HTTP server in front of the simulated model (stdlib only).

Routes: ``POST /v1/messages`` (JSON or SSE with ``"stream": true``; ``?beta=true`` accepted),
``POST /v1/messages/count_tokens``, ``GET /`` and ``HEAD /``. Usage is billed by
``burnless.sim.billing`` with one in-memory cache for the server's life. Test hooks (the
``x-sim-fault`` header, the server-wide ``fault``) are described in
``docs/simulator.md``.
"""

from __future__ import annotations

import hashlib
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import orjson

from burnless.accounting.tokens import estimate_tokens
from burnless.sim.billing import CacheControlError, PromptCache, block_text, split_blocks
from burnless.sim.dialogue import Turn, next_turn

DEFAULT_PORT = 4357
FAULT_HEADER = "x-sim-fault"
REDACTED_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_CHUNK = 48  # characters per streamed text delta
MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's request size limit (413 above it)
_DIGITS = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: dict[str, Any]
    usage: dict[str, Any] | None = None
    stream: bool = False


def _error_body(status: int, message: str) -> dict[str, Any]:
    error_type = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": error_type, "message": message}}


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Fault:
    """An injected failure: answer ``status`` (if set) after sleeping ``sleep`` seconds,
    for the first ``times`` requests that carry the same spec (every one if None)."""

    status: int | None = None
    sleep: float = 0.0
    times: int | None = None


def parse_fault(spec: str) -> Fault:
    """Parse ``429``, ``sleep=2.5``, ``500,times=2``, ``sleep=1,529`` ... (comma-separated)."""
    status: int | None = None
    sleep, times = 0.0, None
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        try:
            if item.startswith("sleep="):
                sleep = float(item[6:])
            elif item.startswith("times="):
                times = int(item[6:])
            elif item.isdigit() and 400 <= int(item) <= 599:
                status = int(item)
            else:
                raise ValueError(item)
        except ValueError:
            raise ValueError(
                f"bad fault spec {spec!r}: use a status (400-599), sleep=SECONDS, times=N"
            ) from None
    if not math.isfinite(sleep) or sleep < 0 or (times is not None and times < 0):
        raise ValueError(f"bad fault spec {spec!r}: negative or infinite value")
    return Fault(status, sleep, times)


class SimState:
    """What the server keeps for its life: the prompt cache, fault counters, the log file."""

    def __init__(
        self,
        *,
        log: Path | None = None,
        fault: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = PromptCache(clock)
        self.log = log
        self.fault = fault or None
        if self.fault:
            parse_fault(self.fault)  # fail at start, not on the first request
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._log_failed = False

    def take_fault(self, spec: str) -> Fault:
        fault = parse_fault(spec)
        with self._lock:
            n = self._counts.get(spec, 0)
            self._counts[spec] = n + 1
        return fault if fault.times is None or n < fault.times else Fault()

    def write_log(self, record: Mapping[str, Any]) -> None:
        if self.log is None:
            return
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            try:
                with self.log.open("ab") as f:
                    f.write(line)
            except OSError as e:  # the request is still answered; said once on stderr
                if not self._log_failed:
                    self._log_failed = True
                    print(f"burnless sim: cannot write the log {self.log}: {e}", file=sys.stderr)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog: many clients may connect at once
    state: SimState

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that reset its connection: no traceback on stderr
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "burnless-sim"
    timeout = 120.0  # seconds a socket read or write may stall: a stuck client frees its thread

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the --log file is the record; stderr stays quiet

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (a malformed request line, an unsupported method, headers
        too long) in the API's error shape instead of an HTML page."""
        self.close_connection = True
        if not str(self.request_version).startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # a garbled request line: still send a status line
        try:
            self._json(code, _error_body(code, message or "bad request"))
        except OSError:
            pass

    def do_HEAD(self) -> None:
        status = 200 if urlsplit(self.path).path == "/" else 404
        self._log_simple(status)
        self._send(status, b"", "application/json")

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/":
            self._log_simple(404)
            self._json(404, _error_body(404, f"Not found: {self.path}"))
            return
        self._log_simple(200)
        self._json(200, {"name": "burnless sim", "simulated": True})

    def _log_simple(self, status: int) -> None:
        self.server.state.write_log(
            {
                "ts": _now(),
                "method": self.command,
                "path": self.path,
                "headers": _redacted(self.headers.items()),
                "body": None,
                "status": status,
                "usage": None,
            }
        )

    def do_POST(self) -> None:
        record: dict[str, Any] = {
            "ts": _now(),
            "method": "POST",
            "path": self.path,
            "headers": _redacted(self.headers.items()),
        }
        body: Any = None
        try:
            raw = self._read_body()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            answer = self._answer(body)
        except _HTTPError as e:
            answer = _Answer(e.status, _error_body(e.status, e.message))
        except Exception as e:  # a bug of the simulator: answer like the API would, and say it
            print(f"burnless sim: internal error: {e!r}", file=sys.stderr, flush=True)
            answer = _Answer(500, _error_body(500, f"simulator internal error: {e}"))
        # Logged before answering, so a client that has its answer finds the line written.
        record["body"] = body
        self.server.state.write_log(dict(record, status=answer.status, usage=answer.usage))
        try:
            if answer.stream:
                self._stream(answer.payload)
            elif answer.status >= 400:
                extra = {"retry-after": "0"} if answer.status in (429, 529) else None
                self._json(answer.status, answer.payload, extra)
            else:
                self._json(answer.status, answer.payload)
        except OSError:  # the client went away (or stalled past ``timeout``) mid-answer
            self.close_connection = True

    def _read_body(self) -> bytes:
        """The request body, by Content-Length or chunked. A bad, huge or unreadable body is an
        _HTTPError, and the connection is closed after the answer (the rest is not read)."""
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                return self._read_chunked()
            raw = self.headers.get("content-length")
            if raw is None:
                return b""
            if not _DIGITS.fullmatch(raw.strip()):
                raise _HTTPError(400, f"invalid Content-Length: {raw!r}")
            size = int(raw)
            if size > MAX_BODY_BYTES:
                raise _HTTPError(413, f"request body of {size} bytes: over {MAX_BODY_BYTES}")
            data = self.rfile.read(size)
            if len(data) < size:
                raise _HTTPError(400, f"request body cut short: {len(data)} of {size} bytes")
            return data
        except _HTTPError:
            self.close_connection = True
            raise
        except TimeoutError:
            self.close_connection = True
            raise _HTTPError(408, "timed out reading the request body") from None
        except OSError as e:
            self.close_connection = True
            raise _HTTPError(400, f"could not read the request body: {e}") from None

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_line):
                raise _HTTPError(400, "invalid chunked request body")
            size = int(size_line, 16)
            if size == 0:
                break
            if len(data) + size > MAX_BODY_BYTES:
                raise _HTTPError(413, f"request body over the limit of {MAX_BODY_BYTES} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _HTTPError(400, "chunked request body cut short")
            data += chunk
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, ignored
        return bytes(data)

    def _answer(self, body: Any) -> _Answer:
        state = self.server.state
        path = urlsplit(self.path).path.rstrip("/")
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            raise _HTTPError(404, f"Not found: {path}")
        spec = self.headers.get(FAULT_HEADER) or state.fault
        if spec:
            try:
                fault = state.take_fault(spec)
            except ValueError as e:
                raise _HTTPError(400, str(e)) from None
            if fault.sleep:
                time.sleep(fault.sleep)
            if fault.status:
                raise _HTTPError(fault.status, f"Simulated fault {fault.status} ({FAULT_HEADER})")
        if not _api_key(self.headers):
            raise _HTTPError(401, "x-api-key header is required")
        if not isinstance(body, dict):
            raise _HTTPError(400, "the request body must be a JSON object")
        _validate(body, count_only=path.endswith("count_tokens"))
        if path.endswith("count_tokens"):
            try:
                total = sum(b.tokens for b in split_blocks(body))
            except CacheControlError as e:
                raise _HTTPError(400, str(e)) from None
            return _Answer(200, {"input_tokens": total}, {"input_tokens": total})
        try:
            billed = state.cache.bill(body)
        except CacheControlError as e:
            raise _HTTPError(400, str(e)) from None
        turn, output_tokens = _limited(next_turn(body), int(body["max_tokens"]))
        usage = billed.with_output(output_tokens).to_api()
        message = {
            "id": "msg_sim_" + hashlib.sha256(orjson.dumps(body)).hexdigest()[:24],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": list(turn.content),
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        return _Answer(200, message, usage, stream=bool(body.get("stream")))

    # -- responses -------------------------------------------------------------------------

    def _stream(self, message: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", _request_id())
        self.end_headers()
        final = message["usage"]
        start = dict(message, content=[], stop_reason=None)
        start["usage"] = dict(final, output_tokens=min(1, final["output_tokens"]))
        self._event("message_start", {"type": "message_start", "message": start})
        self._event("ping", {"type": "ping"})
        for index, block in enumerate(message["content"]):
            for event in _block_events(index, block):
                self._event(str(event["type"]), event)
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {
                    k: final[k]
                    for k in (
                        "input_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                        "output_tokens",
                    )
                },
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, name: str, data: Mapping[str, Any]) -> None:
        payload = b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        self._send(status, orjson.dumps(payload), "application/json", extra)

    def _send(
        self, status: int, data: bytes, content_type: str, extra: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _request_id())
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _block_events(index: int, block: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    if block["type"] == "tool_use":
        empty = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield {"type": "content_block_start", "index": index, "content_block": empty}
        data = orjson.dumps(block["input"]).decode()
        for i in range(0, len(data), _CHUNK):
            delta = {"type": "input_json_delta", "partial_json": data[i : i + _CHUNK]}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
    else:
        start = {"type": "text", "text": ""}
        yield {"type": "content_block_start", "index": index, "content_block": start}
        text = str(block.get("text", ""))
        for i in range(0, len(text), _CHUNK):
            delta = {"type": "text_delta", "text": text[i : i + _CHUNK]}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def _limited(turn: Turn, max_tokens: int) -> tuple[Turn, int]:
    """Cut the answer at ``max_tokens`` (stop_reason ``max_tokens``), as the API does."""
    tokens = sum(estimate_tokens(block_text(b)) for b in turn.content)
    if tokens <= max_tokens:
        return turn, tokens
    text = "".join(str(b.get("text", "")) for b in turn.content if b.get("type") == "text")
    cut = text.encode("utf-8")[: max_tokens * 4].decode("utf-8", "ignore")
    content = ({"type": "text", "text": cut},) if cut else ()
    return Turn(content, "max_tokens"), estimate_tokens(cut)


def _validate(body: Mapping[str, Any], *, count_only: bool) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _HTTPError(400, "model: Field required")
    if not isinstance(body.get("tools") or [], list):
        raise _HTTPError(400, "tools: Input should be a valid list")
    if not isinstance(body.get("system") or "", (str, list)):
        raise _HTTPError(400, "system: Input should be a string or a list of blocks")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _HTTPError(400, "messages: Field required (a non-empty list)")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise _HTTPError(400, f"messages.{i}.role: must be 'user' or 'assistant'")
        if not isinstance(m.get("content"), (str, list)):
            raise _HTTPError(400, f"messages.{i}.content: Field required")
    if count_only:
        return
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise _HTTPError(400, "max_tokens: Field required (a non-negative integer)")


def _api_key(headers: Any) -> str:
    key = str(headers.get("x-api-key") or "").strip()
    if key:
        return key
    auth = str(headers.get("authorization") or "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _redacted(items: Any) -> dict[str, str]:
    return {
        str(k).lower(): "[REDACTED]" if str(k).lower() in REDACTED_HEADERS else str(v)
        for k, v in items
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _request_id() -> str:
    return "req_sim_" + uuid.uuid4().hex[:24]


class SimServer:
    """The simulator's HTTP server. ``start()`` serves from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Path | str | None = None,
        fault: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        server_class = _Server6 if ":" in host else _Server
        self._httpd: _Server = server_class((host, port), _Handler)
        self._httpd.state = SimState(log=Path(log) if log else None, fault=fault, clock=clock)
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SimState:
        return self._httpd.state

    @property
    def url(self) -> str:
        raw_host, port = self._httpd.server_address[:2]
        host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> SimServer:
        # A short poll interval keeps close() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="burnless-sim", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def sim_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Path | str | None = None,
    fault: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """Serve the simulator from a background thread; yields its base URL."""
    with SimServer(host, port, log=log, fault=fault, clock=clock) as server:
        yield server.url


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    log: Path | str | None = None,
    fault: str | None = None,
    out: IO[str] = sys.stdout,
) -> None:
    """Serve in the foreground until interrupted (``burnless sim serve``)."""
    server = SimServer(host, port, log=log, fault=fault)
    print(f"burnless sim: listening on {server.url}", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
