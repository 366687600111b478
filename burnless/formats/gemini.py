"""Gemini CLI ``--output-format json``: one (pretty-printed) object.

Shape from google-gemini/gemini-cli ``packages/core/src/output/types.ts`` (``JsonOutput``:
``session_id``, ``response``, ``stats``, ``error`` {type, message, code}) and the token fields
from ``packages/core/src/telemetry/uiTelemetry.ts`` (``stats.models.<model>.tokens``), which
accumulate the API's ``usageMetadata``:

- ``prompt`` = ``promptTokenCount``, which INCLUDES the cached tokens (the CLI itself derives
  ``input = prompt - cached``): burnless input = prompt - cached + tool;
- ``cached`` = ``cachedContentTokenCount``: cache reads (implicit caching has no write charge);
- ``candidates`` excludes the thinking tokens, which Google bills as output:
  burnless output = candidates + thoughts;
- ``tool`` = ``toolUsePromptTokenCount``: extra prompt tokens of server-side tool use, billed as
  input and not inside ``prompt``.

With several models in ``stats.models`` (without ``-m`` the CLI's "auto" model first asks a
small model, role ``utility_router``, which model should answer), usage is their sum,
``by_model`` keeps each model's share so each is priced at its own rate, and ``model`` is the
one in the ``main`` role (else the one that processed the most tokens).

Errors: Gemini CLI 0.61 prints its error object (``{session_id, error: {type, message,
code}}``, no ``stats``) on **stderr**, after a stack trace, and exits with the HTTP status mod
256 (400 -> 144), or with its fatal error's code (41 no key; 55, an untrusted folder, with a
plain line instead of the object); ``error_in`` finds either in stderr. An authentication
failure (the key missing or refused) and the fatal errors of start-up (41 authentication,
42 input, 44 sandbox, 52 config, 55 untrusted folder) happen before anything is billed; after
any other error what was billed before it is unknown (the object carries no usage).
"""

from __future__ import annotations

import json
import re

import orjson

from burnless.accounting.tokens import Tokens
from burnless.formats.jsonio import JSON, as_dict, as_int, as_str, clean, has_count
from burnless.formats.output import GEMINI_JSON, WorkerOutput

# The CLI's fatal errors that stop it before any request (packages/core/src/utils/errors.ts):
# authentication, input, sandbox, config, untrusted folder. 53 (turn limit) and 54 (tool
# execution) come after requests.
_START_UP_EXITS = frozenset({41, 42, 44, 52, 55})
_UNTRUSTED = re.compile(r"not running in a trusted directory", re.I)
_AUTH = re.compile(
    r"api key not valid|api_key_invalid|unauthenticated|permission_denied"
    r"|must specify the gemini_api_key|FatalAuthenticationError",
    re.I,
)
# How many of the last lines that open an object ``error_in`` tries (the object is last).
_STDERR_CANDIDATES = 8


def is_gemini(obj: JSON) -> bool:
    if "type" in obj:
        return False
    if "response" in obj or "stats" in obj:
        return True
    # a failed call prints only the error (and the session id)
    error = obj.get("error")
    return isinstance(error, dict) and "message" in error and set(obj) <= {"error", "session_id"}


def _tokens(tokens: JSON, notes: list[str], name: str) -> Tokens:
    prompt = as_int(tokens.get("prompt"))
    cached = as_int(tokens.get("cached"))
    if cached > prompt:
        notes.append(f"gemini model {name}: more cached ({cached}) than prompt ({prompt}) tokens")
        cached = prompt
    return Tokens(
        input=prompt - cached + as_int(tokens.get("tool")),
        output=as_int(tokens.get("candidates")) + as_int(tokens.get("thoughts")),
        cache_read=cached,
        cache_write=0,
    )


