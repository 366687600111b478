"""One provider request's way through its candidate tiers (failover and money).

For each candidate, in order (those inside a ``retry-after`` they were given last): its breaker,
its key, the response cache, a budget reservation, the body it is sent (its model, masks unless
it is local, an OpenAI usage chunk asked for), one upstream attempt, the answer relayed, and one
ledger record settling the reservation. A failure before the first byte moves to the next
candidate; a ``retry-after`` within ``gateway.max_retry_wait`` is waited for when no one else
can serve. The session's pin follows the tier that served.

Blocking core calls (budget, breaker, cache files) run in threads; the ones that record money
finish even when the client hangs up meanwhile (``durable``). Ledger records go to the
gateway's recorder, which writes them in batches and is not cancelled with a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from burnless.aio import web
from burnless.gateway import core
from burnless.gateway.masking import Masked, Restorer
from burnless.gateway.protocols import CHAT, Endpoint, RequestInfo, Usage, error_body
from burnless.gateway.routing import EXECUTION, PLANNING, Plan, SessionState
from burnless.gateway.upstream import (
    Failed,
    Opened,
    Relayed,
    StreamRewrite,
    relay_json,
    relay_stream,
    request_headers,
    send,
    upstream_chunks,
    upstream_url,
)
from burnless.vocab import CostSource, RecordStatus

if TYPE_CHECKING:
    from burnless.gateway.app import Gateway
    from burnless.gateway.keys import VirtualKey

log = logging.getLogger("burnless")
CACHE_MAX_BYTES = 1 << 20  # answers larger than this are not kept by cache.responses
_VOLATILE = ("metadata", "user", "prompt_cache_key", "safety_identifier")  # not in a cache key
T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the ledger records it."""

    session: str | None
    client: str
    labels: tuple[str, ...]
    key: VirtualKey | None = None  # the virtual key it carried (gateway.keys)
    credentials: tuple[tuple[str, str], ...] = ()  # its own, for `key: client` tiers

    @property
    def key_name(self) -> str:
        return self.key.name if self.key is not None else ""


