"""The simulated model in a conversation: a Messages API request in, the next assistant turn out.

Stateless: every request is read from scratch. The model decides its reply from the prompt
(``burnless.sim.model``); if the reply has file actions, each is asked for as a tool call
until every call has a ``tool_result`` in the conversation, and then the final answer with its
envelope is given. The tool is picked among those the request offers, by name and by the
shape of its input schema (``Write``/``Append``/``Delete``, a ``write_file``-like tool, else a
shell tool such as ``Bash``, Codex's ``shell``/``exec_command`` or Gemini CLI's
``run_shell_command``). Tool-use ids are derived from the task, so the same conversation
always gets the same ids. The OpenAI and Gemini endpoints translate their requests into this
shape (``burnless.sim.openai_api``, ``burnless.sim.gemini_api``).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from burnless.sim.billing import BILLING_HEADER_PREFIX
from burnless.sim.model import FileAction, Outcome, Reply, answer_text, parse_prompt, think

# Where each client names its working directory: Claude Code 2.1.197 " - Primary working
# directory: /path" (older ones "Working directory:"), Codex 0.171 "<cwd>/path</cwd>", Gemini
# CLI 0.61 "- **Workspace Directories:**" then "  - /path" (older ones "I'm currently working
# in the directory: /path"). One line, [ \t] not \s: a \s* at each line start made a run of
# blank lines quadratic (28 s for 40,000 of them); the path's trailing blanks are stripped in
# _workdir.
_WORKDIR = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?(?:Primary working directory|Working directory"
    r"|I'm currently working in the directory):[ \t]*(/[^\n]*)$"
    r"|<cwd>(/[^<\n]{0,4096})</cwd>"
    r"|\*\*Workspace Directories:\*\*[ \t]*\n[ \t]*-[ \t]+(/[^\n]*)$",
    re.M,
)
# A tool result saying the file is new wins over an "updated" elsewhere in it (Gemini CLI 0.61:
# "Successfully created and wrote to new file: … Here is the updated code: …").
_CREATED = re.compile(r"\b(created|new file)\b", re.IGNORECASE)
_UPDATED = re.compile(r"\b(updated|modified|overwr(?:ote|itten))\b", re.IGNORECASE)
_SIZE = re.compile(r"\b(\d+) bytes\b")
_SHA = re.compile(r"\bsha256[:= ]+([0-9a-f]{64})\b")
# Tools that write a file whatever their exact name (Gemini CLI's write_file, agent
# frameworks' create_file ...), and the names their schemas give the path and the text.
_WRITE_TOOLS = ("write_file", "create_file", "writefile", "file_write", "write")
_READ_TOOLS = ("read_file", "readfile", "file_read", "read", "view")
_PATH_KEYS = ("file_path", "path", "absolute_path", "filename", "target_file")
_CONTENT_KEYS = ("content", "contents", "text", "file_text")
# Shell tools, in order of preference: Claude Code's, Codex's, Gemini CLI's, generic ones.
_SHELL_TOOLS = (
    "Bash",
    "exec_command",
    "shell_command",
    "shell",
    "local_shell",
    "run_shell_command",
    "bash",
)
_REMINDERS = ("<system-reminder>", "<environment_context>", "<user_instructions>")


@dataclass(frozen=True)
class Turn:
    """The assistant's next message: content blocks and why it stopped."""

    content: tuple[dict[str, Any], ...]
    stop_reason: str  # "end_turn" | "tool_use"


