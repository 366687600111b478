"""Worker output formats: the answer text and the real usage, from whatever a worker prints.

``parse_output(raw, fmt)`` never raises. Output that is not in the requested format is read as
what it actually is (or as plain text), with a finding saying so; the answer is never lost.

Usage convention (the ledger's): ``usage.input`` is input billed at the full rate only;
``cache_read`` and ``cache_write`` are separate. Formats whose input figure includes cached
tokens (Codex, Gemini) have them subtracted here.
"""

from __future__ import annotations

from dataclasses import replace

from burnless.formats import claude, codex, gemini
from burnless.formats.detect import Sniffed, detect_format, sniff
from burnless.formats.jsonio import clean
from burnless.formats.output import (
    CLAUDE_JSON,
    CLAUDE_STREAM_JSON,
    CODEX_JSONL,
    FORMATS,
    GEMINI_JSON,
    TEXT,
    WorkerOutput,
    text_output,
)
from burnless.formats.text import parse_text

__all__ = ["FORMATS", "WorkerOutput", "detect_format", "parse_output"]

AUTO = "auto"


def _parse_sniffed(raw: str, found: Sniffed) -> WorkerOutput:
    if found.format == CLAUDE_JSON and found.obj is not None:
        return claude.parse_result(found.obj, CLAUDE_JSON, found.findings)
    if found.format == GEMINI_JSON and found.obj is not None:
        return gemini.parse_object(found.obj, found.findings)
    if found.format == CLAUDE_STREAM_JSON and found.events is not None:
        return claude.parse_stream(found.events)
    if found.format == CODEX_JSONL and found.events is not None:
        return codex.parse_events(found.events)
    notes = found.findings
    if found.why_not_json is not None:
        notes = (*notes, f"output starts like JSON but does not parse ({found.why_not_json})")
    return parse_text(raw, notes)


def _describe(found: Sniffed) -> str:
    if found.format != TEXT:
        return f"{found.format} output"
    if found.why_not_json is not None:
        return f"malformed JSON ({found.why_not_json})"
    return "plain text"


def _decode(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates (text decoded with surrogateescape): JSON cannot hold them
        return raw.encode("utf-8", "surrogatepass").decode("utf-8", errors="replace")
    return raw


def _from_stderr(stderr: str, fmt: str) -> WorkerOutput | None:
    """A worker that printed nothing on stdout but its error object on stderr (Gemini CLI)."""
    if fmt not in (AUTO, GEMINI_JSON) or not stderr.strip():
        return None
    obj = gemini.error_in(stderr)
    if obj is None:
        return None
    return gemini.parse_object(obj, ("no output on stdout; the error was read from stderr",))


def parse_output(raw: str | bytes, fmt: str = AUTO, stderr: str = "") -> WorkerOutput:
    """Read a worker's stdout (and, when stdout is empty, the error a worker such as Gemini CLI
    prints on ``stderr``). ``fmt`` is a tier's ``format:`` (one of FORMATS, or "auto")."""
    text = ""
    try:
        text = _decode(raw)
        if fmt == TEXT:
            return parse_text(text)  # the user said so: the JSON inside is the answer
        if not clean(text):
            err = _from_stderr(stderr, fmt)
            if err is not None:
                return err
        found = sniff(text)
        out = _parse_sniffed(text, found)
        if fmt in (AUTO, found.format):
            return out
        if fmt not in FORMATS:
            note = f"unknown format {fmt!r}; read as {found.format}"
        else:
            note = f"expected {fmt} output, got {_describe(found)}"
        rest = tuple(f for f in out.findings if not f.startswith("output starts like JSON"))
        return replace(out, findings=(note, *rest))
    except Exception as exc:  # a parser bug must not lose the answer or fail the run
        return text_output(text, (f"could not parse the output ({type(exc).__name__}: {exc})",))
