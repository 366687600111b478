"""API tiers (``api: anthropic``): one call to Anthropic's Messages API through the SDK.

The request is laid out for the prompt cache (the stable prefix first, see prompt.py)::

    system:  [stable prefix]                          <- breakpoint 1 (same for every turn)
    user:    [plan] [capsule 1] ... [capsule N]       <- breakpoint 2 on the last context block
             [task]                                   (uncached: it changes every turn)

Turn N+1's breakpoint sits one block after turn N's, within the API's 20-block lookback, so
turn N+1 reads what turn N wrote and only pays for its one new capsule.

The SDK (``import anthropic`` costs about a second) is imported only inside ``dispatch``. Its
own retries are off: this module retries 408/429/5xx/529, connection errors and answer streams
that break off (twice, like the SDK's default) with backoff, never sooner than ``retry-after``
says, all within the call's deadline, and logs every attempt. The SDK's timeout bounds each
network wait, not the whole call, so a watchdog closes the client at the deadline (a server
that trickles pings cannot hold a call past it). Usage that a failed attempt reported (its
stream had started, so it was billed) is added to the call's usage.

Key and endpoint follow the scrubbed-environment rule of command tiers: the key variable
(``api_key_env``, default ``ANTHROPIC_API_KEY``) and ``ANTHROPIC_BASE_URL`` are read from the
caller's environment only when ``pass_env`` lists them, else from the tier's ``env``.
``base_url`` in the tier wins over both; the default is Anthropic's API.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from burnless.accounting.tokens import Tokens
from burnless.formats import WorkerOutput
from burnless.prompt import Prompt
from burnless.settings import Config, Tier
from burnless.workers import Call, Reply, require_key

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import Message

FORMAT = "anthropic-api"
DEFAULT_BASE_URL = "https://api.anthropic.com"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
MAX_RETRIES = 2  # the SDK's own default; 3 attempts in all
BACKOFF_S = 0.5  # first wait; doubles per retry
MAX_WAIT_S = 30.0  # cap on one wait of our own backoff (a retry-after is bounded by the deadline)
_CACHE = {"type": "ephemeral"}


# --------------------------------------------------------------------------- request


def base_url(tier: Tier) -> str:
    """``tier.base_url`` › ``ANTHROPIC_BASE_URL`` as the tier's worker sees it › the default."""
    return tier.base_url or tier.env_value(BASE_URL_ENV) or DEFAULT_BASE_URL


def build_request(prompt: Prompt, tier: Tier) -> dict[str, Any]:
    """The Messages API parameters for a prompt (no key, no transport options)."""
    context: list[dict[str, Any]] = [{"type": "text", "text": b} for b in prompt.blocks if b]
    if context:
        context[-1]["cache_control"] = _CACHE
    return {
        "model": tier.model,
        "max_tokens": tier.max_output_tokens,
        "system": [{"type": "text", "text": prompt.stable_prefix, "cache_control": _CACHE}],
        "messages": [
            {"role": "user", "content": [*context, {"type": "text", "text": prompt.task}]}
        ],
    }


def describe(params: dict[str, Any]) -> list[str]:
    """Log lines summarising a request: each block's size and breakpoint, never its text."""

    def block(kind: str, b: dict[str, Any]) -> str:
        size = len(str(b["text"]).encode("utf-8"))
        return f"  {kind}: {size} bytes" + (" [cache_control]" if "cache_control" in b else "")

    (user,) = params["messages"]
    content = user["content"]
    lines = [f"request: model {params['model']}, max_tokens {params['max_tokens']}"]
    lines += [block("system", b) for b in params["system"]]
    lines += [block("context", b) for b in content[:-1]]
    lines.append(block("task", content[-1]))
    return lines


# --------------------------------------------------------------------------- response


