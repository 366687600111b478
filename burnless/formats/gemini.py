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

With several models in ``stats.models`` (the CLI routes some calls to a small model), usage is
their sum and ``model`` the one that processed the most tokens.
"""

from __future__ import annotations

from burnless.accounting.tokens import Tokens
from burnless.formats.jsonio import JSON, as_dict, as_int, as_str, has_count
from burnless.formats.output import GEMINI_JSON, WorkerOutput


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


def parse_object(obj: JSON, findings: tuple[str, ...] = ()) -> WorkerOutput:
    notes = list(findings)
    error = as_dict(obj.get("error"))
    is_error = obj.get("error") not in (None, {}, False, "")
    text = as_str(obj.get("response"))
    if is_error:
        message = as_str(error.get("message")) or "error"
        kind = as_str(error.get("type"))
        notes.append(f"gemini reported an error: {kind + ': ' if kind else ''}{message}")
        if text is None:
            text = message
    if text is None:
        notes.append("gemini output has no 'response'")
        text = ""

    usage: Tokens | None = None
    model: str | None = None
    most = -1
    counted = 0
    models = as_dict(as_dict(obj.get("stats")).get("models"))
    for name, metrics in models.items():
        tokens = as_dict(as_dict(metrics).get("tokens"))
        if not has_count(tokens, "prompt", "candidates", "cached", "thoughts", "tool", "total"):
            continue
        counted += 1
        t = _tokens(tokens, notes, name)
        usage = t if usage is None else usage + t
        if t.total_input + t.output > most:
            most, model = t.total_input + t.output, name
    if usage is None:
        notes.append("gemini output reports no token stats")
    elif counted > 1:
        notes.append(f"usage summed over {counted} models; priced as {model}")
    return WorkerOutput(
        text=text,
        format=GEMINI_JSON,
        usage=usage,
        cost_usd=None,
        model=model,
        is_error=is_error,
        findings=tuple(notes),
    )
