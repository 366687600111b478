"""``burnless serve``: the metrics endpoints and the provider APIs on one aiohttp server.

    GET  /metrics /stats /healthz             Prometheus text, the same as JSON, "ok"
    POST /v1/messages[/count_tokens]          Anthropic Messages
    POST /v1/chat/completions                 OpenAI Chat Completions
    POST /v1/responses                        OpenAI Responses
    GET  /v1/models                           the tiers and burnless/auto (both SDKs' shape)

A provider request goes through the same steps as a ``run`` turn, in a straight line: its
virtual key when keys exist (keys.py) → read it (size and time bounded) → find its session →
policy reads its text → route (routing.py) → the key's allowed tiers →
for each candidate tier: breaker, key, response cache, budget reservation, masks, one upstream
attempt (upstream.py) → relay the answer → settle the attempt's ledger record (recorder.py,
in batches) → pin the session.
Every core call goes through ``core``.

Slow clients cannot starve the server: there are no handler slots to hold (asyncio), a client
has ``gateway.request_timeout`` seconds to send a request's headers (aiohttp's keep-alive timer
closes a connection whose request is not complete by then) and as long again for its body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import orjson

from burnless.aio import aiohttp, web
from burnless.errors import ConfigError, UsageError
from burnless.gateway import core
from burnless.gateway.attempts import Attempts, Caller, durable, error_response
from burnless.gateway.keys import Keyring, VirtualKey, client_credentials, presented
from burnless.gateway.masking import Masker
from burnless.gateway.protocols import (
    ANTHROPIC,
    ENDPOINTS,
    OPENAI,
    BadRequest,
    Endpoint,
    RequestInfo,
    inspect,
)
from burnless.gateway.recorder import Recorder
from burnless.gateway.routing import EXECUTION, NoRoute, Sessions, choose, served_models
from burnless.gateway.upstream import VIA, Pool
from burnless.settings import Config
from burnless.vocab import RefusedBy, Role

SESSION_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_ALLOW_METRICS = "GET, HEAD"
log = logging.getLogger("burnless")


class Gateway:
    """The server's state: config, policy, pins, pools, budget guard, breaker, metrics."""

    def __init__(self, cfg: Config, environ: Mapping[str, str] | None = None, *,
                 require_keys: bool = False) -> None:
        self.cfg = cfg
        self.environ = dict(os.environ if environ is None else environ)
        self.keys = Keyring(cfg, required=require_keys)
        if self.keys.error:
            raise ConfigError(self.keys.error)
        self.masker = Masker(cfg)
        # A shared backend first: the ledger copies every record from the first one on.
        shared = core.shared_state(cfg)
        self.sessions = Sessions(cfg.gateway.affinity_ttl, cfg.gateway.max_sessions,
                                 shared=shared)
        self.guard = core.make_guard(cfg)
        self.recorder = Recorder(self.guard)
        self.breaker = core.make_breaker(cfg)
        self.pool = Pool(cfg.gateway.connect_timeout)
        self.live = core.metrics_source(cfg)
        self.cooling: dict[str, float] = {}  # tier -> monotonic time its retry-after ends

    # ------------------------------------------------------------------ the aiohttp app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.gateway.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        await self.recorder.drain()
        await self.pool.close()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if path in ("/metrics", "/stats", "/healthz"):
            if method not in ("GET", "HEAD"):
                return web.Response(status=405, text=f"method not allowed: use {_ALLOW_METRICS}\n",
                                    content_type="text/plain", headers={"Allow": _ALLOW_METRICS})
            if path != "/healthz":  # spend per session and key: for key holders only
                denied = self.authenticate(request)
                if isinstance(denied, _Refused):
                    return _text(denied.status, f"{denied}\n", _CHALLENGE)
            return await self.metrics(path)
        if path == "/":
            if method not in ("GET", "HEAD"):
                return _text(405, f"method not allowed: use {_ALLOW_METRICS}\n",
                             {"Allow": _ALLOW_METRICS})
            return web.json_response({"name": "burnless gateway", "metrics": "/metrics"})
        if path in ("/v1/models", "/models"):
            if method not in ("GET", "HEAD"):
                return error_response(_api_of(request), 405, f"{method} {path}: use GET",
                                      {"Allow": _ALLOW_METRICS})
            key = self.authenticate(request)
            if isinstance(key, _Refused):
                return error_response(_api_of(request), key.status, str(key), _CHALLENGE)
            return self.models(key)
        endpoint = ENDPOINTS.get(path) or ENDPOINTS.get("/v1" + path)  # /chat/completions too
        if endpoint is not None:
            if method != "POST":
                return error_response(endpoint.api, 405, f"{method} {path}: use POST",
                                      {"Allow": "POST"})
            return await self.api(request, endpoint)
        if path.startswith("/v1/"):
            return error_response(
                _api_of(request), 404, f"not found: {path} (the gateway serves /v1/messages, "
                "/v1/messages/count_tokens, /v1/chat/completions, /v1/responses and /v1/models)")
        return _text(404, "not found: try /metrics, /stats or /healthz\n")

    async def metrics(self, path: str) -> web.StreamResponse:
        if path == "/healthz":
            return _text(200, "ok\n")
        try:
            if path == "/metrics":
                body = await asyncio.to_thread(core.metrics_text, self.live)
                return web.Response(body=body, headers={
                    "Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
            body = await asyncio.to_thread(core.stats_body, self.live)
            return web.Response(body=body, content_type="application/json")
        except Exception as exc:  # a scrape gets an answer, not a dropped connection
            return _text(500, f"error: {exc}\n")

    def authenticate(self, request: web.Request) -> VirtualKey | None | _Refused:
        """The request's virtual key (None when no key is required), or why it is refused.
        The store is re-read when it changed (one stat otherwise): a revoked key is refused
        from its next request."""
        keys = self.keys
        keys.reload()
        if not keys.required:
            return None
        if keys.error:
            return _Refused(500, f"burnless gateway: the virtual keys cannot be read "
                            f"({keys.error}); no request is served until this is fixed")
        value, problem = presented(request.headers)
        if problem:
            return _Refused(401, problem)
        if value is None:
            return _Refused(401, "this burnless gateway needs a virtual key (burnless keys "
                            "create NAME): send it as your API key (x-api-key or "
                            "Authorization: Bearer), or as X-Burnless-Key")
        key = keys.check(value)
        if key is None:
            return _Refused(401, "invalid virtual key: unknown, revoked or mistyped "
                            "(burnless keys list shows the keys of this gateway)")
        return key

    def models(self, key: VirtualKey | None = None) -> web.Response:
        """One listing both SDKs read: OpenAI's ``object``/``owned_by`` and Anthropic's
        ``type``/``display_name``/``has_more``; with a key, the tiers it may use."""
        data = [{"id": m, "object": "model", "type": "model", "display_name": m,
                 "created": 0, "created_at": "1970-01-01T00:00:00Z", "owned_by": "burnless"}
                for m in served_models(self.cfg)
                if key is None or m not in self.cfg.tiers or key.allows(m)]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    # ------------------------------------------------------------------ a provider request

    async def api(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        api = endpoint.api
        if request.headers.get(VIA):
            return error_response(api, 508, "loop detected: this request already went through "
                                  "a burnless gateway; a tier's base_url points back at one")
        key = self.authenticate(request)
        if isinstance(key, _Refused):  # before its body is read: a stranger costs nothing
            return error_response(api, key.status, str(key), _CHALLENGE, no_retry=True,
                                  close=True)
        try:
            raw = await self._read_body(request)
        except _Refused as exc:
            return error_response(api, exc.status, str(exc), close=True)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return error_response(api, 400, f"the request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return error_response(api, 400, "the request body must be a JSON object")
        try:
            info = inspect(endpoint, body)
            caller = _caller(request, info, key)
        except BadRequest as exc:
            return error_response(api, 400, str(exc))
        pin = caller.session
        state = None
        if pin:  # a pin on a shared server is a network round trip: not on the event loop
            state = (await asyncio.to_thread(self.sessions.get, pin) if self.sessions.remote
                     else self.sessions.get(pin))
        sensitive = self.masker.sensitivity(endpoint, body, caller.labels)
        if state is not None and state.sensitive and not sensitive:
            sensitive = ("the session's earlier requests were sensitive",)
        try:
            plan = choose(self.cfg, api, info.model, text=info.last_user_text,
                          labels=caller.labels, session=caller.session is not None,
                          state=state, transcript=info.transcript,
                          sensitive=sensitive, policy=self.masker.policy)
        except NoRoute as exc:
            if exc.status == 403:
                await durable(self.refusal, caller, core.new_task_id(), "", info.model,
                              str(exc), "policy", (), EXECUTION)
            return error_response(api, exc.status, str(exc), no_retry=exc.status == 403)
        if key is not None:
            if not key.allows(plan.tier):
                why = (f"key {key.name!r} may not use tier {plan.tier!r} (its tiers: "
                       f"{', '.join(key.settings.tiers)}); nothing was sent")
                await durable(self.refusal, caller, core.new_task_id(), plan.tier, plan.model,
                              why, "policy", plan.reasons, plan.role)
                return error_response(api, 403, why, no_retry=True)
            allowed = tuple(t for t in plan.candidates if key.allows(t))
            if allowed != plan.candidates:  # no failover to a tier the key may not use
                plan = dataclasses.replace(plan, candidates=allowed, reasons=(
                    *plan.reasons, f"key {key.name!r} may not fail over to "
                    + ", ".join(t for t in plan.candidates if t not in allowed)))
        try:
            return await Attempts(self, request, endpoint, body, info, plan, caller).run(
                pin, state)
        except Exception as exc:  # a bug, a full disk: the client still gets its protocol's error
            log.warning("gateway error on %s %s: %r", request.method, request.path, exc)
            return error_response(api, 500, f"burnless gateway internal error: {exc}")

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.cfg.gateway.max_body_bytes
        size = request.content_length
        if size is not None and size > limit:
            raise _Refused(413, f"request body of {size} bytes is over gateway.max_body_bytes "
                           f"({limit})")
        buf = bytearray()

        async def read() -> None:
            async for chunk in request.content.iter_any():
                buf.extend(chunk)
                if len(buf) > limit:
                    raise _Refused(413, f"request body over gateway.max_body_bytes ({limit})")

        try:
            await asyncio.wait_for(read(), self.cfg.gateway.request_timeout)
        except asyncio.TimeoutError:
            raise _Refused(408, f"the request body did not arrive within "
                           f"{self.cfg.gateway.request_timeout:g}s") from None
        except aiohttp.web.HTTPException as exc:  # a malformed chunked body
            raise _Refused(400, f"unreadable request body: {exc.reason}") from None
        except (aiohttp.ClientPayloadError, ValueError) as exc:
            raise _Refused(400, f"unreadable request body: {exc}") from None
        return bytes(buf)

    def refusal(self, caller: Caller, task_id: str, tier: str, model: str | None,
                 reason: str, refused_by: RefusedBy, reasons: tuple[str, ...], role: Role
                 ) -> None:
        core.record_refusal(self.cfg, core.make_record(
            run_id=core.new_run_id(), task_id=task_id, session=caller.session or "",
            role=role, tier=tier, model=model, status="refused", tokens=core.Tokens(),
            cost_usd=0.0, cost_source="priced", duration_s=0.0, route=(tier, reasons),
            redactions=0, client=caller.client, reason=reason, refused_by=refused_by,
            key=caller.key_name))


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- small helpers


def _api_of(request: web.Request) -> str:
    h = request.headers
    return ANTHROPIC if ("anthropic-version" in h or "x-api-key" in h) else OPENAI


def _text(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain",
                        headers=dict(headers or {}))


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="burnless"'}


def _caller(request: web.Request, info: RequestInfo, key: VirtualKey | None = None) -> Caller:
    """Who sent the request. With a virtual key, its session is the key's own (``NAME:id``):
    a client cannot reach another key's pins or session budget by naming its session; and the
    key's labels are added to the request's."""
    h = request.headers
    explicit = h.get("x-model-affinity") or h.get("x-burnless-session")
    session: str | None
    if explicit is not None:
        if not SESSION_ID.fullmatch(explicit):
            raise BadRequest(f"X-Model-Affinity / X-Burnless-Session {explicit[:60]!r} is not a "
                             "session id (letters, digits, '_', '-', '.', at most 128, no "
                             "leading dot)")
        session = explicit
    else:
        # The client's own session: Claude Code's header (or its metadata.user_id), Codex's
        # ``session-id`` header (the thread id, kept by ``codex exec resume``).
        found = h.get("x-claude-code-session-id") or info.session or h.get("session-id")
        session = found if found and SESSION_ID.fullmatch(found) else None
    labels = tuple(x.strip() for v in h.getall("x-burnless-label", ())
                   for x in v.split(",") if x.strip())
    if key is not None:
        session = f"{key.name}:{session}" if session else None
        labels = (*labels, *(x for x in key.settings.labels if x not in labels))
    return Caller(session, _client(h.get("user-agent", "")), labels, key, client_credentials(h))


def _client(agent: str) -> str:
    """A short, bounded name for the caller: its user agent up to the first comment."""
    name = agent.split("(", 1)[0].strip()
    name = "".join(c for c in name if c.isprintable())[:64]
    return name or "unknown"


# --------------------------------------------------------------------------- serving


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, insecure_no_auth: bool, keys: bool = False) -> None:
    """Beyond loopback only with virtual keys (``keys``: some exist) or ``insecure_no_auth``."""
    if loopback(host) or insecure_no_auth or keys:
        return
    raise UsageError(
        f"refusing to listen on {host}: the gateway sends requests upstream with its tiers' "
        "API keys, so beyond this machine (127.0.0.1, ::1) anyone who can reach it would spend "
        "them. Create virtual keys first (burnless keys create NAME: every request must then "
        "carry one), or pass --insecure-no-auth to serve every client that can connect, or "
        "keep the default host")


def _quiet_logger() -> logging.Logger:
    """aiohttp logs every malformed request with a traceback; a hostile client is not news.
    ``BURNLESS_GATEWAY_DEBUG=1`` shows them (and any error in a handler) on stderr."""
    log = logging.getLogger("burnless.gateway.http")
    if os.environ.get("BURNLESS_GATEWAY_DEBUG"):
        log.addHandler(logging.StreamHandler())
    else:
        log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


class Server:
    """The gateway on a port, from a background thread (tests, the demo) or the foreground."""

    def __init__(self, cfg: Config, host: str = "127.0.0.1", port: int = 0,
                 environ: Mapping[str, str] | None = None, *, require_keys: bool = False) -> None:
        self.cfg, self.host, self.port = cfg, host, port
        self.environ = environ
        self.require_keys = require_keys
        self.gateway: Gateway | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        assert self.bound is not None
        host, port = self.bound
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def start_async(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=32,
                                                     thread_name_prefix="burnless-gw"))
        self.gateway = Gateway(self.cfg, self.environ, require_keys=self.require_keys)
        gw = self.cfg.gateway
        self._runner = web.AppRunner(
            self.gateway.app(), access_log=None, handle_signals=False,
            handler_cancellation=True, shutdown_timeout=2.0,
            keepalive_timeout=gw.request_timeout, logger=_quiet_logger())
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        addr = sockets[0].getsockname() if sockets else (self.host, self.port)
        self.bound = (str(addr[0]), int(addr[1]))

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> Server:
        """Serve from a background thread; returns once the port is bound."""
        ready = threading.Event()
        error: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stop = asyncio.Event()

            async def run() -> None:
                try:
                    await self.start_async()
                except BaseException as exc:
                    error.append(exc)
                    ready.set()
                    return
                ready.set()
                assert self._stop is not None
                await self._stop.wait()
                await self.stop_async()

            try:
                loop.run_until_complete(run())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="burnless-gateway", daemon=True)
        self._thread.start()
        ready.wait(30)
        if error:
            self._thread.join()
            raise error[0]
        return self

    def close(self) -> None:
        if self._thread is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(cfg: Config, host: str, port: int, *, insecure_no_auth: bool = False) -> None:
    """Serve in the foreground until SIGINT or SIGTERM. A port that cannot be bound is a usage
    error, as is a host beyond loopback without virtual keys or ``insecure_no_auth``. Beyond
    loopback without that flag, keys stay required even if the last one is revoked."""
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port}: expected 0..65535")
    keys = len(Keyring(cfg))  # a damaged key store is a ConfigError here, before binding
    check_binding(host, insecure_no_auth, keys > 0)
    server = Server(cfg, host, port,
                    require_keys=keys > 0 or not (loopback(host) or insecure_no_auth))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start_async()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose "
                             "another with --port or metrics.port") from None
        bound_host, bound_port = server.bound or (host, port)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        base = f"http://{shown}:{bound_port}"
        if keys:
            warn = f" {keys} virtual key{'s' if keys > 1 else ''}: every request must carry one;"
        elif loopback(host):
            warn = ""
        else:
            warn = (" WARNING: listening beyond this machine with --insecure-no-auth: anyone "
                    "who can connect spends your tiers' keys;")
        sys.stderr.write(f"burnless: serving {base}/metrics (also /stats, /healthz) and the "
                         f"gateway: ANTHROPIC_BASE_URL={base} OPENAI_BASE_URL={base}/v1;"
                         f"{warn} Ctrl-C stops\n")
        sys.stderr.flush()
        try:
            await stop.wait()
        finally:
            await server.stop_async()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
