"""Which format a worker's output is in (``format: auto``).

- claude-json: one JSON object with ``type == "result"`` (and Claude's ``subtype``/``is_error``);
- claude-stream-json: JSONL with ``system``/``assistant``/``user`` events;
- codex-jsonl: JSONL with ``thread.*``/``turn.*``/``item.*`` events;
- gemini-json: one object with ``response`` and/or ``stats`` (and no ``type``);
- text: anything else, including a bare JSON object of another shape (a worker that printed
  only its envelope) and Gemini's ``stream-json``, which burnless does not read.

Warning lines before or after the JSON are tolerated. The sniffed payload is kept so the
output is parsed once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from burnless.formats import claude, codex, gemini
from burnless.formats.jsonio import JSON, Events, clean, find_objects, parse_whole, read_events
from burnless.formats.output import (
    CLAUDE_JSON,
    CLAUDE_STREAM_JSON,
    CODEX_JSONL,
    GEMINI_JSON,
    TEXT,
)

_CLAUDE_STREAM_MARKERS = frozenset({"system", "assistant", "user"})


@dataclass(frozen=True)
class Sniffed:
    """What a worker's output turned out to be, parsed as far as its format allows."""
    format: str
    obj: JSON | None = None  # claude-json, gemini-json
    events: Events | None = None  # claude-stream-json, codex-jsonl
    findings: tuple[str, ...] = ()
    why_not_json: str | None = None  # the JSON error, for text that tried to be JSON


def _object_format(obj: JSON) -> str | None:
    if claude.is_result(obj):
        return CLAUDE_JSON
    if gemini.is_gemini(obj):
        return GEMINI_JSON
    return None


def _stream_format(events: Events) -> str | None:
    types = {ev.get("type") for ev in events.events}
    if types & codex.EVENT_TYPES:
        return CODEX_JSONL
    if types & _CLAUDE_STREAM_MARKERS:
        return CLAUDE_STREAM_JSON
    return None


_NONSPACE = re.compile(r"\S")
_JSON_START = frozenset('{["-0123456789tfn')


def sniff(raw: str) -> Sniffed:
    text = clean(raw)
    first = _NONSPACE.search(text)
    if first is None:
        return Sniffed(TEXT)
    whole, error = parse_whole(text)  # JSON allows the blank space around it
    if error is not None and text[first.start()] in _JSON_START:
        # Stripped, for the error's position and for non-JSON space (U+00A0) around it. Only
        # here: a stripped copy of a large output that is plainly not JSON would cost memory.
        whole, error = parse_whole(text.strip())
    if isinstance(whole, dict):
        fmt = _object_format(whole)
        if fmt is not None:
            return Sniffed(fmt, obj=whole)
        one = Events([whole])
        fmt = _stream_format(one)
        return Sniffed(fmt, events=one) if fmt is not None else Sniffed(TEXT)
    if whole is not None:
        return Sniffed(TEXT)  # a JSON array, number or string: not a worker format

    events = read_events(text)
    fmt = _stream_format(events)
    if fmt is not None:
        return Sniffed(fmt, events=events)
    for obj, notes in find_objects(text):
        fmt = _object_format(obj)
        if fmt is not None:
            return Sniffed(fmt, obj=obj, findings=notes)
    looks_json = text[first.start()] == "{"
    return Sniffed(TEXT, why_not_json=error if looks_json else None)


def detect_format(raw: str) -> str:
    """The format name of ``raw`` (one of ``FORMATS``); never raises."""
    try:
        return sniff(raw).format
    except Exception:  # detection must not fail a run; text is always a valid reading
        return TEXT
