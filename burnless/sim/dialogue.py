"""The simulated model in a Messages API conversation: a request in, the next assistant turn out.

Stateless: every request is read from scratch. The model decides its reply from the prompt
(``burnless.sim.model``); if the reply has file actions, each is asked for as a tool call
(``Write``/``Append``/``Delete``, else ``Bash``) until every call has a ``tool_result`` in
the conversation, and then the final answer with its envelope is given. Tool-use ids are
derived from the task, so the same conversation always gets the same ids.
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

# Claude Code 2.1.197 writes " - Primary working directory: /path"; older ones "Working directory:".
# One line, [ \t] not \s: a \s* at each line start made a run of blank lines quadratic (28 s
# for 40,000 of them); the path's trailing blanks are stripped in _workdir.
_WORKDIR = re.compile(
    r"^[ \t]*(?:[-*][ \t]+)?(?:Primary working directory|Working directory):[ \t]*(/[^\n]*)$",
    re.M,
)
_UPDATED = re.compile(r"\b(updated|modified|overwr(?:ote|itten))\b", re.IGNORECASE)
_SIZE = re.compile(r"\b(\d+) bytes\b")
_SHA = re.compile(r"\bsha256[:= ]+([0-9a-f]{64})\b")


@dataclass(frozen=True)
class Turn:
    """The assistant's next message: content blocks and why it stopped."""

    content: tuple[dict[str, Any], ...]
    stop_reason: str  # "end_turn" | "tool_use"


def next_turn(request: Mapping[str, Any]) -> Turn:
    """The model's next turn for a Messages API request (which the caller has validated)."""
    messages = [m for m in request.get("messages") or [] if isinstance(m, Mapping)]
    system = list(_system_texts(request.get("system")))
    user_texts = [
        (i, t)
        for i, m in enumerate(messages)
        if m.get("role") == "user"
        for t in _texts(m.get("content"))
    ]
    full = "\n".join(system + [t for _, t in user_texts])
    last_user = next((t for _, t in reversed(user_texts) if not _is_reminder(t)), "")
    prompt = parse_prompt(full, last_user)
    reply = think(prompt)
    if not reply.actions or reply.lie == "missing":
        return _final(reply, ())

    anchor = next((i for i, t in reversed(user_texts) if prompt.task and prompt.task in t), 0)
    prefix = "toolu_sim_" + hashlib.sha256(f"{prompt.task}\0{anchor}".encode()).hexdigest()[:16]
    results = _tool_results(messages[anchor:])
    tools = {str(t.get("name")) for t in request.get("tools") or [] if isinstance(t, Mapping)}
    workdir = _workdir(full)
    outcomes: list[Outcome] = []
    for k, action in enumerate(reply.actions):
        tool_id = f"{prefix}{k:02d}"
        if tool_id in results:
            outcomes.append(_outcome(*results[tool_id]))
            continue
        call = _tool_call(action, tools, workdir)
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


def _final(reply: Reply, outcomes: tuple[Outcome, ...]) -> Turn:
    return Turn(({"type": "text", "text": answer_text(reply, outcomes)},), "end_turn")


def _tool_call(
    action: FileAction, tools: set[str], workdir: str
) -> tuple[str, dict[str, Any]] | None:
    path = action.path
    if action.op == "write" and "Write" in tools:
        full = path if posixpath.isabs(path) or not workdir else posixpath.join(workdir, path)
        return "Write", {"file_path": full, "content": action.content}
    if action.op == "append" and "Append" in tools:
        return "Append", {"file_path": path, "content": action.content}
    if action.op == "delete" and "Delete" in tools:
        return "Delete", {"file_path": path}
    if "Bash" in tools:
        quoted, text = shlex.quote(path), shlex.quote(action.content)
        command = {
            "write": f"mkdir -p -- \"$(dirname -- {quoted})\" && printf '%s' {text} > {quoted}",
            "append": f"printf '%s' {text} >> {quoted}",
            "delete": f"rm -f -- {quoted}",
        }[action.op]
        return "Bash", {"command": command, "description": f"{action.op} {path}"}
    return None


def _outcome(text: str, is_error: bool) -> Outcome:
    if is_error:
        return Outcome(ok=False, error=" ".join(text.split())[:200] or "tool error")
    size = _SIZE.findall(text)
    sha = _SHA.search(text)
    return Outcome(
        ok=True,
        created=not _UPDATED.search(text),
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
    return text.lstrip().startswith("<system-reminder>")


def _workdir(text: str) -> str:
    m = _WORKDIR.search(text)
    return m.group(1).rstrip() if m else ""