async def durable(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """A blocking core call (a ledger append, a budget settle) run in a thread and finished
    even when the request is cancelled meanwhile: a client that hangs up right after its
    answer must not cancel the record of what it cost."""
    return await asyncio.shield(asyncio.to_thread(fn, *args, **kw))


async def reserve(guard: core.Guard, **kw: Any) -> core.Reservation | None:
    """``core.reserve`` in a thread; a reservation made for a request cancelled meanwhile is
    released, never left open against the budget. Without budgets (the workspace's, or the
    request's virtual key's) there is nothing to reserve and no thread to wait for."""
    key: core.KeyLimits | None = kw.get("key")
    if not guard.active and not (key is not None and key.limited):
        return None
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


def error_response(api: str, status: int, message: str,
                   headers: Mapping[str, str] | None = None, *, kind: str | None = None,
                   no_retry: bool = False, close: bool = False) -> web.Response:
    """An error in the protocol's shape (``kind`` overrides the type its status implies)."""
    hdrs = dict(headers or {})
    if no_retry:
        hdrs["x-should-retry"] = "false"  # both SDKs honour it: a refusal is not transient
    resp = web.Response(status=status, body=error_body(api, status, message, kind),
                        content_type="application/json", headers=hdrs)
    if close:
        resp.force_close()
    return resp


def passed_on(api: str, failed: Failed) -> web.Response:
    """The last upstream's error answer, as it gave it (its body is already in the
    protocol's shape), or a shaped one when it gave none."""
    status = failed.status or 502
    if failed.body:
        headers = {k: v for k, v in failed.headers.items() if k != "content-type"}
        return web.Response(status=status, body=failed.body, headers=headers,
                            content_type="application/json")
    return error_response(api, status, f"upstream error: {failed.reason}")


class _Settle:
    """Records one attempt in the ledger (settling its budget reservation), once it is over."""

    def __init__(self, att: Attempts, reservation: core.Reservation | None, name: str,
                 model: str | None, sent_bytes: int, started: float, redactions: int,
                 route: tuple[str, tuple[str, ...]]) -> None:
        self.att, self.reservation, self.name, self.model = att, reservation, name, model
        self.sent_bytes, self.started, self.redactions, self.route = (
            sent_bytes, started, redactions, route)

    async def __call__(self, status: RecordStatus, usage: Usage, reason: str, *,
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
        source: CostSource
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
            redactions=self.redactions, client=att.caller.client, key=att.caller.key_name,
            reason=core.mask_if_secret(gw.masker.policy, reason) if reason else "")
        written = gw.recorder.record(self.reservation, record,
                                     wait=self.reservation is not None)
        if self.reservation is not None:
            # A budgeted request returns once its real cost is settled, so the session's
            # next request is checked against it rather than against the reservation.
            try:
                await asyncio.shield(written)
            except Exception:
                pass  # the recorder logged it; the answer has gone out


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

    async def run(self, key: str | None, state: SessionState | None) -> web.StreamResponse:
        api = self.endpoint.api
        last: Failed | None = None
        tried = 0
        retried = False
        order = self._order()
        i = 0
        while i < len(order):
            name = order[i]
            tier = self.cfg.tiers[name]
            why = (await asyncio.to_thread(core.breaker_open, self.gw.breaker, name)
                   if self.gw.breaker.shared  # a round trip to the shared server
                   else core.breaker_open(self.gw.breaker, name))  # a small file read: inline
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
            if tier.key == "client" and self.caller.key is not None and not (
                    self.caller.credentials):
                # The caller's credential slot held its virtual key, which is never forwarded.
                self.notes.append(f"{name} skipped: key: client, and the caller sent no "
                                  "credential of its own (its x-api-key / Authorization is "
                                  "its burnless virtual key; send that as X-Burnless-Key)")
                i += 1
                continue
            tried += 1
            outcome = await self._attempt(name, secret)
            if not isinstance(outcome, Failed):
                if key is not None and outcome.status < 400:
                    await self._pin(key, state, name)
                return outcome
            last = outcome
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
            return passed_on(api, last)
        reasons = "; ".join(self.notes) or "no candidate tier"
        if tried == 0:
            await durable(self.gw.refusal, self.caller, self.task_id, self.plan.tier,
                          self.plan.model, reasons, "breaker", self.plan.reasons,
                          self.plan.role)
            return error_response(api, 503,
                                  f"no upstream can serve this request now: {reasons}")
        status = 504 if last is not None and last.timed_out else 502
        return error_response(api, status, f"no upstream answered: {reasons}")

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
                    spent=self.spent,
                    key=self.caller.key.limits if self.caller.key is not None else None)
            except core.BudgetExceeded as exc:
                await durable(self.gw.refusal, self.caller, self.task_id, name, model,
                              str(exc), "budget", route[1], role)
                return error_response(self.endpoint.api, 429, str(exc),
                                      kind="budget_exceeded", no_retry=True)
        url = upstream_url(core.upstream_base_url(tier), self.endpoint,
                           self.request.query_string)
        headers = request_headers(self.request.headers, tier, secret, self.caller.credentials)
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
        status: RecordStatus = "ok"
        reason = relayed.error
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
            # A success only resets a failure streak; the usual one has none (a small file
            # read here, as breaker_open's) and needs no thread.
            if relayed.error or core.breaker_streak(self.gw.breaker, name):
                await durable(core.breaker_record, self.gw.breaker, name, bool(relayed.error))
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
            client=self.caller.client, cached=True, key=self.caller.key_name)
        self.gw.recorder.record(None, record)
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

    async def _pin(self, key: str, state: SessionState | None, served: str) -> None:
        plan = self.plan
        st = state or SessionState()
        if plan.engine:
            if plan.role == PLANNING:
                st.tier, st.role = served, PLANNING
            elif not plan.by_rule:
                st.tier, st.role = served, EXECUTION
            if len(st.transcripts) >= 16 and self.info.model not in st.transcripts:
                st.transcripts.pop(next(iter(st.transcripts)))  # a client cycling model ids
            st.transcripts[self.info.model] = self.info.transcript
        st.sensitive = st.sensitive or bool(plan.sensitive)
        if plan.engine or st.sensitive:
            if self.gw.sessions.remote:
                await durable(self.gw.sessions.put, key, st)
            else:
                self.gw.sessions.put(key, st)
