"""Codex ``exec --json``: JSONL thread events.

Shapes from openai/codex ``codex-rs/exec/src/exec_events.rs`` (``ThreadEvent``) and the mapper
``event_processor_with_jsonl_output.rs``:

- the answer is the ``text`` of the last completed ``agent_message`` item;
- ``turn.completed.usage`` = {``input_tokens``, ``cached_input_tokens``, ``output_tokens``,
  ``reasoning_output_tokens``}. ``input_tokens`` includes the cached ones (burnless subtracts
  them); ``output_tokens`` is the Responses API figure, which already includes the reasoning
  tokens (``reasoning_output_tokens`` is a breakdown of it, so it is not added again).
- Codex fills ``turn.completed.usage`` from the thread's running total
  (``usage_from_last_total``), not from the turn alone: when several ``turn.completed`` events
  appear, the last one already covers the earlier ones and summing would double count.
- ``turn.failed`` or a top-level ``error`` not followed by a completed turn means the call
  failed (``error`` events also announce retries that later succeed).
"""

from __future__ import annotations

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
_USAGE_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens")


def _usage(usage: JSON, notes: list[str]) -> Tokens:
    total_in = as_int(usage.get("input_tokens"))
    cached = as_int(usage.get("cached_input_tokens"))
    if cached > total_in:
        notes.append(f"codex reports more cached ({cached}) than input ({total_in}) tokens")
        cached = total_in
    return Tokens(
        input=total_in - cached,
        output=as_int(usage.get("output_tokens")),
        cache_read=cached,
        cache_write=0,
    )


def parse_events(stream: Events) -> WorkerOutput:
    notes = list(stream.findings())
    answer: str | None = None
    usage: JSON | None = None
    completed = failed = 0
    errors: list[str] = []
    error_pending = False
    for ev in stream.events:
        kind = ev.get("type")
        if kind == "item.completed":
            item = as_dict(ev.get("item"))
            item_type = item.get("type", item.get("item_type"))
            if item_type in _ANSWER_ITEMS and isinstance(item.get("text"), str):
                answer = item["text"]
        elif kind == "turn.completed":
            completed += 1
            error_pending = False
            if isinstance(ev.get("usage"), dict) and has_count(ev["usage"], *_USAGE_KEYS):
                usage = ev["usage"]
        elif kind == "turn.failed":
            failed += 1
            message = as_str(as_dict(ev.get("error")).get("message"))
            errors.append(message or "turn failed")
            if isinstance(ev.get("usage"), dict) and has_count(ev["usage"], *_USAGE_KEYS):
                usage = ev["usage"]
        elif kind == "error":
            error_pending = True
            errors.append(as_str(ev.get("message")) or "error")

    if completed > 1:
        notes.append(
            f"{completed} turn.completed events: usage taken from the last "
            "(Codex reports the thread's running total)"
        )
    tokens = _usage(usage, notes) if usage is not None else None
    if tokens is None:
        notes.append("codex stream reports no usage (no turn.completed event)")
    is_error = failed > 0 or error_pending
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
    )