def to_output(message: Message, tier: Tier) -> WorkerOutput:
    text = "".join(b.text for b in message.content if b.type == "text")
    u = message.usage
    creation = getattr(u, "cache_creation", None)
    findings: tuple[str, ...] = ()
    if message.stop_reason == "max_tokens":
        findings = (
            f"the answer was cut at max_output_tokens ({tier.max_output_tokens}); raise "
            f"tiers.{tier.name}.max_output_tokens",
        )
    elif message.stop_reason == "refusal":
        findings = ("the model refused to answer (stop_reason: refusal)",)
    return WorkerOutput(
        text=text,
        format=FORMAT,
        usage=Tokens(
            input=u.input_tokens,
            output=u.output_tokens,
            cache_read=u.cache_read_input_tokens or 0,
            cache_write=u.cache_creation_input_tokens or 0,
        ),
        cost_usd=None,  # burnless prices the usage from its table
        model=message.model,
        is_error=False,
        cache_write_1h=int(getattr(creation, "ephemeral_1h_input_tokens", 0) or 0),
        findings=findings,
    )


def _empty(usage: Tokens | None, finding: str) -> WorkerOutput:
    return WorkerOutput(
        text="",
        format=FORMAT,
        usage=usage,
        cost_usd=None,
        model=None,
        is_error=True,
        findings=(finding,),
    )


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class _Failure:
    """A failed attempt: what to tell the user, and whether another attempt may help."""

    message: str
    retryable: bool
    wait: float | None = None  # the server's retry-after, in seconds


