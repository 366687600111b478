"""API tiers of kind ``api: openai``: one call to an OpenAI-compatible Chat Completions endpoint
(OpenAI, Ollama, vLLM, OpenRouter...), over the standard library's ``http.client``.

No SDK: the ``openai`` package is not a dependency of burnless, and a plain streamed POST is all
a call needs. The request is laid out for the provider's automatic prefix cache (OpenAI caches
the longest previously seen prefix of 1,024 tokens or more)::

    system:  [stable prefix]                          (same for every turn)
    user:    [plan] [capsule 1] ... [capsule N] [task]   (grows at its end, the task last)

The answer is streamed with ``stream_options.include_usage`` so the last chunk carries the
usage; cached prompt tokens are subtracted from the input (the ledger's four
figures never overlap). Like the Anthropic tier, this module retries 408/429/5xx/529, connection
errors and streams that break off (twice) with backoff, never sooner than ``retry-after`` says,
all within the call's deadline; a watchdog shuts the socket at the deadline, so a server that
trickles bytes cannot hold a call past it; Ctrl-C abandons the request.

Key and endpoint follow the scrubbed-environment rule of command tiers: the key variable
(``api_key_env``, default ``OPENAI_API_KEY``) and ``OPENAI_BASE_URL`` are read from the
caller's environment only when ``pass_env`` lists them, else from the tier's ``env``.
``base_url`` in the tier wins over both (it ends in ``/v1``, as OpenAI's SDKs expect); the
default is OpenAI's API. A ``local: true`` tier without a key is called without one (Ollama).
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import orjson

from burnless.accounting.tokens import Tokens
from burnless.formats import WorkerOutput
from burnless.prompt import Prompt
from burnless.settings import Config, Tier
from burnless.workers import Call, Reply, require_key

# The log, URL display and backoff rules are the Anthropic tier's: one behaviour for API tiers.
from burnless.workers.anthropic_api import _backoff, _open_log, _shown

FORMAT = "openai-api"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "OPENAI_BASE_URL"
MAX_RETRIES = 2  # 3 attempts in all, like the Anthropic tier
RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_ERROR_BODY = 64 * 1024  # bytes of an error answer kept for the message


# --------------------------------------------------------------------------- request


def base_url(tier: Tier) -> str:
    """``tier.base_url`` › ``OPENAI_BASE_URL`` as the tier's worker sees it › the default."""
    return tier.base_url or tier.env_value(BASE_URL_ENV) or DEFAULT_BASE_URL


