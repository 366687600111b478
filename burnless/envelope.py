"""The worker envelope: the JSON object a worker ends its answer with (the protocol header in
``prompt.py`` states the contract to workers).

``extract`` finds it (in a ```json fence or bare at the end), normalises it (status synonyms,
action synonyms) and never raises: whatever is wrong becomes a finding.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from burnless.vocab import Status

Kind = Literal["execution", "thought"]
KINDS: tuple[Kind, ...] = ("execution", "thought")
ACTIONS = ("created", "modified", "deleted")

_STATUS_SYNONYMS: dict[str, Status] = {
    "ok": "ok", "done": "ok", "success": "ok", "succeeded": "ok", "successful": "ok",
    "complete": "ok", "completed": "ok", "pass": "ok", "passed": "ok", "finished": "ok",
    "partial": "partial", "part": "partial", "incomplete": "partial", "partially": "partial",
    "in_progress": "partial", "wip": "partial",
    "failed": "failed", "fail": "failed", "failure": "failed", "err": "failed",
    "error": "failed", "errored": "failed", "ko": "failed",
    "escalate": "escalate", "escalated": "escalate", "esc": "escalate",
    "needs_escalation": "escalate", "escalation": "escalate",
}
_ACTION_SYNONYMS = {
    "created": "created", "create": "created", "added": "created", "add": "created",
    "new": "created", "wrote": "created", "written": "created",
    "modified": "modified", "modify": "modified", "edited": "modified", "edit": "modified",
    "updated": "modified", "update": "modified", "changed": "modified", "change": "modified",
    "deleted": "deleted", "delete": "deleted", "removed": "deleted", "remove": "deleted",
}
_KIND_SYNONYMS: dict[str, Kind] = {
    "execution": "execution", "exec": "execution", "execute": "execution", "action": "execution",
    "thought": "thought", "thinking": "thought", "answer": "thought", "plan": "thought",
    "review": "thought",
}
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n[ \t]*```", re.DOTALL)
_HEX64 = re.compile(r"[0-9a-f]{64}")
# The envelope ends the answer: only its tail is searched, which bounds the work on huge outputs.
_SEARCH_WINDOW = 64 * 1024
_MAX_CANDIDATES = 400


@dataclass(frozen=True)
class FileClaim:
    """A file the worker says it created, changed or deleted (with its size or hash, if given)."""
    path: str
    action: str
    bytes: int | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "action": self.action}
        if self.bytes is not None:
            d["bytes"] = self.bytes
        if self.sha256 is not None:
            d["sha256"] = self.sha256
        return d


@dataclass(frozen=True)
class CommandRun:
    """A command the worker says it ran, and its exit code."""
    cmd: str
    exit: int | None = None


@dataclass(frozen=True)
class Envelope:
    """The worker's structured answer: status, kind, summary, and its claims."""
    status: Status
    kind: Kind
    summary: str = ""
    files: tuple[FileClaim, ...] = ()
    commands: tuple[CommandRun, ...] = ()
    next: str = ""
    plan: tuple[str, ...] = ()


@dataclass(frozen=True)
class Extraction:
    """An envelope found in a worker's output, the prose around it, and what was wrong with it."""
    envelope: Envelope | None
    prose: str  # the answer without the envelope
    findings: tuple[str, ...] = field(default=())


def extract(text: str) -> Extraction:
    """Find, parse and normalise the envelope at the end of ``text``. Never raises."""
    if not isinstance(text, str):  # defensive: callers pass str, fuzzers pass anything
        return Extraction(None, "", ("answer is not text",))
    findings: list[str] = []
    found = _find(text, findings)
    if found is None:
        if '"status"' in text[-_SEARCH_WINDOW:] and not findings:
            findings.append("envelope: found no valid JSON object with a status (malformed JSON?)")
        return Extraction(None, text.strip(), tuple(findings))
    obj, start, end = found
    prose = _cut_out(text, start, end)
    envelope = normalise(obj, findings)
    return Extraction(envelope, prose, tuple(findings))


_NONSPACE = re.compile(r"\S")


def _cut_out(text: str, start: int, end: int) -> str:
    """``(text[:start] + text[end:]).strip()``, copying a large answer once rather than three
    times (slice, concatenation, strip). The envelope is in the last _SEARCH_WINDOW, so the
    part after it is short."""
    after = text[end:]
    if after.strip():
        return (text[:start] + after).strip()
    first = _NONSPACE.search(text, 0, start)
    if first is None:
        return ""
    stop = start
    while stop > first.start():  # blank space before the envelope: strip it a window at a time
        window = text[max(first.start(), stop - _SEARCH_WINDOW) : stop]
        kept = window.rstrip()
        stop -= len(window) - len(kept)
        if kept:
            break
    return text[first.start() : stop]


