"""Claude Code: ``-p --output-format json`` and ``--output-format stream-json --verbose``.

``json`` prints one ``result`` object; ``stream-json`` prints JSONL events (``system`` init,
``assistant``/``user`` messages, and the same ``result`` object last). Claude Code's usage
already follows burnless's convention (``input_tokens`` excludes cache reads and writes).

A stream cut short has no ``result`` event. Then the answer is the text of the last top-level
assistant message, and usage is summed from the assistant messages themselves. Claude Code
emits one ``assistant`` event per content block, each repeating the *same* message id and
usage, so usage is counted once per message id (the field-wise maximum over its events, as
earlier blocks may carry a partial ``output_tokens``). Sub-agent messages
(``parent_tool_use_id`` set) are counted too: they were billed.
"""

from __future__ import annotations

from dataclasses import replace

from burnless.accounting.tokens import Tokens
from burnless.formats.jsonio import JSON, Events, as_dict, as_float, as_int, as_str, has_count
from burnless.formats.output import CLAUDE_JSON, CLAUDE_STREAM_JSON, WorkerOutput

RESULT = "result"
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
STREAM_TYPES = frozenset({"system", "assistant", "user", "result", "stream_event"})


def is_result(obj: JSON) -> bool:
    """A Claude Code result object (and not another tool's ``result`` event)."""
    return obj.get("type") == RESULT and ("subtype" in obj or "is_error" in obj)


def _usage(usage: JSON) -> Tokens:
    return Tokens(
        input=as_int(usage.get("input_tokens")),
        output=as_int(usage.get("output_tokens")),
        cache_read=as_int(usage.get("cache_read_input_tokens")),
        cache_write=as_int(usage.get("cache_creation_input_tokens")),
    )


def usage_event(obj: JSON) -> tuple[str, str | None, Tokens] | None:
    """The usage an ``assistant`` event of a stream reports so far: (message id, model,
    tokens); None for any other event. A message's usage only grows across its events."""
    if obj.get("type") != "assistant":
        return None
    msg = as_dict(obj.get("message"))
    raw = msg.get("usage")
    if not isinstance(raw, dict) or not has_count(raw, *_USAGE_KEYS):
        return None
    return as_str(msg.get("id")) or "", as_str(msg.get("model")), _usage(raw)


def _cache_write_1h(usage: JSON, tokens: Tokens) -> int:
    one_hour = as_int(as_dict(usage.get("cache_creation")).get("ephemeral_1h_input_tokens"))
    return min(one_hour, tokens.cache_write)


def _model_usage(model_usage: JSON) -> tuple[Tokens | None, str | None, float | None]:
    """Summed ``modelUsage``, the model that cost the most (the one doing the work), and the
    summed ``costUSD`` (None unless every model reports one)."""
    total: Tokens | None = None
    best: tuple[float, int, str] | None = None
    costs: list[float | None] = []
    for name, entry in model_usage.items():
        e = as_dict(entry)
        costs.append(as_float(e.get("costUSD")))
        t = Tokens(
            input=as_int(e.get("inputTokens")),
            output=as_int(e.get("outputTokens")),
            cache_read=as_int(e.get("cacheReadInputTokens")),
            cache_write=as_int(e.get("cacheCreationInputTokens")),
        )
        total = t if total is None else total + t
        rank = (as_float(e.get("costUSD")) or 0.0, t.total_input + t.output, name)
        if best is None or rank[:2] > best[:2]:
            best = rank
    summed = sum(c for c in costs if c is not None) if costs and None not in costs else None
    return total, (best[2] if best else None), summed


def _covers(bigger: Tokens, smaller: Tokens) -> bool:
    """Every figure of ``bigger`` is at least ``smaller``'s, and one is larger."""
    pairs = list(zip(_fields(bigger), _fields(smaller), strict=True))
    return all(b >= s for b, s in pairs) and any(b > s for b, s in pairs)