def next_turn(request: Mapping[str, Any], *, fail_rate: float = 0.0) -> Turn:
    """The model's next turn for a Messages API request (which the caller has validated).

    Messages with ``role: "system"`` are read as system text. ``fail_rate`` is the model's
    scripted failure probability: an executor task whose stable hash falls below it is done
    wrongly (``burnless.sim.model.fails``).
    """
    messages = [m for m in request.get("messages") or [] if isinstance(m, Mapping)]
    system = list(_system_texts(request.get("system")))
    system += [t for m in messages if m.get("role") == "system" for t in _texts(m.get("content"))]
    user_texts = [
        (i, t)
        for i, m in enumerate(messages)
        if m.get("role") == "user"
        for t in _texts(m.get("content"))
    ]
    full = "\n".join(system + [t for _, t in user_texts])
    last_user = next((t for _, t in reversed(user_texts) if not _is_reminder(t)), "")
    prompt = parse_prompt(full, last_user)
    reply = think(prompt, fail=fail_rate > 0 and _difficulty(prompt.task) < fail_rate)
    if not (reply.actions or reply.tool_uses) or reply.lie == "missing":
        return _final(reply, ())

    anchor = next((i for i, t in reversed(user_texts) if prompt.task and prompt.task in t), 0)
    prefix = "toolu_sim_" + hashlib.sha256(f"{prompt.task}\0{anchor}".encode()).hexdigest()[:16]
    results = _tool_results(messages[anchor:])
    tools = _tools(request.get("tools"))
    workdir = _workdir(full)
    outcomes: list[Outcome] = []
    for k, use in enumerate(reply.tool_uses):
        tool_id = f"{prefix}t{k:02d}"
        if tool_id in results:
            text, is_error = results[tool_id]
            outcomes.append(Outcome(ok=not is_error, text=text, error=text if is_error else ""))
            continue
        if use.name not in tools:
            outcomes.append(Outcome(ok=False, error=f"no tool named {use.name} was offered"))
            continue
        return Turn(
            (
                {"type": "text", "text": f"I will call {use.name}."},
                {"type": "tool_use", "id": tool_id, "name": use.name, "input": use.input},
            ),
            "tool_use",
        )
    for k, action in enumerate(reply.actions):
        tool_id = f"{prefix}{k:02d}"
        if tool_id in results:
            outcomes.append(_outcome(*results[tool_id]))
            continue
        call = tool_call(action, tools, workdir)
        if call is None:
            outcomes.append(Outcome(ok=False, error=f"no tool was offered to {action.op} files"))
            continue
        name, tool_input = call
        return Turn(
            (
                {"type": "text", "text": f"I will {action.op} {action.path}."},
                {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input},
            ),
            "tool_use",
        )
    return _final(reply, tuple(outcomes))