def _status_failure(exc: anthropic.APIStatusError, tier: Tier) -> _Failure:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    kind = str(err.get("type") or "") if isinstance(err, dict) else ""
    detail = str(err.get("message") or "") if isinstance(err, dict) else ""
    detail = detail or str(exc.message)
    status = exc.status_code
    if status == 401:
        return _Failure(
            f"authentication failed (401): check ${tier.api_key_env}, the key tier "
            f"{tier.name!r} sends (from tiers.{tier.name}.env, or your environment when "
            f"tiers.{tier.name}.pass_env lists it): {detail}",
            retryable=False,
        )
    where = "API error in the answer stream" if status == 200 else f"API error {status}"
    message = where + (f" {kind}" if kind else "") + f": {detail}"
    if status == 404 and kind == "not_found_error":
        message += f" (check tiers.{tier.name}.model: {tier.model!r})"
    retryable = status in (408, 429) or status >= 500 or kind in ("overloaded_error", "api_error")
    return _Failure(message, retryable, _retry_after(exc))


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    headers = exc.response.headers
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000
        raw = str(headers.get("retry-after") or "") or None
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            return float(when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _backoff(retry: int, server_wait: float | None) -> float:
    """The server's retry-after when it gives one (retrying sooner only fails again; the
    call's deadline bounds it), else exponential backoff with jitter."""
    if server_wait is not None and server_wait >= 0:
        return server_wait
    return min(BACKOFF_S * 2.0**retry, MAX_WAIT_S) * (1 - 0.25 * random.random())


# --------------------------------------------------------------------------- log


class _Log:
    """The run log: one line per event, redacted when the call says so, and never holding the
    API key (a server may echo it in an error message, even with ``redact_secrets`` off)."""

    def __init__(self, f: IO[bytes], redact: Callable[[str], str] | None) -> None:
        self._f = f
        self._redact = redact
        self.secret = ""

    def scrub(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "[REDACTED]")
        return self._redact(text) if self._redact is not None else text

    def line(self, text: str) -> None:
        self._f.write(self.scrub(text).encode("utf-8", errors="replace") + b"\n")
        self._f.flush()


@contextmanager
def _open_log(call: Call) -> Iterator[_Log]:
    call.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(call.log_path, "ab") as f:
        yield _Log(f, call.redact)


def _shown(url: str) -> str:
    """A URL fit for a log: any user:password@ dropped."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --------------------------------------------------------------------------- dispatch


class _Deadline(Exception):
    """The call's deadline passed while the answer was still streaming."""


class _Incomplete(Exception):
    """The answer stream ended without its ``message_stop``: the answer may be cut short."""


@dataclass
class _Seen:
    """What a streamed attempt reported before it stopped (for honest usage on a timeout),
    and what the failed attempts before it reported (their streams had started: billed)."""

    usage: Tokens | None = None
    text: str = ""
    spent: Tokens = Tokens()

    def billed(self) -> Tokens | None:
        """Failed attempts' usage plus this attempt's; None when nothing was reported."""
        if self.usage is None:
            return self.spent if self.spent != Tokens() else None
        return self.spent + self.usage


def dispatch(call: Call) -> Reply:
    """Send the prompt to the tier's model; never raises for API, network or timeout errors."""
    started = time.monotonic()
    deadline = started + call.timeout
    tier = call.tier
    with _open_log(call) as log:

        def done(
            output: WorkerOutput,
            error: str = "",
            *,
            timed_out: bool = False,
            interrupted: bool = False,
        ) -> Reply:
            if error:
                error = log.scrub(error)
                log.line(f"error: {error}")
            stopped = timed_out or interrupted  # like a killed process: no exit code
            code = None if stopped else (1 if error else 0)
            return Reply(
                output,
                code,
                time.monotonic() - started,
                timed_out=timed_out,
                interrupted=interrupted,
                error=error,
            )

        if not tier.model:
            why = f"tier {tier.name!r}: an api tier needs tiers.{tier.name}.model"
            return done(_empty(Tokens(), why), why)
        key = tier.env_value(tier.api_key_env)
        log.secret = key or ""
        if not key:
            why = (
                f"tier {tier.name!r}: ${tier.api_key_env} is not set or not passed to the "
                f"tier (list it in tiers.{tier.name}.pass_env)"
            )
            return done(_empty(Tokens(), why), why)
        url = base_url(tier)
        params = build_request(call.prompt, tier)
        log.line(
            f"burnless api tier {tier.name!r}: anthropic at {_shown(url)}, "
            f"timeout {call.timeout:g}s"
        )
        for text in describe(params):
            log.line(text)
        seen = _Seen()
        try:
            return _attempts(call, params, key, url, deadline, log, seen, done)
        except KeyboardInterrupt:
            log.line("interrupted (Ctrl-C); request abandoned")
            return done(_empty(seen.billed(), "interrupted"), "interrupted", interrupted=True)


def _attempts(
    call: Call,
    params: dict[str, Any],
    key: str,
    url: str,
    deadline: float,
    log: _Log,
    seen: _Seen,
    done: Callable[..., Reply],  # the Reply maker of ``dispatch`` (logs the error)
) -> Reply:
    import anthropic

    tier = call.tier
    timed_out = f"timed out after {call.timeout:g}s"
    retries: list[str] = []
    with anthropic.Anthropic(api_key=key, base_url=url, max_retries=0) as client:
        # The SDK's timeout bounds each network wait, not the call: closing the client at
        # the deadline ends a read that a trickling server (pings, slow headers) keeps alive.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), client.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            for attempt in range(MAX_RETRIES + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return done(_empty(seen.billed(), timed_out), timed_out, timed_out=True)
                t0 = time.monotonic()
                log.line(f"attempt {attempt + 1}: sending (deadline in {remaining:.1f}s)")
                try:
                    message = _stream(client, params, remaining, deadline, call, seen)
                except anthropic.APIStatusError as exc:
                    failure = _status_failure(exc, tier)
                    body = "response: " + _json(exc.body)
                except Exception as exc:  # network, timeout, a stream that broke off
                    if isinstance(exc, Warning):
                        raise  # a warning turned into an error (python -W error): not ours
                    if isinstance(exc, (_Deadline, anthropic.APITimeoutError)) or (
                        time.monotonic() >= deadline
                    ):
                        log.line(f"attempt {attempt + 1}: no complete answer within the deadline")
                        return done(_empty(seen.billed(), timed_out), timed_out, timed_out=True)
                    if isinstance(exc, anthropic.APIConnectionError):
                        cause = exc.__cause__ or exc
                        failure = _Failure(f"cannot reach {_shown(url)}: {cause}", retryable=True)
                    else:
                        why = str(exc) if isinstance(exc, _Incomplete) else repr(exc)
                        where = f"incomplete answer from {_shown(url)}"
                        failure = _Failure(f"{where}: {why}", retryable=True)
                    body = ""
                else:
                    log.line(
                        f"attempt {attempt + 1}: {message.stop_reason} in "
                        f"{time.monotonic() - t0:.2f}s"
                    )
                    log.line("response: " + message.to_json(indent=None))
                    output = to_output(message, tier)
                    if retries:
                        n = len(retries)
                        note = f"succeeded after {n} retr{'y' if n == 1 else 'ies'}"
                        if seen.spent != Tokens():
                            note += "; the usage includes what the failed attempts reported"
                            usage = seen.spent + (output.usage or Tokens())
                            output = replace(output, usage=usage)
                        output = _with_finding(output, f"{note} ({'; '.join(retries)})")
                    return done(output)
                failure = replace(failure, message=log.scrub(failure.message))
                log.line(f"attempt {attempt + 1}: {failure.message}")
                if body:
                    log.line(body)
                # The API bills nothing for an error answer: zero usage, not an estimate
                # (unless the answer had started streaming, whose usage was then reported).
                seen.spent, seen.usage, seen.text = seen.billed() or Tokens(), None, ""
                if not failure.retryable or attempt == MAX_RETRIES:
                    why = failure.message + (
                        f" (gave up after {attempt + 1} attempts)" if failure.retryable else ""
                    )
                    return done(_empty(seen.spent, why), why)
                wait = _backoff(attempt, failure.wait)
                if time.monotonic() + wait >= deadline:
                    asked = f"retry-after {wait:g}s, " if wait == failure.wait else ""
                    left = f"no time left to retry within {call.timeout:g}s"
                    why = f"{failure.message} ({asked}{left})"
                    return done(_empty(seen.spent, why), why)
                retries.append(failure.message.split(": ")[0])
                log.line(f"retrying in {wait:.2f}s")
                time.sleep(wait)
        finally:
            watchdog.cancel()
    raise AssertionError("unreachable: the loop returns")  # pragma: no cover


def _stream(
    client: anthropic.Anthropic,
    params: dict[str, Any],
    remaining: float,
    deadline: float,
    call: Call,
    seen: _Seen,
) -> Message:
    """One streamed attempt. ``remaining`` bounds each network wait, ``deadline`` the whole."""
    stopped = False
    with client.messages.stream(**params, timeout=remaining) as stream:
        for event in stream:
            if event.type == "message_start":
                u = event.message.usage
                seen.usage = Tokens(
                    input=u.input_tokens,
                    output=u.output_tokens,
                    cache_read=u.cache_read_input_tokens or 0,
                    cache_write=u.cache_creation_input_tokens or 0,
                )
            elif event.type == "text":
                seen.text += event.text
                if call.on_line is not None and "\n" in event.text:
                    last = seen.text.rstrip().rsplit("\n", 1)[-1].strip()
                    if last:
                        call.on_line(last)
            elif event.type == "message_delta" and seen.usage is not None:
                d, was = event.usage, seen.usage  # cumulative figures; absent ones unchanged
                seen.usage = Tokens(
                    _or(d.input_tokens, was.input),
                    d.output_tokens,
                    _or(d.cache_read_input_tokens, was.cache_read),
                    _or(d.cache_creation_input_tokens, was.cache_write),
                )
            elif event.type == "message_stop":
                stopped = True
            if time.monotonic() > deadline:
                raise _Deadline
        if not stopped:
            raise _Incomplete("the answer stream ended before message_stop")
        return stream.get_final_message()


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _with_finding(output: WorkerOutput, finding: str) -> WorkerOutput:
    return replace(output, findings=(*output.findings, finding))


def _json(body: object) -> str:
    try:
        return orjson.dumps(body).decode()
    except TypeError:
        return repr(body)


class AnthropicWorker:
    """``api: anthropic``: the Messages API through the SDK."""

    @staticmethod
    def check(cfg: Config, tier: Tier) -> None:
        require_key(cfg, tier, "anthropic")

    dispatch = staticmethod(dispatch)


WORKER = AnthropicWorker()