def error_in(stderr: str) -> JSON | None:
    """The error object the CLI printed last on stderr (pretty-printed, after a stack trace)."""
    text = clean(stderr)
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    opening = [i for i, line in enumerate(lines) if line.startswith("{")]
    decoder = json.JSONDecoder()
    for i in reversed(opening[-_STDERR_CANDIDATES:]):
        try:
            value, _ = decoder.raw_decode(text, offsets[i])
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict) and isinstance(value.get("error"), dict) and is_gemini(value):
            return value
        return None  # the last object is something else: not the CLI's error
    untrusted = next((line.strip() for line in lines if _UNTRUSTED.search(line)), None)
    if untrusted is not None:  # printed as a plain line, not as the error object
        return {"error": {"type": "FatalUntrustedWorkspaceError", "message": untrusted,
                          "code": 55}}
    return None


def _error_text(error: JSON, with_type: bool = True) -> str:
    """The error in one line: an API error's status and message rather than its JSON."""
    message = as_str(error.get("message")) or "error"
    try:
        inner = orjson.loads(message)
    except orjson.JSONDecodeError:
        inner = None
    api = as_dict(as_dict(inner).get("error"))
    if api and isinstance(api.get("message"), str):
        status = " ".join(str(api[k]) for k in ("code", "status") if api.get(k) is not None)
        message = f"{status}: {api['message']}" if status else api["message"]
    kind = as_str(error.get("type"))
    if with_type and kind and kind != "Error":
        message = f"{kind}: {message}"
    return " ".join(message.split())


def _before_any_request(error: JSON) -> bool:
    """The key was missing or refused, or the CLI stopped at start-up: nothing was billed."""
    code = error.get("code")
    if not isinstance(code, bool) and (code in _START_UP_EXITS or code in (401, 403)):
        return True
    return bool(_AUTH.search(f"{error.get('type', '')} {error.get('message', '')}"))


def parse_object(obj: JSON, findings: tuple[str, ...] = ()) -> WorkerOutput:
    notes = list(findings)
    error = as_dict(obj.get("error"))
    is_error = obj.get("error") not in (None, {}, False, "")
    text = as_str(obj.get("response"))
    reported = ""
    if is_error:
        reported = _error_text(error) if error else str(obj.get("error"))
        notes.append(f"gemini reported an error: {reported}")
        if text is None:
            text = _error_text(error, with_type=False) if error else reported
    if text is None:
        notes.append("gemini output has no 'response'")
        text = ""

    usage: Tokens | None = None
    per_model: list[tuple[str, Tokens]] = []
    main: str | None = None
    models = as_dict(as_dict(obj.get("stats")).get("models"))
    for name, metrics in models.items():
        tokens = as_dict(as_dict(metrics).get("tokens"))
        if not has_count(tokens, "prompt", "candidates", "cached", "thoughts", "tool", "total"):
            continue
        t = _tokens(tokens, notes, name)
        per_model.append((name, t))
        usage = t if usage is None else usage + t
        if "main" in as_dict(as_dict(metrics).get("roles")):
            main = main or name
    busiest = max(per_model, key=lambda m: m[1].total_input + m[1].output, default=None)
    model = main or (busiest[0] if busiest else None)
    unbilled = is_error and _before_any_request(error)
    if usage is None:
        notes.append("gemini output reports no token stats" + (
            ": it stopped before any request (its key missing or refused, or at start-up), "
            "so nothing was billed" if unbilled else
            ": what was billed before the error is unknown" if is_error else ""))
    elif len(per_model) > 1:
        notes.append(f"usage of {len(per_model)} models, priced per model: "
                     + ", ".join(name for name, _ in per_model) + f"; the answer is {model}'s")
    return WorkerOutput(
        text=text,
        format=GEMINI_JSON,
        usage=usage,
        cost_usd=None,
        model=model,
        is_error=is_error,
        findings=tuple(notes),
        error=reported,
        # no stats and no error: an output this CLI never prints; estimate, as for text
        no_usage="unbilled" if unbilled else ("unknown" if is_error else "estimate"),
        by_model=tuple(per_model) if len(per_model) > 1 else (),
    )