def parse_result(obj: JSON, fmt: str = CLAUDE_JSON, findings: tuple[str, ...] = ()) -> WorkerOutput:
    notes = list(findings)
    subtype = as_str(obj.get("subtype")) or ""
    is_error = obj.get("is_error") is True or subtype.startswith("error")
    text = as_str(obj.get("result"))
    if text is None:
        # error_* subtypes carry no result text, only an ``errors`` list
        listed = obj.get("errors")
        errors = [e for e in listed if isinstance(e, str)] if isinstance(listed, list) else []
        text = "\n".join(errors)
        if not errors and not is_error:
            notes.append("claude result has no 'result' text")
    if subtype and subtype != "success":
        notes.append(f"claude result subtype {subtype!r}")

    raw_usage = obj.get("usage")
    has_usage = isinstance(raw_usage, dict) and has_count(raw_usage, *_USAGE_KEYS)
    usage = _usage(raw_usage) if isinstance(raw_usage, dict) and has_usage else None
    one_hour = _cache_write_1h(raw_usage, usage) if isinstance(raw_usage, dict) and usage else 0
    per_model, model, model_cost = _model_usage(as_dict(obj.get("modelUsage")))
    if per_model is not None and (usage is None or _covers(per_model, usage)):
        # modelUsage also counts the side models Claude Code calls (e.g. haiku for checks)
        if usage is not None:
            notes.append("usage summed from modelUsage, which covers more models than 'usage'")
        usage = per_model
    if usage is None:
        notes.append("claude result reports no usage")
    cost = as_float(obj.get("total_cost_usd"))
    if cost is None:
        cost = as_float(obj.get("cost_usd"))  # its name in older Claude Code versions
    if cost is None and model_cost is not None:
        # priced per model by Claude Code: better than pricing every token as the main model
        cost = model_cost
    if cost == 0 and usage is not None and usage != Tokens():
        # Claude Code reports 0 for a model its own table does not know: not a real cost
        notes.append("claude reported a cost of 0 for non-zero usage; cost not taken")
        cost = None
    return WorkerOutput(
        text=text,
        format=fmt,
        usage=usage,
        cost_usd=cost,
        model=model or as_str(obj.get("model")),
        is_error=is_error,
        cache_write_1h=one_hour,
        findings=tuple(notes),
    )


def parse_stream(stream: Events) -> WorkerOutput:
    notes = list(stream.findings())
    init_model: str | None = None
    result: JSON | None = None
    per_message: dict[str, Tokens] = {}
    one_hour: dict[str, int] = {}
    texts: dict[str, list[str]] = {}
    last_top: str | None = None
    last_model: str | None = None
    anonymous = 0
    for ev in stream.events:
        kind = ev.get("type")
        if kind == "system" and ev.get("subtype") == "init":
            init_model = as_str(ev.get("model")) or init_model
        elif kind == RESULT:
            result = ev
        elif kind == "assistant":
            msg = as_dict(ev.get("message"))
            mid = as_str(msg.get("id"))
            if mid is None:
                anonymous += 1
                mid = f"#anon{anonymous}"
            last_model = as_str(msg.get("model")) or last_model
            raw_usage = msg.get("usage")
            if isinstance(raw_usage, dict) and has_count(raw_usage, *_USAGE_KEYS):
                t = _usage(raw_usage)
                seen = per_message.get(mid)
                if seen is not None:
                    t = Tokens(*(max(a, b) for a, b in zip(_fields(seen), _fields(t), strict=True)))
                per_message[mid] = t
                one_hour[mid] = max(one_hour.get(mid, 0), _cache_write_1h(raw_usage, t))
            if ev.get("parent_tool_use_id") is None:
                blocks = msg.get("content")
                parts = texts.setdefault(mid, [])
                if isinstance(blocks, list):
                    parts.extend(
                        b["text"]
                        for b in blocks
                        if isinstance(b, dict)
                        and b.get("type") == "text"
                        and isinstance(b.get("text"), str)
                    )
                last_top = mid

    if result is not None:
        out = parse_result(result, CLAUDE_STREAM_JSON, tuple(notes))
        if not out.text and last_top and texts.get(last_top):
            out = replace(out, text="\n".join(texts[last_top]))
        if init_model:
            out = replace(out, model=init_model)
        if out.usage is None and per_message:
            out = replace(
                out,
                usage=sum(per_message.values(), Tokens()),
                cache_write_1h=sum(one_hour.values()),
                findings=(
                    *out.findings,
                    f"usage summed from {len(per_message)} assistant message(s)",
                ),
            )
        return out

    notes.append("claude stream has no result event (truncated stream)")
    usage: Tokens | None = None
    if per_message:
        usage = sum(per_message.values(), Tokens())
        notes.append(f"usage summed from {len(per_message)} assistant message(s)")
    else:
        notes.append("no usage in the stream")
    return WorkerOutput(
        text="\n".join(texts.get(last_top, [])) if last_top else "",
        format=CLAUDE_STREAM_JSON,
        usage=usage,
        cost_usd=None,
        model=init_model or last_model,
        is_error=False,
        cache_write_1h=sum(one_hour.values()),
        findings=tuple(notes),
    )


def _fields(t: Tokens) -> tuple[int, int, int, int]:
    return (t.input, t.output, t.cache_read, t.cache_write)