def _difficulty(task: str) -> float:
    """A stable number in [0, 1) per task: a model with failure rate p fails the tasks below p,
    so a weaker model fails every task a stronger one fails, and more."""
    digest = hashlib.sha256(b"burnless-sim-difficulty\0" + task.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _final(reply: Reply, outcomes: tuple[Outcome, ...]) -> Turn:
    return Turn(({"type": "text", "text": answer_text(reply, outcomes)},), "end_turn")


def _tools(raw: Any) -> dict[str, Mapping[str, Any]]:
    """Offered tool name -> its input schema's properties ({} when not given)."""
    tools: dict[str, Mapping[str, Any]] = {}
    for t in raw if isinstance(raw, list) else []:
        if isinstance(t, Mapping) and isinstance(t.get("name"), str):
            schema = t.get("input_schema")
            props = schema.get("properties") if isinstance(schema, Mapping) else None
            tools[t["name"]] = props if isinstance(props, Mapping) else {}
    return tools


def tool_call(
    action: FileAction, tools: Mapping[str, Mapping[str, Any]], workdir: str
) -> tuple[str, dict[str, Any]] | None:
    """The call (tool name, input) that performs ``action`` with one of the offered tools."""
    path = action.path
    full = path if posixpath.isabs(path) or not workdir else posixpath.join(workdir, path)
    if action.op == "read":
        return _read_call(path, full, tools)
    if action.op == "write" and "Write" in tools:
        return "Write", {"file_path": full, "content": action.content}
    if action.op == "append" and "Append" in tools:
        return "Append", {"file_path": path, "content": action.content}
    if action.op == "delete" and "Delete" in tools:
        return "Delete", {"file_path": path}
    if action.op == "write":
        for name, props in tools.items():
            if name.lower() not in _WRITE_TOOLS:
                continue
            path_key = next((k for k in _PATH_KEYS if k in props), "file_path")
            text_key = next((k for k in _CONTENT_KEYS if k in props), "content")
            return name, {path_key: full, text_key: action.content}
    name = next((n for n in _SHELL_TOOLS if n in tools), "")
    if not name:
        return None
    quoted, text = shlex.quote(path), shlex.quote(action.content)
    script = {
        "write": f"mkdir -p -- \"$(dirname -- {quoted})\" && printf '%s' {text} > {quoted}",
        "append": f"printf '%s' {text} >> {quoted}",
        "delete": f"rm -f -- {quoted}",
    }[action.op]
    if name == "Bash":
        return name, {"command": script, "description": f"{action.op} {path}"}
    props = tools[name]
    args: dict[str, Any]
    if "cmd" in props and "command" not in props:
        args = {"cmd": script}
    elif _schema_type(props.get("command")) == "array" or name in ("shell", "local_shell"):
        args = {"command": ["bash", "-lc", script]}
    else:
        args = {"command": script}
    if workdir and "workdir" in props:
        args["workdir"] = workdir
    return name, args


def _read_call(
    path: str, full: str, tools: Mapping[str, Mapping[str, Any]]
) -> tuple[str, dict[str, Any]] | None:
    """Claude Code's ``Read {file_path}``, a ``read_file``-like tool, else ``cat`` in a shell."""
    if "Read" in tools:
        return "Read", {"file_path": full}
    for name, props in tools.items():
        if name.lower() in _READ_TOOLS:
            path_key = next((k for k in _PATH_KEYS if k in props), "file_path")
            return name, {path_key: full}
    name = next((n for n in _SHELL_TOOLS if n in tools), "")
    if not name:
        return None
    script = f"cat -- {shlex.quote(path)}"
    if name == "Bash":
        return name, {"command": script, "description": f"read {path}"}
    props = tools[name]
    if "cmd" in props and "command" not in props:
        return name, {"cmd": script}
    if _schema_type(props.get("command")) == "array" or name in ("shell", "local_shell"):
        return name, {"command": ["bash", "-lc", script]}
    return name, {"command": script}


def _schema_type(prop: Any) -> Any:
    # JSON Schema spells it "array", Gemini's OpenAPI subset "ARRAY".
    return str(prop.get("type")).lower() if isinstance(prop, Mapping) else None


def _outcome(text: str, is_error: bool) -> Outcome:
    if is_error:
        return Outcome(ok=False, error=" ".join(text.split())[:200] or "tool error")
    size = _SIZE.findall(text)
    sha = _SHA.search(text)
    return Outcome(
        ok=True,
        created=bool(_CREATED.search(text)) or not _UPDATED.search(text),
        size=int(size[-1]) if size else None,
        sha256=sha.group(1) if sha else None,
    )


def _tool_results(messages: list[Mapping[str, Any]]) -> dict[str, tuple[str, bool]]:
    results: dict[str, tuple[str, bool]] = {}
    for m in messages:
        content = m.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, Mapping) and block.get("type") == "tool_result":
                inner = block.get("content")
                text = inner if isinstance(inner, str) else "\n".join(_texts(inner))
                results[str(block.get("tool_use_id"))] = (text, bool(block.get("is_error")))
    return results


def _system_texts(system: Any) -> Iterator[str]:
    for text in _texts(system):
        if not text.startswith(BILLING_HEADER_PREFIX):
            yield text


def _texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
        return
    for block in content if isinstance(content, list) else []:
        if isinstance(block, Mapping) and block.get("type") == "text":
            yield str(block.get("text", ""))


def _is_reminder(text: str) -> bool:
    return text.lstrip().startswith(_REMINDERS)


def _workdir(text: str) -> str:
    m = _WORKDIR.search(text)
    if not m:
        return ""
    return (m.group(1) or m.group(2) or m.group(3) or "").rstrip()