def _find(text: str, findings: list[str]) -> tuple[dict[str, Any], int, int] | None:
    base = max(0, len(text) - _SEARCH_WINDOW)
    window = text[base:]
    # 1. The last fenced block that holds a JSON object with a status.
    for m in reversed(list(_FENCE.finditer(window))):
        body = m.group(1).strip()
        if not body.startswith("{"):
            continue
        try:
            obj = json.loads(body)
        except ValueError as exc:
            if '"status"' in body:
                findings.append(f"envelope: malformed JSON in fenced block: {exc}")
            continue
        if isinstance(obj, dict) and "status" in obj:
            return obj, base + m.start(), base + m.end()
    # 2. The last bare JSON object with a status.
    decoder = json.JSONDecoder()
    tried = 0
    pos = len(window)
    while tried < _MAX_CANDIDATES:
        pos = window.rfind("{", 0, pos)
        if pos < 0:
            break
        tried += 1
        try:
            obj, end = decoder.raw_decode(window, pos)
        except ValueError:
            continue
        except RecursionError:
            continue
        if isinstance(obj, dict) and "status" in obj:
            return obj, base + pos, base + end
    return None


def normalise(obj: dict[str, Any], findings: list[str]) -> Envelope:
    raw_status = obj.get("status")
    status = None if raw_status is None else _STATUS_SYNONYMS.get(str(raw_status).strip().lower())
    if status is None:
        findings.append(f"envelope: unknown status {raw_status!r}; treated as failed")
        status = "failed"
    files = tuple(_claims(obj.get("files"), findings))
    commands = tuple(_commands(obj.get("commands"), findings))
    raw_kind = obj.get("kind")
    kind = _KIND_SYNONYMS.get(str(raw_kind).strip().lower()) if raw_kind is not None else None
    if kind is None:
        if raw_kind is not None:
            findings.append(f"envelope: unknown kind {raw_kind!r}")
        kind = "execution" if files or commands else "thought"
    plan_raw = obj.get("plan")
    plan: tuple[str, ...] = ()
    if isinstance(plan_raw, list):
        plan = tuple(_text(s) for s in plan_raw if _text(s))
    elif isinstance(plan_raw, str) and plan_raw.strip():
        plan = tuple(_text(line) for line in plan_raw.splitlines() if line.strip())
    elif plan_raw is not None:
        findings.append("envelope: plan is not a list of steps")
    return Envelope(
        status=status,
        kind=kind,
        summary=_text(obj.get("summary")),
        files=files,
        commands=commands,
        next=_text(obj.get("next")),
        plan=plan,
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _utf8(value.strip())
    if isinstance(value, (int, float, bool)):
        return str(value)
    return _utf8(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _utf8(text: str) -> str:
    """``text`` with any lone surrogate (JSON can spell one, "\\ud800") replaced by "?": it has
    no UTF-8 form, so no capsule, ledger or file path could hold it."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _claims(raw: Any, findings: list[str]) -> list[FileClaim]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        findings.append("envelope: files is not a list; claims ignored")
        return []
    out: list[FileClaim] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"path": item, "action": "modified"}
        if not isinstance(item, dict):
            findings.append(f"envelope: files[{i}] is not an object; ignored")
            continue
        path = item.get("path")
        if not isinstance(path, str) or not path.strip():
            findings.append(f"envelope: files[{i}] has no path; ignored")
            continue
        raw_action = item.get("action", "modified")
        action = _ACTION_SYNONYMS.get(str(raw_action).strip().lower())
        if action is None:
            findings.append(f"envelope: files[{i}] unknown action {raw_action!r}; read as modified")
            action = "modified"
        size = item.get("bytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            findings.append(f"envelope: files[{i}].bytes is not a byte count; ignored")
            size = None
        digest = item.get("sha256")
        if digest is not None:
            digest = _utf8(str(digest).strip().lower())
            if not _HEX64.fullmatch(digest):
                findings.append(f"envelope: files[{i}].sha256 is not a sha256 hex digest")
        out.append(FileClaim(path=_utf8(path.strip()), action=action, bytes=size, sha256=digest))
    return out


def _commands(raw: Any, findings: list[str]) -> list[CommandRun]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        findings.append("envelope: commands is not a list; ignored")
        return []
    out: list[CommandRun] = []
    for item in raw:
        if isinstance(item, str):
            out.append(CommandRun(_utf8(item)))
        elif isinstance(item, dict) and isinstance(item.get("cmd"), str):
            code = item.get("exit")
            ok_code = isinstance(code, int) and not isinstance(code, bool)
            out.append(CommandRun(_utf8(item["cmd"]), code if ok_code else None))
    return out
