"""What ``burnless init --claude-code`` writes into a project: the ``.mcp.json`` entry that
starts ``burnless mcp``, and a Claude Code subagent that delegates through it.

Pure decisions here (what to write, merged with what is there); ``cli/init.py`` writes the
files and prints them. Nothing a user wrote is overwritten without ``--force``: an existing
``.mcp.json`` gets the ``burnless`` server added beside its other servers.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from burnless.errors import UsageError

SERVER_NAME = "burnless"
AGENT_NAME = "burnless-executor"
AGENT_PATH = Path(".claude") / "agents" / f"{AGENT_NAME}.md"
MCP_PATH = Path(".mcp.json")
# Cheapest first: the subagent only decides what to delegate and reads the results.
FAMILIES = ("haiku", "sonnet", "opus")

AGENT_TEMPLATE = """\
---
name: {name}
description: Delegates well-specified, mechanical coding work (edits, new files, renames, \
boilerplate, tests to write) to burnless, which runs it on a cheaper model and audits every \
file the worker claims. Use it for work you can state completely in a few sentences.
tools: mcp__{server}__run, mcp__{server}__consult, mcp__{server}__session_show, Read, Glob, Grep
model: {model}
---
You hand work to burnless through the `mcp__{server}__run` tool and report what it did. You do
not edit files yourself: burnless's executor writes them and burnless checks its claims.

When to delegate (`mcp__{server}__run`):
- The task is mechanical and fully specified: which files, what change, what result. Read,
  Glob and Grep first if you need the exact paths or names.
- Write the task self-contained: the executor does not see this conversation.
- Keep one `session` id per piece of work (for example "auth-refactor"): later turns of a
  session see what earlier ones did.

When to consult (`mcp__{server}__consult`):
- Before a decision that deserves a stronger model: a design choice between plausible
  options, a subtle bug, a security question. Ask the planner tier, then delegate with its
  answer written into the task.
- Not for what you can read in the code yourself.

Reading a result:
- `ok: true`: the work is done and the audit passed. Report the summary, the files and the
  cost.
- `audit.verdict: "failed"`: the worker's claims do not hold (the findings say which file and
  why). Do not trust its summary; run again with a clearer task, or report the findings.
- `status` failed, partial or escalate: report it; you may retry once with `cascade: true`
  to climb to a stronger tier.
- A tool error (a budget or policy refusal, a busy session): report burnless's message and do
  not retry it.
"""


@dataclass(frozen=True)
class Planned:
    """One file ``init --claude-code`` will write: its bytes, what happens, how to undo it."""

    path: Path
    data: bytes | None  # None: nothing to write (unchanged)
    action: str  # created | merged | replaced | unchanged
    undo: str


def server_command() -> list[str]:
    """How Claude Code should start this burnless: ``burnless`` when the one on PATH is this
    installation's, else this installation's script or interpreter by absolute path."""
    here = Path(sys.executable).parent / "burnless"
    on_path = shutil.which("burnless")
    if on_path and here.exists() and Path(on_path).resolve() == here.resolve():
        return ["burnless", "mcp"]
    if here.exists() and os.access(here, os.X_OK):
        return [str(here), "mcp"]
    return [sys.executable, "-m", "burnless", "mcp"]


def mcp_entry(command: Sequence[str]) -> dict[str, Any]:
    return {"type": "stdio", "command": command[0], "args": list(command[1:])}


def plan_mcp_json(root: Path, entry: dict[str, Any], force: bool) -> Planned:
    """``.mcp.json`` with the burnless server: created, or merged into the user's servers."""
    path = root / MCP_PATH
    rel = MCP_PATH.as_posix()
    if not (path.is_symlink() or path.exists()):
        data = {"mcpServers": {SERVER_NAME: entry}}
        return Planned(path, _json(data), "created", f"rm {rel}")
    if not path.is_file():
        raise UsageError(f"{path} exists and is not a regular file; move it away and run "
                         "`burnless init --claude-code` again")
    try:
        current = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        if not force:
            raise UsageError(f"{path} is not valid JSON ({exc}); fix it, or use --force to "
                             f"replace it (the old file is kept as {rel}.bak)") from None
        current = None
    undo_entry = (f"remove the \"{SERVER_NAME}\" entry under mcpServers in {rel} (or: claude "
                  f"mcp remove {SERVER_NAME} -s project)")
    if current is None:
        return Planned(path, _json({"mcpServers": {SERVER_NAME: entry}}), "replaced",
                       f"restore {rel}.bak")
    if not isinstance(current, dict) or not isinstance(current.get("mcpServers", {}), dict):
        raise UsageError(f"{path}: expected an object with an \"mcpServers\" object; fix it "
                         "and run `burnless init --claude-code` again")
    servers = current.get("mcpServers", {})
    if servers.get(SERVER_NAME) == entry:
        return Planned(path, None, "unchanged", undo_entry)
    if SERVER_NAME in servers and not force:
        raise UsageError(f"{path} already has an mcpServers.{SERVER_NAME} entry that differs "
                         f"from {orjson.dumps(entry).decode()}; use --force to replace it "
                         "(the other servers are kept)")
    merged = {**current, "mcpServers": {**servers, SERVER_NAME: entry}}
    return Planned(path, _json(merged), "merged", undo_entry)


def plan_agent(root: Path, model: str, force: bool) -> Planned:
    path = root / AGENT_PATH
    rel = AGENT_PATH.as_posix()
    data = AGENT_TEMPLATE.format(name=AGENT_NAME, server=SERVER_NAME, model=model).encode()
    if not (path.is_symlink() or path.exists()):
        return Planned(path, data, "created", f"rm {rel}")
    if not path.is_file():
        raise UsageError(f"{path} exists and is not a regular file; move it away")
    if path.read_bytes() == data:
        return Planned(path, None, "unchanged", f"rm {rel}")
    if not force:
        raise UsageError(f"{path} already exists and differs from what burnless writes; use "
                         f"--force to replace it (the old file is kept as {rel}.bak)")
    return Planned(path, data, "replaced", f"restore {rel}.bak, or rm {rel}")


def subagent_model(models: Sequence[str | None]) -> str:
    """The Claude Code alias (haiku, sonnet, opus) of the cheapest Claude model among
    ``models`` (the executor's and the ladder's); haiku when none is a Claude model."""
    found = [f for m in models if m for f in FAMILIES if f in m.lower()]
    return min(found, key=FAMILIES.index) if found else "haiku"


def lean_config(text: str, known: frozenset[str] | None) -> tuple[str, list[str]]:
    """The example config without the lean flags the installed ``claude`` lacks (``known``
    from ``claude --help``; None when it could not be read: the text is kept)."""
    from burnless.workers.claude_code import LEAN_FLAGS, drop_flags

    if known is None:
        return text, []
    missing = [f for f in LEAN_FLAGS if f not in known and f in text]
    return (drop_flags(text, missing), missing) if missing else (text, [])


def _json(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
