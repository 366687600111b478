"""``burnless serve``: the metrics endpoints and the provider APIs on one aiohttp server.

    GET  /metrics /stats /healthz             Prometheus text, the same as JSON, "ok"
    POST /v1/messages[/count_tokens]          Anthropic Messages
    POST /v1/chat/completions                 OpenAI Chat Completions
    POST /v1/responses                        OpenAI Responses
    GET  /v1/models                           the tiers and burnless/auto (both SDKs' shape)

A provider request goes through the same steps as a ``run`` turn, in a straight line: read it
(size and time bounded) → find its session → policy reads its text → route (routing.py) →
for each candidate tier: breaker, key, response cache, budget reservation, masks, one upstream
attempt (upstream.py) → relay the answer → settle the attempt's ledger record → pin the session.
Every core call goes through ``core``.

Slow clients cannot starve the server: there are no handler slots to hold (asyncio), a client
has ``gateway.request_timeout`` seconds to send a request's headers (aiohttp's keep-alive timer
closes a connection whose request is not complete by then) and as long again for its body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web

from burnless.config import Config
from burnless.errors import UsageError
from burnless.gateway import core
from burnless.gateway.masking import Masked, Masker, Restorer
from burnless.gateway.protocols import (
    ANTHROPIC,
    CHAT,
    ENDPOINTS,
    OPENAI,
    BadRequest,
    Endpoint,
    RequestInfo,
    Usage,
    error_body,
    inspect,
)
from burnless.gateway.routing import (
    EXECUTION,
    PLANNING,
    NoRoute,
    Plan,
    Sessions,
    SessionState,
    choose,
    served_models,
)
from burnless.gateway.upstream import (
    VIA,
    Failed,
    Opened,
    Pool,
    Relayed,
    StreamRewrite,
    relay_json,
    relay_stream,
    request_headers,
    send,
    upstream_chunks,
    upstream_url,
)

SESSION_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
CACHE_MAX_BYTES = 1 << 20  # answers larger than this are not kept by cache.responses
_ALLOW_METRICS = "GET, HEAD"
_TEXT = "text/plain; charset=utf-8"
_VOLATILE = ("metadata", "user", "prompt_cache_key", "safety_identifier")  # not in a cache key
T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the ledger records it."""

    session: str | None
    client: str
    labels: tuple[str, ...]


