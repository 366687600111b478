"""The simulated model's mind: a burnless prompt in, a deterministic reply out (no I/O).

The same prompt always gives the same reply. The task grammar, the roles and the lying
variants are documented in ``docs/simulator.md``. A reply names the file actions the task
asks for; who performs them (a tool call through the Messages API, or nobody when the
model lies) is decided in ``burnless.sim.dialogue``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from burnless.envelope import FileClaim

Op = Literal["write", "append", "delete", "read"]
Lie = Literal["", "missing", "size", "hash"]

# Every pattern runs in linear time, whatever the prompt: a tag's attributes are bounded, and
# "opener, body, closer" blocks are found by ``_blocks`` rather than a lazy ``(.*?)`` (which a
# prompt of many unclosed openers makes quadratic: 45 s of CPU for 400 KB).
_PROTOCOL = re.compile(r'<burnless-protocol\b[^>]{0,512}\brole="([A-Za-z_-]+)"')
_TASK_OPEN = re.compile(r"^<task>[ \t]*\n", re.MULTILINE)
_TASK_CLOSE = re.compile(r"\n?^</task>[ \t]*$", re.MULTILINE)
_CAPSULE_OPEN = re.compile(r"<capsule\b[^>]{0,512}>")
_CAPSULE_CLOSE = re.compile(r"</capsule>")
_LIE = re.compile(r"\(lie(?::(size|hash))?\)", re.IGNORECASE)
_PRETEND = re.compile(r"\bpretend(?:\s+to)?\b\s*", re.IGNORECASE)
_ESCALATE = re.compile(r"\bescalate\b", re.IGNORECASE)
_FAIL = re.compile(r"\bfail\b", re.IGNORECASE)
_PARTIAL = re.compile(r"\bpartial\b", re.IGNORECASE)

_ARG = r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\S+)"
_REST = r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|.+)"
_LAZY = r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|.+?)"
_ACTION_SPECS: tuple[tuple[str, Op, int, int], ...] = (
    (rf"\b(?:create|write)\s+(?:file\s+)?{_ARG}\s+with\s+content\s+{_REST}", "write", 1, 2),
    (rf"\b(?:create|write)\s+(?:file\s+)?{_ARG}\s+containing\s+{_REST}", "write", 1, 2),
    # From the clause's first "append" only: a later start could only give the same match
    # (the lazy TEXT absorbs it), and trying each one is quadratic.
    (rf"^(?:(?!\bappend\s).)*\bappend\s+{_LAZY}\s+to\s+(?:file\s+)?{_ARG}\s*$", "append", 2, 1),
    (rf"\b(?:delete|remove)\s+(?:the\s+)?file\s+{_ARG}", "delete", 1, 0),
    (r"\bdelete\s+(\"[^\"]+\"|'[^']+'|\S*[./]\S*)", "delete", 1, 0),
)
# "read file PATH", "read files PATH, PATH and PATH": only at the start of an instruction and
# with the word "file(s)", so prose that mentions reading is not an instruction. A read is a
# tool call whose result (the file's text) enters the conversation; it claims nothing.
_READ = re.compile(r"^read\s+(?:the\s+)?files?\s+(.+)$", re.IGNORECASE)
_READ_SPLIT = re.compile(r",|\s+and\s+|\s+", re.IGNORECASE)
# "call tool NAME" or "call tool NAME with {JSON object}" (the object runs to the line's last
# "}"): the model calls that tool, if the request offers it, before anything else.
_TOOL_CALL = re.compile(
    r"^[ \t]*(?:please[ \t]+)?call[ \t]+(?:the[ \t]+)?tool[ \t]+"
    r"([A-Za-z0-9_.:-]{0,127}[A-Za-z0-9_])"
    r"(?:[ \t]+with[ \t]+(\{.*\}))?[ \t]*\.?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_ACTIONS = tuple(
    (re.compile(pattern, re.IGNORECASE), op, path_group, text_group)
    for pattern, op, path_group, text_group in _ACTION_SPECS
)

_WORDS = (
    "I read the plan and the capsules before acting.",
    "The task is small and self-contained.",
    "Nothing in the context contradicts it.",
    "I kept the change as narrow as the task allows.",
    "No other file needed to change.",
    "The result can be checked on disk.",
    "I did not run any command beyond what the task asks.",
    "The previous turns left the workspace in a consistent state.",
    "This answer is simulated: burnless sim is a deterministic stand-in for a model.",
)


@dataclass(frozen=True)
class Prompt:
    """What the model reads from a burnless prompt."""

    role: str  # planner | executor | compactor
    task: str
    capsule_summaries: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileAction:
    """A file operation the simulated model performs."""
    op: Op
    path: str
    content: str = ""


@dataclass(frozen=True)
class ToolUse:
    """A named tool the task asks the model to call, with its input."""

    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """The model's decision: prose, file actions, and what the envelope will say."""

    role: str
    status: str
    kind: str
    summary: str
    prose: str
    actions: tuple[FileAction, ...] = ()
    lie: Lie = ""
    plan: tuple[str, ...] = ()
    next: str = ""
    tool_uses: tuple[ToolUse, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What performing one action did (from a tool result), for the envelope's claim."""

    ok: bool
    created: bool = True
    size: int | None = None
    sha256: str | None = None
    error: str = ""
    text: str = ""  # the tool result's text (what a named tool answered)


# The simulated model claims files in the same shape burnless parses: the envelope's.
Claim = FileClaim


def parse_prompt(text: str, last_user_text: str = "") -> Prompt:
    """The role (last ``<burnless-protocol role=...>``) and the task (last ``<task>`` block).

    Without a ``<task>`` block the task is ``last_user_text`` (or the whole text).
    """
    roles = _PROTOCOL.findall(text)
    role = roles[-1].lower() if roles else "executor"
    tasks = _blocks(_TASK_OPEN, _TASK_CLOSE, text)
    task = tasks[-1] if tasks else (last_user_text or text)
    summaries = tuple(
        line.split(":", 1)[1].strip()
        for body in _blocks(_CAPSULE_OPEN, _CAPSULE_CLOSE, text)
        for line in body.splitlines()
        if line.startswith("summary:")
    )
    return Prompt(role, task.strip(), summaries)


def _blocks(opener: re.Pattern[str], closer: re.Pattern[str], text: str) -> list[str]:
    """The bodies ``opener(.*?)closer`` (DOTALL) finds, in linear time: once an opener has no
    closer after it, no later opener has one either."""
    found: list[str] = []
    pos = 0
    while (start := opener.search(text, pos)) is not None:
        end = closer.search(text, start.end())
        if end is None:
            break
        found.append(text[start.end() : end.start()])
        pos = end.end()
    return found


def think(prompt: Prompt, *, fail: bool = False) -> Reply:
    """The deterministic reply to a prompt.

    ``fail`` makes an executor get the task wrong, as a weaker model would (the simulator's
    scripted failure rate): it writes garbled text (``garble``) to every file it writes or
    appends to, and claims honestly what it wrote, so the audit passes and a verify command
    that checks the content fails; a task without such a write answers ``status: failed``.
    The planner and the compactor never fail.
    """
    task = prompt.task
    if prompt.role == "planner":
        return _plan(prompt)
    if prompt.role == "compactor":
        return _compact(prompt)
    tool_uses = parse_tool_uses(task)
    if tool_uses:
        names = ", ".join(t.name for t in tool_uses)
        return Reply(
            "executor",
            "ok",
            "thought",
            f"Called {names}",
            _prose(task, f"I called {names} as asked."),
            tool_uses=tool_uses,
        )
    lie = _lie(task)
    clean = _PRETEND.sub("", _LIE.sub("", task))
    if fail:
        return _failed(task, clean, lie)
    if _ESCALATE.search(clean):
        return Reply(
            "executor",
            "escalate",
            "thought",
            f"Needs a stronger tier: {_short(clean)}",
            _prose(task, "This task is beyond what I can do reliably, so I escalate it."),
        )
    if _FAIL.search(clean):
        return Reply(
            "executor",
            "failed",
            "thought",
            f"Could not do: {_short(clean)}",
            _prose(task, "I tried and could not complete the task."),
        )
    actions = parse_actions(clean)
    if actions and all(a.op == "read" for a in actions):
        return Reply(
            "executor",
            "ok",
            "thought",
            f"Answered: {_short(clean)}",
            _prose(task, "I read the files; here is my answer, no file needed to change."),
            actions,
        )
    if actions:
        status = "ok"
        if _PARTIAL.search(clean) and len(actions) > 1:
            actions, status = actions[:1], "partial"
        return Reply(
            "executor",
            status,
            "execution",
            "",
            _prose(task, "I carried out the file changes."),
            actions,
            lie,
            next="" if status == "ok" else "finish the remaining steps",
        )
    return Reply(
        "executor",
        "ok",
        "thought",
        f"Answered: {_short(clean)}",
        _prose(task, "Here is my answer; no file needed to change."),
    )


def _failed(task: str, clean: str, lie: Lie) -> Reply:
    actions = parse_actions(clean)
    if any(a.op in ("write", "append") for a in actions):
        wrong = tuple(
            FileAction(a.op, a.path, garble(a.content)) if a.op in ("write", "append") else a
            for a in actions
        )
        return Reply(
            "executor",
            "ok",
            "execution",
            "",
            _prose(task, "I carried out the file changes."),
            wrong,
            lie,
        )
    return Reply(
        "executor",
        "failed",
        "thought",
        f"Could not do: {_short(clean)}",
        _prose(task, "I tried and could not complete the task."),
    )


def garble(text: str) -> str:
    """The wrong text a failing model writes: letters rot13, digits + 5 (mod 10); a text with
    neither gets a ``?`` appended. Never equal to the right text."""
    out = []
    for ch in text:
        if "a" <= ch <= "z":
            ch = chr((ord(ch) - 97 + 13) % 26 + 97)
        elif "A" <= ch <= "Z":
            ch = chr((ord(ch) - 65 + 13) % 26 + 65)
        elif "0" <= ch <= "9":
            ch = chr((ord(ch) - 48 + 5) % 10 + 48)
        out.append(ch)
    wrong = "".join(out)
    return wrong if wrong != text else text + "?"


def parse_actions(task: str) -> tuple[FileAction, ...]:
    """File actions in the task: one per line or ``;``-separated instruction (outside quotes)."""
    actions: list[FileAction] = []
    for clause in _clauses(task):
        for pattern, op, path_group, text_group in _ACTIONS:
            m = pattern.search(clause)
            if m:
                path = _path(m.group(path_group))
                text = _text(m.group(text_group)) if text_group else ""
                if path:
                    actions.append(FileAction(op, path, text))
                break
        else:
            m = _READ.match(clause)
            if m:
                actions.extend(FileAction("read", p) for p in _read_paths(m.group(1)))
    return tuple(actions)


def _read_paths(text: str) -> list[str]:
    """The paths of a read instruction: the words holding a ``.`` or a ``/``."""
    words = (w.strip().strip("\"'`").rstrip(".,;:?!") for w in _READ_SPLIT.split(text))
    return [w for w in words if w and ("." in w or "/" in w)]


def parse_tool_uses(task: str) -> tuple[ToolUse, ...]:
    """The named tool calls a task asks for (``call tool NAME [with {JSON}]``, one per line).

    An input that is not a JSON object is passed as ``{"input": TEXT}``."""
    uses: list[ToolUse] = []
    for m in _TOOL_CALL.finditer(task):
        raw = m.group(2)
        args: dict[str, Any] = {}
        if raw:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            args = parsed if isinstance(parsed, dict) else {"input": raw}
        uses.append(ToolUse(m.group(1), args))
    return tuple(uses)


def answer_text(reply: Reply, outcomes: Sequence[Outcome] = ()) -> str:
    """The final answer: the prose, then the envelope in a ```json fence."""
    return f"{reply.prose}\n\n```json\n{orjson.dumps(envelope(reply, outcomes)).decode()}\n```\n"


def envelope(reply: Reply, outcomes: Sequence[Outcome] = ()) -> dict[str, Any]:
    """The envelope the reply ends with, given what its actions did (one outcome per action).

    A lying reply claims every action as if it had succeeded, whatever happened.
    """
    env: dict[str, Any] = {
        "status": reply.status,
        "kind": reply.kind,
        "summary": reply.summary,
        "files": [],
        "commands": [],
        "next": reply.next,
    }
    if reply.plan:
        env["plan"] = list(reply.plan)
    if reply.tool_uses:
        return _tool_envelope(env, reply, outcomes)
    if not any(a.op != "read" for a in reply.actions):
        return env
    claims: list[Claim] = []
    errors: list[str] = []
    for i, action in enumerate(reply.actions):
        outcome = outcomes[i] if i < len(outcomes) else Outcome(ok=bool(reply.lie))
        if action.op == "read":
            continue  # a read claims nothing, and a read that failed changes nothing
        if reply.lie:
            claims.append(_lying_claim(action, reply.lie))
        elif outcome.ok:
            claims.append(_claim(action, outcome))
        else:
            errors.append(f"{action.op} {action.path}: {outcome.error or 'not done'}")
    env["files"] = [c.to_dict() for c in claims]
    if errors:
        env["status"] = "failed" if not claims else "partial"
        env["summary"] = "Failed: " + "; ".join(errors)
    else:
        env["summary"] = "; ".join(_done(c) for c in claims)
    return env


def _tool_envelope(
    env: dict[str, Any], reply: Reply, outcomes: Sequence[Outcome]
) -> dict[str, Any]:
    """The envelope after named tool calls: each tool's answer, one line each, in the summary."""
    parts: list[str] = []
    failed = False
    for i, use in enumerate(reply.tool_uses):
        outcome = outcomes[i] if i < len(outcomes) else Outcome(ok=False, error="not called")
        if outcome.ok:
            parts.append(f"{use.name} returned: {_short(outcome.text, 600)}")
        else:
            failed = True
            parts.append(f"{use.name} failed: {_short(outcome.error or outcome.text, 600)}")
    env["summary"] = " | ".join(parts)
    if failed:
        env["status"] = "failed"
    return env


def _claim(action: FileAction, outcome: Outcome) -> Claim:
    if action.op == "delete":
        return Claim(action.path, "deleted")
    verb = "created" if outcome.created else "modified"
    if action.op == "write":
        data = action.content.encode("utf-8")
        return Claim(action.path, verb, len(data), hashlib.sha256(data).hexdigest())
    return Claim(action.path, verb, outcome.size, outcome.sha256)


def _lying_claim(action: FileAction, lie: Lie) -> Claim:
    if action.op == "delete":
        return Claim(action.path, "deleted")
    data = action.content.encode("utf-8")
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    if lie == "size":
        size += 1
    elif lie == "hash":
        digest = hashlib.sha256(data + b"\0").hexdigest()
    return Claim(action.path, "created" if action.op == "write" else "modified", size, digest)


def _done(claim: Claim) -> str:
    size = f" ({claim.bytes} bytes)" if claim.bytes is not None else ""
    return f"{claim.action.capitalize()} {claim.path}{size}"


def _lie(task: str) -> Lie:
    m = _LIE.search(task)
    if m:
        return "size" if m.group(1) == "size" else "hash" if m.group(1) == "hash" else "missing"
    return "missing" if _PRETEND.search(task) else ""


def _plan(prompt: Prompt) -> Reply:
    # Steps come from the instruction, the task's first paragraph; what follows a blank line
    # is material (files read, logs) to plan with, not steps.
    task = re.split(r"\n\s*\n", prompt.task.strip(), maxsplit=1)[0]
    parts = [p for p in (_strip_item(c) for c in re.split(r"[;\n]|\bthen\b", task)) if p]
    if len(parts) < 2:
        steps = [f"Work out what is needed for: {_short(task)}", f"Do it: {_short(task)}"]
        if _seed(task) % 2:
            steps.append("Check the result against the task")
    else:
        steps = parts[:3] + (["; ".join(parts[3:])] if len(parts) > 3 else [])
    return Reply(
        "planner",
        "ok",
        "thought",
        f"Plan: {len(steps)} steps for {_short(task, 80)}",
        _prose(task, "Here is the plan."),
        plan=tuple(steps),
        next=steps[0],
    )


def _compact(prompt: Prompt) -> Reply:
    summaries = prompt.capsule_summaries
    digest = "; ".join(summaries) if summaries else _short(prompt.task)
    return Reply(
        "compactor",
        "ok",
        "thought",
        _short(f"Digest of {len(summaries)} capsules: {digest}", 600),
        _prose(prompt.task, "I folded the older capsules into one digest."),
    )


def _prose(task: str, lead: str) -> str:
    """Deterministic filler whose length follows a hash of the task (1 to 7 more sentences)."""
    count = 1 + _seed(task) % 7
    picked = sorted(_WORDS, key=lambda w: _seed(task + w))[:count]
    return " ".join([lead, *picked])


def _seed(task: str) -> int:
    return int.from_bytes(hashlib.sha256(task.encode("utf-8")).digest()[:8], "big")


def _short(text: str, limit: int = 120) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _strip_item(text: str) -> str:
    return re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", text).strip(" .,\t")


def _clauses(task: str) -> list[str]:
    clauses: list[str] = []
    for line in task.splitlines():
        current: list[str] = []
        quote = ""
        for ch in line:
            if quote:
                quote = "" if ch == quote and (not current or current[-1] != "\\") else quote
            elif ch in "\"'" and (not current or current[-1].isspace()):
                quote = ch
            elif ch == ";":
                clauses.append("".join(current))
                current = []
                continue
            current.append(ch)
        clauses.append("".join(current))
    return [c.strip() for c in clauses if c.strip()]


def _unquote(arg: str) -> str | None:
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "\"'":
        body = arg[1:-1]
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), body)
    return None


def _path(arg: str) -> str:
    quoted = _unquote(arg)
    return quoted if quoted is not None else arg.rstrip(".,;:")


def _text(arg: str) -> str:
    quoted = _unquote(arg.strip())
    return quoted if quoted is not None else arg.strip()


__all__ = [
    "Claim",
    "FileAction",
    "Outcome",
    "Prompt",
    "Reply",
    "ToolUse",
    "answer_text",
    "envelope",
    "garble",
    "parse_actions",
    "parse_prompt",
    "parse_tool_uses",
    "think",
]