def build_request(prompt: Prompt, tier: Tier, url: str) -> dict[str, Any]:
    """The Chat Completions parameters for a prompt (no key, no transport options)."""
    user = "".join(b for b in prompt.blocks if b) + prompt.task
    # OpenAI's reasoning models refuse max_tokens; most compatible servers only know it.
    cap = "max_completion_tokens" if urlsplit(url).hostname == "api.openai.com" else "max_tokens"
    return {
        "model": tier.model,
        cap: tier.max_output_tokens,
        "messages": [
            {"role": "system", "content": prompt.stable_prefix},
            {"role": "user", "content": user},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def usage_of(u: Mapping[str, Any]) -> Tokens:
    """An OpenAI ``usage`` object in burnless's convention (cached tokens out of the input)."""

    def num(v: object) -> int:
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    details = u.get("prompt_tokens_details")
    cached = num(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    prompt = num(u.get("prompt_tokens"))
    return Tokens(input=max(prompt - cached, 0), output=num(u.get("completion_tokens")),
                  cache_read=min(cached, prompt))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``retry-after-ms`` / ``retry-after`` header (seconds or an HTTP date) asks."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000
        raw = headers.get("retry-after")
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            return float(email.utils.parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- one attempt


@dataclass(frozen=True)
class _Failure:
    """Why an API attempt failed, and whether and when to retry."""
    message: str
    retryable: bool
    wait: float | None = None


class _Incomplete(Exception):
    """The stream ended without its final chunk: the answer may be cut short."""


@dataclass
class _Seen:
    """What an attempt streamed before it stopped, and what failed attempts reported."""

    text: str = ""
    model: str | None = None
    finish: str | None = None
    usage: Tokens | None = None
    spent: Tokens = Tokens()

    def billed(self) -> Tokens | None:
        if self.usage is None:
            return self.spent if self.spent != Tokens() else None
        return self.spent + self.usage


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname or "", parts.port, timeout=timeout)


def _attempt(
    url: str, body: bytes, key: str | None, remaining: float, call: Call, seen: _Seen,
    closer: list[Callable[[], None]],
) -> _Failure | None:
    """Send once and read the streamed answer into ``seen``; None on a complete answer."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/chat/completions"
    conn = _connect(url, remaining)
    closer[:] = [lambda: _shut(conn)]
    headers = {"content-type": "application/json", "accept": "text/event-stream",
               "user-agent": "burnless"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    try:
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            return _Failure(f"cannot reach {_shown(url)}: {exc}", retryable=True)
        if resp.status != 200:
            raw = resp.read(MAX_ERROR_BODY)
            return _status_failure(resp.status, raw, {k.lower(): v for k, v in resp.getheaders()},
                                   call.tier)
        _read_stream(resp, call, seen)
        return None
    finally:
        closer[:] = []
        conn.close()


def _shut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # a blocked read returns at once
        except OSError:
            pass


def _status_failure(status: int, raw: bytes, headers: Mapping[str, str], tier: Tier) -> _Failure:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    detail = ""
    kind = ""
    if isinstance(err, dict):
        detail, kind = str(err.get("message") or ""), str(err.get("type") or err.get("code") or "")
    elif isinstance(err, str):
        detail = err
    detail = detail or raw[:300].decode("utf-8", "replace").strip()
    if status == 401:
        return _Failure(
            f"authentication failed (401): check ${tier.api_key_env}, the key tier "
            f"{tier.name!r} sends (from tiers.{tier.name}.env, or your environment when "
            f"tiers.{tier.name}.pass_env lists it): {detail}", retryable=False)
    message = f"API error {status}" + (f" {kind}" if kind else "") + f": {detail}"
    if status == 404:
        message += f" (check tiers.{tier.name}.model: {tier.model!r} and base_url)"
    return _Failure(message, status in RETRYABLE or status >= 500, retry_after(headers))


def _read_stream(resp: http.client.HTTPResponse, call: Call, seen: _Seen) -> None:
    done = False
    for raw in iter(resp.readline, b""):
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue  # comments (keep-alives), event names, blank separators
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _Incomplete(f"unreadable stream chunk {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), (dict, str)):
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise _Incomplete(f"API error in the answer stream: {msg}")
        if isinstance(chunk.get("model"), str):
            seen.model = chunk["model"][:200]
        if isinstance(chunk.get("usage"), dict):
            seen.usage = usage_of(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                seen.text += delta["content"]
                if call.on_line is not None and "\n" in delta["content"]:
                    last = seen.text.rstrip().rsplit("\n", 1)[-1].strip()
                    if last:
                        call.on_line(last)
            if choice.get("finish_reason"):
                seen.finish = str(choice["finish_reason"])
    if not done and seen.finish is None:
        raise _Incomplete("the answer stream ended before its last chunk")


# --------------------------------------------------------------------------- dispatch


def _empty(usage: Tokens | None, finding: str) -> WorkerOutput:
    return WorkerOutput(text="", format=FORMAT, usage=usage, cost_usd=None, model=None,
                        is_error=True, findings=(finding,))


def _output(seen: _Seen, tier: Tier, notes: tuple[str, ...]) -> WorkerOutput:
    findings = notes
    if seen.finish == "length":
        findings = (f"the answer was cut at max_output_tokens ({tier.max_output_tokens}); raise "
                    f"tiers.{tier.name}.max_output_tokens", *findings)
    elif seen.finish == "content_filter":
        findings = ("the provider filtered the answer (finish_reason: content_filter)",
                    *findings)
    if seen.usage is None:
        findings = (*findings, "the server reported no usage (stream_options.include_usage "
                    "unsupported?): tokens are estimated")
    return WorkerOutput(text=seen.text, format=FORMAT, usage=seen.billed(), cost_usd=None,
                        model=seen.model, is_error=False, findings=findings)


def dispatch(call: Call) -> Reply:
    """Send the prompt to the tier's model; never raises for API, network or timeout errors."""
    started = time.monotonic()
    deadline = started + call.timeout
    tier = call.tier
    with _open_log(call) as log:

        def done(output: WorkerOutput, error: str = "", *, timed_out: bool = False,
                 interrupted: bool = False) -> Reply:
            if error:
                error = log.scrub(error)
                log.line(f"error: {error}")
            stopped = timed_out or interrupted
            code = None if stopped else (1 if error else 0)
            return Reply(output, code, time.monotonic() - started, timed_out=timed_out,
                         interrupted=interrupted, error=error)

        key = tier.env_value(tier.api_key_env)
        log.secret = key or ""
        if not key and not tier.local:
            why = (f"tier {tier.name!r}: ${tier.api_key_env} is not set or not passed to the "
                   f"tier (list it in tiers.{tier.name}.pass_env)")
            return done(_empty(Tokens(), why), why)
        url = base_url(tier)
        params = build_request(call.prompt, tier, url)
        log.line(f"burnless api tier {tier.name!r}: openai at {_shown(url)}, "
                 f"timeout {call.timeout:g}s")
        log.line(f"request: model {params['model']}, system "
                 f"{len(call.prompt.stable_prefix.encode())} bytes, user "
                 f"{len(params['messages'][1]['content'].encode())} bytes")
        body = orjson.dumps(params)
        seen = _Seen()
        closer: list[Callable[[], None]] = []
        timed_out = f"timed out after {call.timeout:g}s"
        watchdog = threading.Timer(call.timeout, lambda: [c() for c in list(closer)])
        watchdog.daemon = True
        watchdog.start()
        retries: list[str] = []
        try:
            for attempt in range(MAX_RETRIES + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return done(_empty(seen.billed(), timed_out), timed_out, timed_out=True)
                log.line(f"attempt {attempt + 1}: sending (deadline in {remaining:.1f}s)")
                t0 = time.monotonic()
                try:
                    failure = _attempt(url, body, key, remaining, call, seen, closer)
                except (_Incomplete, OSError, http.client.HTTPException) as exc:
                    if time.monotonic() >= deadline:
                        log.line(f"attempt {attempt + 1}: no complete answer within the deadline")
                        return done(_empty(seen.billed(), timed_out), timed_out, timed_out=True)
                    why = str(exc) if isinstance(exc, _Incomplete) else repr(exc)
                    failure = _Failure(f"incomplete answer from {_shown(url)}: {why}", True)
                if failure is None:
                    log.line(f"attempt {attempt + 1}: {seen.finish or 'done'} in "
                             f"{time.monotonic() - t0:.2f}s")
                    if seen.usage is not None:
                        log.line("usage: " + orjson.dumps(seen.usage.to_dict()).decode())
                    notes: tuple[str, ...] = ()
                    if retries:
                        n = len(retries)
                        notes = (f"succeeded after {n} retr{'y' if n == 1 else 'ies'} "
                                 f"({'; '.join(retries)})",)
                    return done(_output(seen, tier, notes))
                if time.monotonic() >= deadline:
                    return done(_empty(seen.billed(), timed_out), timed_out, timed_out=True)
                failure = replace(failure, message=log.scrub(failure.message))
                log.line(f"attempt {attempt + 1}: {failure.message}")
                # A stream that had reported usage was billed; an error answer was not.
                seen.spent, seen.usage, seen.text, seen.finish = (
                    seen.billed() or Tokens(), None, "", None)
                if not failure.retryable or attempt == MAX_RETRIES:
                    why = failure.message + (
                        f" (gave up after {attempt + 1} attempts)" if failure.retryable else "")
                    return done(_empty(seen.spent, why), why)
                wait = _backoff(attempt, failure.wait)
                if time.monotonic() + wait >= deadline:
                    asked = f"retry-after {wait:g}s, " if wait == failure.wait else ""
                    why = f"{failure.message} ({asked}no time left to retry within " \
                          f"{call.timeout:g}s)"
                    return done(_empty(seen.spent, why), why)
                retries.append(failure.message.split(": ")[0])
                log.line(f"retrying in {wait:.2f}s")
                time.sleep(wait)
        except KeyboardInterrupt:
            log.line("interrupted (Ctrl-C); request abandoned")
            return done(_empty(seen.billed(), "interrupted"), "interrupted", interrupted=True)
        finally:
            watchdog.cancel()
    raise AssertionError("unreachable: the loop returns")  # pragma: no cover


class OpenAIWorker:
    """``api: openai``: any OpenAI-compatible Chat Completions endpoint (OpenAI, Ollama, vLLM,
    OpenRouter...), over the standard library's HTTP client."""

    @staticmethod
    def check(cfg: Config, tier: Tier) -> None:
        if tier.local and tier.key != "client":
            return  # a local OpenAI-compatible server (Ollama, vLLM) usually takes no key
        require_key(cfg, tier)

    dispatch = staticmethod(dispatch)


WORKER = OpenAIWorker()
