"""Codex ``exec --json``: JSONL thread events.

Shapes from openai/codex ``codex-rs/exec/src/exec_events.rs`` (``ThreadEvent``) and the mapper
``event_processor_with_jsonl_output.rs``:

- the answer is the ``text`` of the last completed ``agent_message`` item;
- ``turn.completed.usage`` = {``input_tokens``, ``cached_input_tokens``,
  ``cache_write_input_tokens`` (Codex 0.171), ``output_tokens``, ``reasoning_output_tokens``}.
  ``input_tokens`` includes the cache reads and the cache writes (the Responses API's
  ``input_tokens_details.cached_tokens`` and ``cache_write_tokens``; burnless subtracts both);
  ``output_tokens`` already includes the reasoning tokens (``reasoning_output_tokens`` is a
  breakdown of it, so it is not added again).
- Codex fills ``turn.completed.usage`` from the thread's running total
  (``usage_from_last_total``), not from the turn alone: when several ``turn.completed`` events
  appear, the last one already covers the earlier ones and summing would double count.
- ``turn.failed`` or a top-level ``error`` not followed by a completed turn means the call
  failed (``error`` events also announce retries that later succeed). A failed turn reports no
  usage. It billed nothing when every error of the turn is an authentication failure (each
  attempt refused with 401/403, or the provider's key variable missing, so nothing was sent)
  and nothing came back from the model (no item but Codex's own ``error`` notices); otherwise
  what it billed before failing is unknown. Checked with Codex 0.171.0 against
  ``burnless sim serve --api-key``: a wrong key gives five "Reconnecting... N/5 (unexpected
  status 401 ...)" errors, a last error and ``turn.failed``; a missing key gives
  "Missing environment variable: `VAR`." and ``turn.failed``; exit status 1 both times.
"""

from __future__ import annotations

import re

from burnless.accounting.tokens import Tokens
from burnless.formats.jsonio import JSON, Events, as_dict, as_int, as_str, has_count
from burnless.formats.output import CODEX_JSONL, WorkerOutput

EVENT_TYPES = frozenset(
    {
        "thread.started",
        "turn.started",
        "turn.completed",
        "turn.failed",
        "item.started",
        "item.updated",
        "item.completed",
        "item.plan.delta",
    }
)
# early `--experimental-json` builds named the item `item_type: "assistant_message"`
_ANSWER_ITEMS = ("agent_message", "assistant_message")
_USAGE_KEYS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens")
# An authentication failure: the request was refused before the model ran (not billed).
_AUTH = re.compile(
    r"\b40[13] (?:unauthori[sz]ed|forbidden)\b|invalid[_ ]api[_ ]key|incorrect api key"
    r"|missing environment variable",
    re.I,
)


def _usage(usage: JSON, notes: list[str]) -> Tokens:
    total_in = as_int(usage.get("input_tokens"))
    cached = as_int(usage.get("cached_input_tokens"))
    written = as_int(usage.get("cache_write_input_tokens"))
    if cached > total_in:
        notes.append(f"codex reports more cached ({cached}) than input ({total_in}) tokens")
        cached = total_in
    if written > total_in - cached:
        notes.append(f"codex reports more cache-write ({written}) than uncached input "
                     f"({total_in - cached}) tokens")
        written = total_in - cached
    return Tokens(
        input=total_in - cached - written,
        output=as_int(usage.get("output_tokens")),
        cache_read=cached,
        cache_write=written,
    )


def parse_events(stream: Events) -> WorkerOutput:
    notes = list(stream.findings())
    answer: str | None = None
    usage: JSON | None = None
    completed = failed = 0
    errors: list[str] = []
    error_pending = False
    model_answered = False  # an item of the model's (not Codex's own error notice) this turn
    turn_errors: list[str] = []
    for ev in stream.events:
        kind = ev.get("type")
        if kind == "turn.started":
            model_answered, turn_errors = False, []
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = as_dict(ev.get("item"))
            item_type = item.get("type", item.get("item_type"))
            model_answered = model_answered or item_type != "error"
            if (kind == "item.completed" and item_type in _ANSWER_ITEMS
                    and isinstance(item.get("text"), str)):
                answer = item["text"]
        if kind == "turn.completed":
            completed += 1
            error_pending = False
            if isinstance(ev.get("usage"), dict) and has_count(ev["usage"], *_USAGE_KEYS):
                usage = ev["usage"]
        elif kind == "turn.failed":
            failed += 1
            message = as_str(as_dict(ev.get("error")).get("message")) or "turn failed"
            errors.append(message)
            turn_errors.append(message)
            if isinstance(ev.get("usage"), dict) and has_count(ev["usage"], *_USAGE_KEYS):
                usage = ev["usage"]
        elif kind == "error":
            error_pending = True
            message = as_str(ev.get("message")) or "error"
            errors.append(message)
            turn_errors.append(message)

    if completed > 1:
        notes.append(
            f"{completed} turn.completed events: usage taken from the last "
            "(Codex reports the thread's running total)"
        )
    tokens = _usage(usage, notes) if usage is not None else None
    is_error = failed > 0 or error_pending
    unbilled = (is_error and not model_answered and bool(turn_errors)
                and all(_AUTH.search(e) for e in turn_errors))
    if tokens is None:
        if unbilled:
            notes.append("codex reports no usage: every request was refused for its key "
                         "(or none was sent), so nothing was billed")
        else:
            notes.append("codex stream reports no usage (no turn.completed event): "
                         "what was billed is unknown")
    if is_error:
        notes.append("codex reported an error: " + "; ".join(dict.fromkeys(errors)))
    if answer is None:
        notes.append("codex stream has no agent_message")
    text = answer if answer is not None else "\n".join(dict.fromkeys(errors))
    return WorkerOutput(
        text=text,
        format=CODEX_JSONL,
        usage=tokens,
        cost_usd=None,
        model=None,  # codex exec --json does not name the model
        is_error=is_error,
        findings=tuple(notes),
        # the failure itself: the turn.failed message, else the last error announced
        error=(turn_errors or errors)[-1] if is_error else "",
        no_usage="unbilled" if unbilled else "unknown",
    )
