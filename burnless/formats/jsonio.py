"""Lenient JSON and JSONL reading for worker stdout.

Workers print warnings around their JSON, get killed mid-line, or print nothing useful at all.
These readers never raise: they return what they could read and say what they skipped.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

JSON = dict[str, Any]

# How many candidate first/last lines to try when JSON is wrapped in noise: enough for a
# warning or two around the object, bounded so a large non-JSON output stays cheap.
_MAX_CANDIDATES = 4


@dataclass(frozen=True)
class Events:
    """The JSON objects of a JSONL stream, in order, and what could not be read."""

    events: list[JSON]
    noise_lines: int = 0  # non-empty lines that are not JSON objects (warnings, banners)
    bad_lines: int = 0  # lines that look like JSON objects but do not parse
    truncated_tail: bool = False  # the last line is a JSON object cut short

    def findings(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.truncated_tail:
            out.append("the last line is truncated JSON (the stream was cut short)")
        bad = self.bad_lines - (1 if self.truncated_tail else 0)
        if bad:
            out.append(f"{bad} malformed JSON line(s) skipped")
        if self.noise_lines:
            out.append(f"{self.noise_lines} non-JSON line(s) ignored")
        return tuple(out)


def _lines(text: str) -> list[str]:
    # Split on "\n" only: str.splitlines would also split inside JSON strings on U+2028 etc.
    return [line.rstrip("\r") for line in text.split("\n")]


# ANSI escape sequences (colours, cursor moves): a raw ESC cannot occur inside valid JSON
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def clean(raw: str) -> str:
    """``raw`` without ANSI escapes and byte-order mark. Not stripped: on a large output a
    stripped copy is one more copy of it in memory; readers skip blank space themselves."""
    if "\x1b" in raw:
        raw = _ANSI.sub("", raw)
    return raw.lstrip("\ufeff") if raw.startswith("\ufeff") else raw


def parse_whole(text: str) -> tuple[Any, str | None]:
    """The whole text as one JSON value, or (None, the parser's complaint)."""
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return None, str(exc)


def find_objects(text: str) -> list[tuple[JSON, tuple[str, ...]]]:
    """Candidate JSON objects embedded in noise, most complete first.

    Each candidate is an object that starts a line and ends one (blanks aside); the findings
    say how many lines around it were ignored. Each candidate is decoded in place and stops
    at its first error or its closing brace: parsing every start-to-end span of a large
    non-JSON output again and again made a 50 MB output take seconds.
    """
    raw_lines = text.split("\n")
    starts = [i for i, line in enumerate(raw_lines) if line.lstrip().startswith("{")]
    if not starts:
        return []
    offsets = [0]  # offset of each line in text
    for line in raw_lines:
        offsets.append(offsets[-1] + len(line) + 1)
    nonblank = [0]  # nonblank[i]: how many of the first i lines are not blank
    for line in raw_lines:
        nonblank.append(nonblank[-1] + (1 if line.strip() else 0))
    decoder = json.JSONDecoder()
    found: list[tuple[JSON, tuple[str, ...]]] = []
    for s in starts[:_MAX_CANDIDATES]:
        begin = offsets[s] + len(raw_lines[s]) - len(raw_lines[s].lstrip())
        try:
            value, stop = decoder.raw_decode(text, begin)
        except (ValueError, RecursionError):
            continue
        e = bisect.bisect_right(offsets, stop - 1) - 1  # the line of the closing brace
        if not isinstance(value, dict) or text[stop : offsets[e + 1] - 1].strip():
            continue
        before = nonblank[s]
        after = nonblank[-1] - nonblank[e + 1]
        notes = []
        if before:
            notes.append(f"{before} non-JSON line(s) before the JSON output ignored")
        if after:
            notes.append(f"{after} non-JSON line(s) after the JSON output ignored")
        found.append((value, tuple(notes)))
    return found


def read_events(text: str) -> Events:
    """Every line that holds a JSON object, in order."""
    lines = _lines(text)
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    events: list[JSON] = []
    noise = bad = 0
    truncated = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("{"):
            noise += 1
            continue
        value, _ = parse_whole(stripped)
        if isinstance(value, dict):
            events.append(value)
        else:
            bad += 1
            truncated = truncated or i == last
    return Events(events, noise, bad, truncated)


def as_int(value: object) -> int:
    """A token count: a non-negative int, 0 for anything else (null, strings, bools)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and math.isfinite(value):
        return max(int(value), 0)
    return 0


def has_count(obj: JSON, *keys: str) -> bool:
    """Whether any of ``keys`` holds a number: a usage object with none reports nothing."""
    return any(
        isinstance(obj.get(k), (int, float)) and not isinstance(obj.get(k), bool) for k in keys
    )


def as_float(value: object) -> float | None:
    """A reported amount (a cost): a finite non-negative number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) and f >= 0 else None


def as_dict(value: object) -> JSON:
    return value if isinstance(value, dict) else {}


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