class Gateway:
    """The server's state: config, policy, pins, pools, budget guard, breaker, metrics."""

    def __init__(self, cfg: Config, environ: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.environ = dict(os.environ if environ is None else environ)
        self.masker = Masker(cfg)
        self.sessions = Sessions(cfg.gateway.affinity_ttl, cfg.gateway.max_sessions)
        self.guard = core.make_guard(cfg)
        self.breaker = core.make_breaker(cfg)
        self.pool = Pool(cfg.gateway.connect_timeout)
        self.live = core.metrics_source(cfg.state_dir)
        self.cooling: dict[str, float] = {}  # tier -> monotonic time its retry-after ends

    # ------------------------------------------------------------------ the aiohttp app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.gateway.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        await self.pool.close()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if path in ("/metrics", "/stats", "/healthz"):
            if method not in ("GET", "HEAD"):
                return web.Response(status=405, text=f"method not allowed: use {_ALLOW_METRICS}\n",
                                    content_type="text/plain", headers={"Allow": _ALLOW_METRICS})
            return await self.metrics(path)
        if path == "/":
            if method not in ("GET", "HEAD"):
                return _text(405, f"method not allowed: use {_ALLOW_METRICS}\n",
                             {"Allow": _ALLOW_METRICS})
            return web.json_response({"name": "burnless gateway", "metrics": "/metrics"})
        if path in ("/v1/models", "/models"):
            if method not in ("GET", "HEAD"):
                return _error(_api_of(request), 405, f"{method} {path}: use GET",
                              {"Allow": _ALLOW_METRICS})
            return self.models()
        endpoint = ENDPOINTS.get(path) or ENDPOINTS.get("/v1" + path)  # /chat/completions too
        if endpoint is not None:
            if method != "POST":
                return _error(endpoint.api, 405, f"{method} {path}: use POST", {"Allow": "POST"})
            return await self.api(request, endpoint)
        if path.startswith("/v1/"):
            return _error(_api_of(request), 404, f"not found: {path} (the gateway serves "
                          "/v1/messages, /v1/messages/count_tokens, /v1/chat/completions, "
                          "/v1/responses and /v1/models)")
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

    def models(self) -> web.Response:
        """One listing both SDKs read: OpenAI's ``object``/``owned_by`` and Anthropic's
        ``type``/``display_name``/``has_more``."""
        data = [{"id": m, "object": "model", "type": "model", "display_name": m,
                 "created": 0, "created_at": "1970-01-01T00:00:00Z", "owned_by": "burnless"}
                for m in served_models(self.cfg)]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    # ------------------------------------------------------------------ a provider request

    async def api(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        api = endpoint.api
        if request.headers.get(VIA):
            return _error(api, 508, "loop detected: this request already went through a "
                          "burnless gateway; a tier's base_url points back at a gateway")
        try:
            raw = await self._read_body(request)
        except _Refused as exc:
            return _error(api, exc.status, str(exc), close=True)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(api, 400, f"the request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _error(api, 400, "the request body must be a JSON object")
        try:
            info = inspect(endpoint, body)
            caller = _caller(request, info)
        except BadRequest as exc:
            return _error(api, 400, str(exc))
        key = (caller.session, info.model) if caller.session else None
        state = self.sessions.get(key) if key else None
        sensitive = self.masker.sensitivity(endpoint, body, caller.labels)
        if state is not None and state.sensitive and not sensitive:
            sensitive = ("the session's earlier requests were sensitive",)
        try:
            plan = choose(self.cfg, api, info.model, text=info.last_user_text,
                          labels=caller.labels, session=caller.session is not None,
                          state=state, transcript=info.transcript,
                          sensitive=sensitive)
        except NoRoute as exc:
            if exc.status == 403:
                await durable(self._refusal, caller, core.new_task_id(), "", None,
                                        str(exc), "policy", (), EXECUTION)
            return _error(api, exc.status, str(exc), no_retry=exc.status == 403)
        return await Attempts(self, request, endpoint, body, info, plan, caller).run(key, state)

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

    def _refusal(self, caller: Caller, task_id: str, tier: str, model: str | None,
                 reason: str, refused_by: str, reasons: tuple[str, ...], role: str) -> None:
        core.record_refusal(self.cfg, core.make_record(
            run_id=core.new_run_id(), task_id=task_id, session=caller.session or "",
            role=role, tier=tier, model=model, status="refused", tokens=core.Tokens(),
            cost_usd=0.0, cost_source="priced", duration_s=0.0, route=(tier, reasons),
            redactions=0, client=caller.client, reason=reason, refused_by=refused_by))


class _Settle:
    """Records one attempt in the ledger (settling its budget reservation), once it is over."""

    def __init__(self, att: Attempts, reservation: core.Reservation | None, name: str,
                 model: str | None, sent_bytes: int, started: float, redactions: int,
                 route: tuple[str, tuple[str, ...]]) -> None:
        self.att, self.reservation, self.name, self.model = att, reservation, name, model
        self.sent_bytes, self.started, self.redactions, self.route = (
            sent_bytes, started, redactions, route)

    async def __call__(self, status: str, usage: Usage, reason: str, *,
                       unbilled: bool = False) -> None:
        """``unbilled``: an error answer, or nothing sent (providers bill neither): zero tokens,
        not an estimate. Anything else without usage (a timeout, a client gone, a stream of
        garbage) is estimated from the bytes sent and seen: never recorded as free."""
        att = self.att
        gw = att.gw
        tier = att.cfg.tiers[self.name]
        if not att.endpoint.billed:
            await durable(core.release, gw.guard, self.reservation)
            return
        cost: float | None
        if unbilled and usage.tokens is None:
            tokens, cost, source = core.Tokens(), 0.0, "priced"
        else:
            partial = usage.tokens is not None and not usage.output_reported
            tokens, cost, source = core.account(
                tier, usage.model or self.model, usage.tokens, usage.cache_write_1h,
                sent_bytes=self.sent_bytes, output_bytes=usage.output_bytes, partial=partial)
        att.spent += cost or 0.0
        record = core.make_record(
            run_id=core.new_run_id(), task_id=att.task_id, session=att.caller.session or "",
            role=att.plan.role, tier=self.name, model=usage.model or self.model, status=status,
            tokens=tokens, cost_usd=cost, cost_source=source,
            duration_s=time.monotonic() - self.started, route=self.route,
            redactions=self.redactions, client=att.caller.client,
            reason=core.mask_if_secret(gw.masker.policy, reason))
        await durable(core.settle, gw.guard, self.reservation, record)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Attempts:
    """One request's way through its candidate tiers: each attempt reserved, sent, recorded."""

    def __init__(self, gw: Gateway, request: web.Request, endpoint: Endpoint,
                 body: dict[str, Any], info: RequestInfo, plan: Plan, caller: Caller) -> None:
        self.gw, self.cfg = gw, gw.cfg
        self.request, self.endpoint, self.body, self.info = request, endpoint, body, info
        self.plan, self.caller = plan, caller
        self.task_id = core.new_task_id()
        self.notes: list[str] = []  # skipped tiers and failed attempts, for the route reasons
        self.spent = 0.0
        self._masked: Masked | None = None

    async def run(self, key: tuple[str, str] | None,
                  state: SessionState | None) -> web.StreamResponse:
        api = self.endpoint.api
        last: Failed | None = None
        tried = 0
        retried = False
        order = self._order()
        i = 0
        while i < len(order):
            name = order[i]
            tier = self.cfg.tiers[name]
            why = await asyncio.to_thread(core.breaker_open, self.gw.breaker, name)
            if why:
                self.notes.append(why)
                i += 1
                continue
            secret = core.upstream_key(tier, self.gw.environ)
            if tier.key != "client" and not secret and not tier.local:
                self.notes.append(f"{name} skipped: ${tier.api_key_env} is not set where "
                                  "burnless serve runs (nor in the tier's env)")
                i += 1
                continue
            tried += 1
            outcome = await self._attempt(name, secret)
            if not isinstance(outcome, Failed):
                if key is not None:
                    self._pin(key, state, name)
                return outcome
            last = outcome
            if not outcome.failover:
                return _passed_on(api, outcome)
            self.notes.append(f"{name}: {outcome.reason}")
            wait = outcome.retry_after
            is_last = i == len(order) - 1
            if (is_last and not retried and wait is not None
                    and 0 <= wait <= self.cfg.gateway.max_retry_wait):
                retried = True
                self.notes.append(f"retrying {name} after its retry-after ({wait:g}s)")
                await asyncio.sleep(wait)
                continue
            i += 1
        if last is not None and last.status is not None:
            return _passed_on(api, last)
        reasons = "; ".join(self.notes) or "no candidate tier"
        if tried == 0:
            await durable(self.gw._refusal, self.caller, self.task_id, self.plan.tier,
                                    self.plan.model, reasons, "breaker", self.plan.reasons,
                                    self.plan.role)
            return _error(api, 503, f"no upstream can serve this request now: {reasons}")
        status = 504 if last is not None and last.timed_out else 502
        return _error(api, status, f"no upstream answered: {reasons}")

    def _order(self) -> list[str]:
        """The candidates, those still inside a retry-after they were given moved last."""
        now = time.monotonic()
        cooling = self.gw.cooling
        fresh = [t for t in self.plan.candidates if cooling.get(t, 0) <= now]
        return fresh + [t for t in self.plan.candidates if t not in fresh]

    # -------------------------------------------------------------- one attempt

    def _body_for(self, name: str) -> tuple[bytes, int, Restorer | None]:
        """The bytes sent to tier ``name``: its model, the masks (not for a local tier), and
        for an OpenAI chat stream, a request for the usage chunk; with how many secrets were
        masked and what puts them back in the answer."""
        tier = self.cfg.tiers[name]
        body = self.body
        redactions, restorer = 0, None
        if not tier.local:
            if self._masked is None:
                self._masked = self.gw.masker.mask(self.endpoint, body)
            body = self._masked.body
            redactions = self._masked.count
            if self._masked.originals:
                restorer = Restorer(self._masked.originals)
        model = self.plan.model if name == self.plan.tier else (tier.model or self.info.model)
        changes: dict[str, Any] = {}
        if body.get("model") != model:
            changes["model"] = model
        if self.endpoint is CHAT and self.info.stream and not self.info.include_usage:
            opts = body.get("stream_options")
            changes["stream_options"] = {**(opts if isinstance(opts, dict) else {}),
                                         "include_usage": True}
        if changes:
            body = {**body, **changes}
        return orjson.dumps(body), redactions, restorer

    async def _attempt(self, name: str, secret: str | None) -> web.StreamResponse | Failed:
        tier = self.cfg.tiers[name]
        sent, redactions, restorer = self._body_for(name)
        model = self.plan.model if name == self.plan.tier else tier.model
        role = self.plan.role
        route = (name, (*self.plan.reasons, *self.notes))
        billed = self.endpoint.billed
        cache_key = None
        if billed and self.cfg.cache.responses:
            cache_key = core.cache_key(tier, role, self._canonical(sent))
            hit = await asyncio.to_thread(core.cache_get, self.cfg, cache_key)
            if hit is not None:
                return await self._replay(name, model, hit, restorer, route)
        reservation = None
        if billed:
            try:
                reservation = await reserve(
                    self.gw.guard, session=self._budget_session(), tier=tier, model=model,
                    prompt_tokens=core.estimate(len(sent)), max_output=self.info.max_tokens,
                    spent=self.spent)
            except core.BudgetExceeded as exc:
                await durable(self.gw._refusal, self.caller, self.task_id, name, model,
                                        str(exc), "budget", route[1], role)
                return _error(self.endpoint.api, 429, str(exc), kind="budget_exceeded",
                              no_retry=True)
        url = upstream_url(core.upstream_base_url(tier), self.endpoint,
                           self.request.query_string)
        headers = request_headers(self.request.headers, tier, secret)
        started = time.monotonic()
        settle = _Settle(self, reservation, name, model, len(sent), started, redactions, route)
        result: Opened | Failed | None = None
        relayed = Relayed(Usage(), 0, stream=False)
        try:
            result = await send(self.gw.pool, url, headers, sent, timeout=tier.timeout)
            if isinstance(result, Failed) and result.stale:
                result = await send(self.gw.pool, url, headers, sent, timeout=tier.timeout)
            if isinstance(result, Failed):
                await settle("failed", Usage(complete=True), result.reason,
                             unbilled=not result.timed_out)
                if result.failover:
                    await durable(core.breaker_record, self.gw.breaker, name, True)
                    if result.retry_after is not None:
                        self.gw.cooling[name] = time.monotonic() + min(
                            max(result.retry_after, 0), self.cfg.routing.breaker.cooldown)
                return result
            relayed.status = result.response.status
            resp = await self._relay(name, result, restorer, relayed,
                                     keep=CACHE_MAX_BYTES if cache_key else 0)
        except asyncio.CancelledError:
            # The client went away (or the server stops): the upstream request is cancelled
            # by closing its connection, and what it used so far is still recorded.
            if isinstance(result, Opened):
                result.response.close()
            await asyncio.shield(settle(
                "interrupted", relayed.usage,
                "the client disconnected before the answer was complete"))
            raise
        except BaseException:
            await durable(core.release, self.gw.guard, reservation)
            raise
        status, reason = "ok", relayed.error
        if relayed.error or relayed.client_gone:
            result.response.close()  # a broken upstream connection is not reused
        else:
            result.response.release()
        if relayed.client_gone:
            status = "interrupted"
        elif relayed.status != 200:
            status, reason = "failed", f"the upstream answered {relayed.status}"
        elif relayed.error:
            status = "failed"
        await settle(status, relayed.usage, reason, unbilled=relayed.status != 200)
        if relayed.status == 200 and not relayed.client_gone:
            await durable(core.breaker_record, self.gw.breaker, name,
                                    bool(relayed.error))
        if cache_key and status == "ok" and relayed.body is not None:
            await self._store(cache_key, relayed, model)
        return resp

    async def _relay(self, name: str, opened: Opened, restorer: Restorer | None,
                     relayed: Relayed, keep: int) -> web.StreamResponse:
        upstream = opened.response
        headers = {k.lower(): v for k, v in upstream.headers.items()}
        headers["x-burnless-tier"] = name
        ctype = headers.get("content-type", "")
        if upstream.status == 200 and ctype.startswith("text/event-stream"):
            relayed.stream = True
            rewrite = StreamRewrite(restorer, self._drop_usage_chunk())
            return await relay_stream(self.request, self.endpoint, headers,
                                      upstream_chunks(upstream), rewrite, relayed, keep)
        try:
            raw = await upstream.content.read()
        finally:
            upstream.release()
        resp, whole = await relay_json(self.request, self.endpoint, upstream.status, headers,
                                       raw, restorer)
        relayed.usage, relayed.client_gone = whole.usage, whole.client_gone
        relayed.body = raw if keep and len(raw) <= keep else None
        return resp

    def _drop_usage_chunk(self) -> bool:
        return self.endpoint is CHAT and self.info.stream and not self.info.include_usage

    async def _replay(self, name: str, model: str | None, hit: tuple[str, str | None],
                      restorer: Restorer | None, route: tuple[str, tuple[str, ...]],
                      ) -> web.StreamResponse:
        """An identical request answered from the response cache: nothing sent, no cost."""
        text, cached_model = hit
        try:
            stored = orjson.loads(text)
            body = stored["body"].encode("utf-8")
            stream = bool(stored["stream"])
            ctype = str(stored["content_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            stream, body, ctype = False, text.encode("utf-8"), "application/json"
        headers = {"content-type": ctype, "x-burnless-cache": "hit"}
        started = time.monotonic()
        if stream:
            relayed = Relayed(Usage(), 200, stream=True)

            async def chunks() -> AsyncIterator[bytes]:
                yield body

            resp = await relay_stream(self.request, self.endpoint, headers, chunks(),
                                      StreamRewrite(restorer, self._drop_usage_chunk()), relayed)
        else:
            resp, relayed = await relay_json(self.request, self.endpoint, 200, headers, body,
                                             restorer)
        record = core.make_record(
            run_id=core.new_run_id(), task_id=self.task_id, session=self.caller.session or "",
            role=self.plan.role, tier=name, model=cached_model or model, status="ok",
            tokens=core.Tokens(), cost_usd=0.0, cost_source="priced",
            duration_s=time.monotonic() - started, route=route, redactions=0,
            client=self.caller.client, cached=True)
        await durable(core.settle, self.gw.guard, None, record)
        return resp

    async def _store(self, key: str, relayed: Relayed, model: str | None) -> None:
        assert relayed.body is not None
        try:
            text = relayed.body.decode("utf-8")
        except UnicodeDecodeError:
            return
        ctype = "text/event-stream; charset=utf-8" if relayed.stream else "application/json"
        blob = orjson.dumps({"stream": relayed.stream, "content_type": ctype, "body": text})
        await durable(core.cache_put, self.cfg, key, blob.decode(),
                                relayed.usage.model or model)

    def _canonical(self, sent: bytes) -> str:
        """What makes two requests identical for the response cache: the endpoint and the
        body sent, without volatile metadata (Claude Code's session id, an OpenAI user)."""
        body = orjson.loads(sent)
        for k in _VOLATILE:
            body.pop(k, None)
        return self.endpoint.name + "\n" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()

    def _budget_session(self) -> str:
        # Without a session every request is its own: max_cost_per_session bounds each one.
        return self.caller.session or f"gateway-request-{self.task_id}"

    def _pin(self, key: tuple[str, str], state: SessionState | None, served: str) -> None:
        plan = self.plan
        st = state or SessionState()
        if plan.engine:
            if plan.role == PLANNING:
                st.tier, st.role = served, PLANNING
            elif not any(r.startswith("rule ") for r in plan.reasons):
                st.tier, st.role = served, EXECUTION
            st.transcript = self.info.transcript
        st.sensitive = st.sensitive or bool(plan.sensitive)
        if plan.engine or st.sensitive:
            self.gw.sessions.put(key, st)


# --------------------------------------------------------------------------- small helpers


async def durable(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """A blocking core call (a ledger append, a budget settle) run in a thread and finished
    even when the request is cancelled meanwhile: a client that hangs up right after its
    answer must not cancel the record of what it cost."""
    return await asyncio.shield(asyncio.to_thread(fn, *args, **kw))


async def reserve(guard: core.Guard, **kw: Any) -> core.Reservation | None:
    """``core.reserve`` in a thread; a reservation made for a request cancelled meanwhile is
    released, never left open against the budget."""
    loop = asyncio.get_running_loop()
    fut = asyncio.ensure_future(asyncio.to_thread(core.reserve, guard, **kw))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        def undo(done: asyncio.Future[core.Reservation | None]) -> None:
            if not done.cancelled() and done.exception() is None and done.result() is not None:
                loop.run_in_executor(None, core.release, guard, done.result())

        fut.add_done_callback(undo)
        raise


def _api_of(request: web.Request) -> str:
    h = request.headers
    return ANTHROPIC if ("anthropic-version" in h or "x-api-key" in h) else OPENAI


def _text(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain",
                        headers=dict(headers or {}))


def _error(api: str, status: int, message: str, headers: Mapping[str, str] | None = None, *,
           kind: str | None = None, no_retry: bool = False, close: bool = False,
           ) -> web.Response:
    hdrs = dict(headers or {})
    if no_retry:
        hdrs["x-should-retry"] = "false"  # both SDKs honour it: a refusal is not transient
    resp = web.Response(status=status, body=error_body(api, status, message, kind),
                        content_type="application/json", headers=hdrs)
    if close:
        resp.force_close()
    return resp


def _passed_on(api: str, failed: Failed) -> web.Response:
    """The last upstream's error answer, as it gave it (its body is already in the
    protocol's shape), or a shaped one when it gave none."""
    status = failed.status or 502
    if failed.body:
        headers = {k: v for k, v in failed.headers.items() if k != "content-type"}
        return web.Response(status=status, body=failed.body, headers=headers,
                            content_type="application/json")
    return _error(api, status, f"upstream error: {failed.reason}")


def _caller(request: web.Request, info: RequestInfo) -> Caller:
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
        found = h.get("x-claude-code-session-id") or info.session
        session = found if found and SESSION_ID.fullmatch(found) else None
    labels = tuple(x.strip() for v in h.getall("x-burnless-label", ())
                   for x in v.split(",") if x.strip())
    return Caller(session, _client(h.get("user-agent", "")), labels)


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


def check_binding(host: str, insecure_no_auth: bool) -> None:
    if loopback(host) or insecure_no_auth:
        return
    raise UsageError(
        f"refusing to listen on {host}: the gateway sends requests upstream with its tiers' "
        "API keys, so beyond this machine (127.0.0.1, ::1) anyone who can reach it would spend "
        "them. Virtual keys (gateway.keys) are not available yet; pass --insecure-no-auth to "
        "serve every client that can connect, or keep the default host")


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
                 environ: Mapping[str, str] | None = None) -> None:
        self.cfg, self.host, self.port = cfg, host, port
        self.environ = environ
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
        self.gateway = Gateway(self.cfg, self.environ)
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
    error, as is a host beyond loopback without ``insecure_no_auth``."""
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port}: expected 0..65535")
    check_binding(host, insecure_no_auth)
    server = Server(cfg, host, port)

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
        warn = "" if loopback(host) else (" WARNING: listening beyond this machine with "
                                          "--insecure-no-auth: anyone who can connect spends "
                                          "your tiers' keys;")
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
