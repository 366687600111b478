"""The simulator's HTTP server (aiohttp): the simulated model behind the Anthropic, OpenAI and
Gemini APIs, on loopback.

Routes: ``POST /v1/messages`` (``?beta=true`` accepted) and ``/v1/messages/count_tokens``
(Anthropic), ``POST /v1/chat/completions``, ``POST /v1/responses`` and ``GET /v1/models``
(OpenAI), ``POST /v1beta/models/<model>:generateContent``, ``:streamGenerateContent`` and
``:countTokens`` (Gemini), ``GET /`` and ``HEAD /``. Each dialect lives in its own module
(``messages_api``, ``openai_api``, ``gemini_api``); this one reads requests (with the limits of
a careful server), checks keys, injects faults, logs, and writes the answers. Usage is billed
with one in-memory cache per dialect for the server's life. Everything is described in
``docs/simulator.md``.

aiohttp is imported here only: nothing on the path of ``burnless run``, ``route``, ``usage`` or
``--help`` imports this module.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
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
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from burnless.aio import RequestHandler, web  # aiohttp without its certificate loads
from burnless.sim import gemini_api, messages_api, openai_api
from burnless.sim.billing import PrefixCache, PromptCache
from burnless.sim.wire import Answer, ApiError

DEFAULT_PORT = 4357
FAULT_HEADER = "x-sim-fault"
REDACTED_HEADERS = frozenset(
    {"x-api-key", "authorization", "proxy-authorization", "x-goog-api-key", "api-key"}
)
MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's request size limit (413 above it)
BODY_TIMEOUT_S = 120.0  # a request body still incomplete after this long is a 408
WRITE_TIMEOUT_S = 120.0  # a client that reads no answer for this long is dropped
IDLE_TIMEOUT_S = 120.0  # a kept-alive connection idle for this long is closed
BACKLOG = 128  # listen backlog: many clients may connect at once
_GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([^/:]+):([A-Za-z]+)$")
_GEMINI_METHODS = ("generateContent", "streamGenerateContent", "countTokens")
# aiohttp logs the requests it refuses itself (a garbled request line, headers too long) with
# a traceback; the simulator answers them in the API's shape and keeps stderr quiet.
_QUIET = logging.getLogger("burnless.sim.http")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


# -- faults, state ----------------------------------------------------------------------------


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


def parse_fail_rates(
    specs: Mapping[str, float] | list[str] | tuple[str, ...] | None,
) -> dict[str, float]:
    """``["MODEL=P", ...]`` (or a mapping) as a table of failure probabilities in [0, 1].

    ``*`` as the model applies to every model the table does not name.
    """
    if specs is None:
        return {}
    items = specs.items() if isinstance(specs, Mapping) else [_split_rate(s) for s in specs]
    rates: dict[str, float] = {}
    for model, raw in items:
        try:
            rate = float(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"bad failure rate {model}={raw!r}: use MODEL=P, P in [0, 1]"
            ) from None
        if not model or not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad failure rate {model}={raw!r}: use MODEL=P, P in [0, 1]")
        rates[model] = rate
    return rates


def _split_rate(spec: str) -> tuple[str, str]:
    model, sep, rate = spec.rpartition("=")
    if not sep:
        raise ValueError(f"bad failure rate {spec!r}: use MODEL=P, P in [0, 1]")
    return model.strip(), rate.strip()


class SimState:
    """What the server keeps for its life: the prompt caches, fault counters, the log file,
    the failure-rate table and the accepted key."""

    def __init__(
        self,
        *,
        log: Path | None = None,
        fault: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        fail_rates: Mapping[str, float] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.cache = PromptCache(clock)  # Anthropic: explicit breakpoints
        self.openai_cache = PrefixCache(clock, minimum=1024, increment=128)
        self.gemini_cache = PrefixCache(clock, minimum=1024, increment=1)
        self.log = log
        self.fault = fault or None
        if self.fault:
            parse_fault(self.fault)  # fail at start, not on the first request
        self.fail_rates = parse_fail_rates(fail_rates)
        self.api_key = api_key or None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._log_failed = False

    def fail_rate(self, model: str) -> float:
        return self.fail_rates.get(model, self.fail_rates.get("*", 0.0))

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


# -- the connection -----------------------------------------------------------------------------


class _Protocol(RequestHandler):
    """aiohttp's connection handler, with two changes: the requests aiohttp refuses itself
    (a garbled request line, a bad Content-Length or chunked framing, headers too long) get an
    API-shaped error instead of a text page, and a client that half-closes its socket while
    its request is in hand still gets the answer (a 400 for a body cut short)."""

    def __init__(self, *args: Any, state: SimState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state
        self.busy = False  # a request of this connection is being answered
        self.client_done = False  # the client shut its side (EOF)
        self.body: asyncio.StreamReader | Any = None  # the body being read, if any

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # too late for an answer: drop the connection
            raise ConnectionError("response already started")
        text = _first_line(message or "bad request")
        if status == 500:
            text = "simulator internal error"
        # What failed to parse has no trustworthy method, path or headers: none are logged.
        record: dict[str, Any] = {
            "ts": _now(),
            "method": None,
            "path": None,
            "headers": {},
            "body": None,
        }
        self.state.write_log(dict(record, status=status, usage=None, error=text))
        resp = web.json_response(messages_api.error_body(status, text), status=status)
        resp.headers["request-id"] = _request_id()
        resp.force_close()
        return resp

    def eof_received(self) -> bool:  # type: ignore[override]
        self.client_done = True
        if self.body is not None:
            self.body.set_exception(ConnectionResetError("the client closed its side"))
        # The socket stays open for the answer to a request in hand (its handler may not have
        # started yet: look again shortly); an idle connection is closed then.
        asyncio.get_running_loop().call_later(0.05, self._close_if_idle)
        return True

    def _close_if_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "bad request"


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    """Which API dialect and handler answer a request path."""
    dialect: str  # anthropic | openai | gemini
    name: str  # what answers it
    methods: tuple[str, ...]
    model: str = ""  # Gemini: the model named in the path


def _route(path: str) -> _Route | None:
    path = path.rstrip("/") or "/"
    if path == "/":
        return _Route("anthropic", "root", ("GET", "HEAD"))
    if path == "/v1/messages":
        return _Route("anthropic", "messages", ("POST",))
    if path == "/v1/messages/count_tokens":
        return _Route("anthropic", "count_tokens", ("POST",))
    if path == "/v1/chat/completions":
        return _Route("openai", "chat", ("POST",))
    if path == "/v1/responses":
        return _Route("openai", "responses", ("POST",))
    if path == "/v1/models":
        return _Route("openai", "models", ("GET", "HEAD"))
    m = _GEMINI_PATH.match(path)
    if m and m.group(2) in _GEMINI_METHODS:
        return _Route("gemini", m.group(2), ("POST",), m.group(1))
    if path.startswith("/v1/models/") and path.count("/") == 3:
        return _Route("openai", "model", ("GET", "HEAD"), path.rsplit("/", 1)[1])
    return None


def _dialect_of(path: str) -> str:
    if path.startswith(("/v1beta", "/v1alpha")) or ":" in path.rsplit("/", 1)[-1]:
        return "gemini"
    if path.startswith(("/v1/chat", "/v1/responses", "/v1/models", "/v1/completions")):
        return "openai"
    return "anthropic"


def _error(dialect: str, status: int, message: str, param: str | None = None) -> Any:
    if dialect == "openai":
        return openai_api.error_body(status, message, param)
    if dialect == "gemini":
        return gemini_api.error_body(status, message)
    return messages_api.error_body(status, message)


class _BodyError(ApiError):
    """A body that cannot be read: answered, then the connection is closed."""


async def _read_body(request: web.Request, proto: _Protocol | None) -> bytes:
    """The request body (aiohttp has parsed Content-Length or chunked framing), at most
    MAX_BODY_BYTES, within BODY_TIMEOUT_S."""
    size = request.content_length
    if size is not None and size > MAX_BODY_BYTES:
        raise _BodyError(413, f"request body of {size} bytes: over {MAX_BODY_BYTES}")
    data = bytearray()
    if proto is not None:
        proto.body = request.content
        if proto.client_done and not request.content.is_eof():  # it will never come
            request.content.set_exception(ConnectionResetError("the client closed its side"))
    try:
        await asyncio.wait_for(_read_into(request, data), BODY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise _BodyError(408, "timed out reading the request body") from None
    except _BodyError:
        raise
    except Exception as e:  # aiohttp's payload errors (bad chunked framing), a reset, an EOF
        if size is not None and len(data) < size:
            raise _BodyError(400, f"request body cut short: {len(data)} of {size} bytes") from None
        raise _BodyError(400, f"could not read the request body: {_first_line(str(e))}") from None
    finally:
        if proto is not None:
            proto.body = None
    return bytes(data)


async def _read_into(request: web.Request, data: bytearray) -> None:
    while chunk := await request.content.readany():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise _BodyError(413, f"request body over the limit of {MAX_BODY_BYTES} bytes")


async def _handle(request: web.Request) -> web.StreamResponse:
    state: SimState = request.app[_STATE]
    proto = request.protocol if isinstance(request.protocol, _Protocol) else None
    if proto is not None:
        proto.busy = True
    try:
        return await _serve(state, request, proto)
    finally:
        if proto is not None:
            proto.busy = False


async def _serve(
    state: SimState, request: web.Request, proto: _Protocol | None
) -> web.StreamResponse:
    route = _route(request.path)
    dialect = route.dialect if route else _dialect_of(request.path)
    record: dict[str, Any] = {
        "ts": _now(),
        "method": request.method,
        "path": _logged_path(request.path_qs),
        "headers": _redacted(request.headers.items()),
        "body": None,
    }
    body: Any = None
    close = False
    try:
        if request.method not in ("GET", "HEAD", "POST"):
            raise ApiError(501, f"Unsupported method ({request.method!r})")
        if route is None or request.method not in route.methods:
            raise ApiError(404, f"Not found: {request.method} {request.path}")
        if request.method == "POST":
            raw = await _read_body(request, proto)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
        answer = await _answer(state, request, route, body)
    except _BodyError as e:
        close = True
        answer = Answer(e.status, _error(dialect, e.status, e.message))
    except ApiError as e:
        answer = Answer(e.status, _error(dialect, e.status, e.message, e.param))
    except Exception as e:  # a bug of the simulator: answer like the API would, and say it
        print(f"burnless sim: internal error: {e!r}", file=sys.stderr, flush=True)
        answer = Answer(500, _error(dialect, 500, f"simulator internal error: {e}"))
    # Logged before answering, so a client that has its answer finds the line written.
    record["body"] = body
    state.write_log(dict(record, status=answer.status, usage=answer.usage))
    if proto is not None and proto.client_done:
        close = True
    return await _send(request, answer, dialect, close)


async def _answer(state: SimState, request: web.Request, route: _Route, body: Any) -> Answer:
    if route.name == "root":
        return Answer(200, {"name": "burnless sim", "simulated": True})
    spec = request.headers.get(FAULT_HEADER) or state.fault
    if spec:
        try:
            fault = state.take_fault(spec)
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        if fault.sleep:
            await asyncio.sleep(fault.sleep)
        if fault.status:
            raise ApiError(fault.status, f"Simulated fault {fault.status} ({FAULT_HEADER})")
    _check_key(state, request, route.dialect)
    if route.name == "models":
        return openai_api.models()
    if route.name == "model":
        return openai_api.model(route.model)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if route.name == "messages":
        rate = state.fail_rate(str(body.get("model")))
        return messages_api.messages(state.cache, body, fail_rate=rate)
    if route.name == "count_tokens":
        return messages_api.count_tokens(body)
    if route.name == "chat":
        rate = state.fail_rate(str(body.get("model")))
        return openai_api.chat_completions(state.openai_cache, body, fail_rate=rate)
    if route.name == "responses":
        rate = state.fail_rate(str(body.get("model")))
        return openai_api.responses(state.openai_cache, body, fail_rate=rate)
    if route.name == "countTokens":
        return gemini_api.count_tokens(route.model, body)
    return gemini_api.generate(
        state.gemini_cache,
        route.model,
        body,
        stream=route.name == "streamGenerateContent",
        fail_rate=state.fail_rate(route.model),
    )


def _check_key(state: SimState, request: web.Request, dialect: str) -> None:
    """Any non-empty key is accepted, unless the server was given one (``--api-key``)."""
    headers = request.headers
    bearer = str(headers.get("authorization") or "")
    bearer = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
    if dialect == "gemini":
        key = str(headers.get("x-goog-api-key") or request.query.get("key") or "").strip()
    elif dialect == "openai":
        key = bearer
    else:
        key = str(headers.get("x-api-key") or "").strip() or bearer
    valid = bool(key) and (
        state.api_key is None or hmac.compare_digest(key.encode(), state.api_key.encode())
    )
    if valid:
        return
    if dialect == "gemini":
        if not key:
            raise ApiError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
            )
        raise ApiError(400, "API key not valid. Please pass a valid API key.")
    if dialect == "openai":
        if not key:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        raise ApiError(401, "Incorrect API key provided.")
    raise ApiError(401, "x-api-key header is required" if not key else "invalid x-api-key")


async def _send(
    request: web.Request, answer: Answer, dialect: str, close: bool
) -> web.StreamResponse:
    headers = {"request-id": _request_id(), **answer.headers}
    if dialect == "openai":
        headers["x-request-id"] = headers["request-id"]
    if answer.status in (429, 529, 503):
        headers["retry-after"] = "0"
    if answer.events is None or answer.status != 200:
        # For HEAD, aiohttp sends the headers (with the body's length) and no body.
        data = orjson.dumps(answer.payload)
        resp = web.Response(
            status=answer.status, body=data, content_type="application/json", headers=headers
        )
        if close:
            resp.force_close()
        return resp
    stream = web.StreamResponse(status=200, headers=headers)
    stream.content_type = "text/event-stream"
    stream.charset = "utf-8"
    stream.headers["cache-control"] = "no-cache"
    if close:
        stream.force_close()
    try:
        await asyncio.wait_for(_write_events(request, stream, answer.events), WRITE_TIMEOUT_S)
    except (ConnectionError, asyncio.TimeoutError):
        stream.force_close()  # the client went away, or stopped reading, mid-answer
    return stream


async def _write_events(
    request: web.Request, stream: web.StreamResponse, events: tuple[bytes, ...]
) -> None:
    await stream.prepare(request)
    for event in events:
        await stream.write(event)
    await stream.write_eof()


def _logged_path(path: str) -> str:
    """The path with a ``key=`` query value (Gemini's key) redacted."""
    parts = urlsplit(path)
    if not parts.query:
        return path
    query = [
        (k, "[REDACTED]" if k.lower() == "key" else v) for k, v in parse_qsl(parts.query, True)
    ]
    return f"{parts.path}?{urlencode(query, safe='[]')}"


def _redacted(items: Any) -> dict[str, str]:
    return {
        str(k).lower(): "[REDACTED]" if str(k).lower() in REDACTED_HEADERS else str(v)
        for k, v in items
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _request_id() -> str:
    return "req_sim_" + uuid.uuid4().hex[:24]


_STATE = web.AppKey("state", SimState)


def make_app(state: SimState) -> web.Application:
    """The aiohttp application: one catch-all route, so every refusal has the API's shape."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_STATE] = state
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app


# -- the server ---------------------------------------------------------------------------------


class SimServer:
    """The simulator's HTTP server, bound on construction (so ``url`` is known at once).

    ``start()`` serves from an event loop in a background thread (``close()`` stops it);
    ``serve_forever()`` serves in the foreground until interrupted.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Path | str | None = None,
        fault: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        fail_rates: Mapping[str, float] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.state = SimState(
            log=Path(log) if log else None,
            fault=fault,
            clock=clock,
            fail_rates=fail_rates,
            api_key=api_key,
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Bound here, not in the loop: a port in use fails the constructor, as it always did.
        self._sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self._sock.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def _serve(self, ready: Callable[[], None] | None = None) -> None:
        """Serve on the bound socket until ``_stopped`` is set; then close every connection."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        runner = web.AppRunner(make_app(self.state), access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        server = runner.server
        assert server is not None

        def protocol() -> _Protocol:
            # aiohttp's own handler (what a site would create), plus the API-shaped refusals.
            return _Protocol(
                server,
                state=self.state,
                loop=loop,
                logger=_QUIET,
                access_log=None,
                keepalive_timeout=IDLE_TIMEOUT_S,
            )

        # A site would create its own socket; ours is bound already, with our protocol.
        listener = await loop.create_server(protocol, sock=self._sock, backlog=BACKLOG)
        try:
            if ready is not None:
                ready()
            await self._stopped.wait()
        finally:
            listener.close()
            await runner.cleanup()

    def start(self) -> SimServer:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(started.set))
            except BaseException as e:  # surfaced by start() when it happens at start-up
                failure.append(e)
            finally:
                started.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="burnless-sim", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def serve_forever(self) -> None:
        asyncio.run(self._serve())

    def close(self) -> None:
        if self._thread is not None:
            loop, stopped = self._loop, self._stopped
            if loop is not None and stopped is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(stopped.set)
                except RuntimeError:
                    pass  # the loop has already stopped
            self._thread.join()
            self._thread = None
        self._sock.close()

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
    fail_rates: Mapping[str, float] | None = None,
    api_key: str | None = None,
) -> Iterator[str]:
    """Serve the simulator from a background thread; yields its base URL."""
    with SimServer(
        host, port, log=log, fault=fault, clock=clock, fail_rates=fail_rates, api_key=api_key
    ) as server:
        yield server.url


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    log: Path | str | None = None,
    fault: str | None = None,
    fail_rates: Mapping[str, float] | None = None,
    api_key: str | None = None,
    out: IO[str] = sys.stdout,
) -> None:
    """Serve in the foreground until interrupted (``burnless sim serve``)."""
    server = SimServer(host, port, log=log, fault=fault, fail_rates=fail_rates, api_key=api_key)
    print(f"burnless sim: listening on {server.url}", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
