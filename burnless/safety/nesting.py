"""Nested calls: a worker that calls burnless again (``policy.max_depth``), and the delegation
tree such calls form.

burnless sets these variables in every worker's environment: ``BURNLESS_DEPTH`` (how deep the
worker runs), ``BURNLESS_ACTIVE_SESSIONS`` (the sessions whose turns are running above it), and
the tree: ``BURNLESS_PARENT_RUN`` (the call whose worker this is), ``BURNLESS_ROOT_RUN`` (the
top-level call at the tree's root) and ``BURNLESS_TREE`` (the top-level run's task id, which
``max_cost_per_task`` covers as a whole). A call deeper than ``policy.max_depth`` is refused
before anything is spent; a nested run on the very session whose turn called it is refused at
once instead of waiting on its own lock. A worker that is an MCP client (Claude Code running
``burnless mcp``) passes its environment on, so calls made through MCP join the tree too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from burnless.runs import RUN_ID_RE

DEPTH_ENV = "BURNLESS_DEPTH"
ACTIVE_ENV = "BURNLESS_ACTIVE_SESSIONS"
PARENT_ENV = "BURNLESS_PARENT_RUN"
ROOT_ENV = "BURNLESS_ROOT_RUN"
TREE_ENV = "BURNLESS_TREE"
_TASK_ID_RE = re.compile(r"t-[0-9a-f]{12}")


@dataclass(frozen=True)
class Tree:
    """Where this process's calls sit in a delegation tree (all None at the top level)."""

    parent_run_id: str | None = None
    root_run_id: str | None = None
    tree: str | None = None  # the root run's task id


def tree() -> Tree:
    """This process's place in a delegation tree, from the environment burnless set for the
    worker that started it; anything malformed counts as the top level."""
    parent, root, tree_id = (os.environ.get(n, "") for n in (PARENT_ENV, ROOT_ENV, TREE_ENV))
    if not (RUN_ID_RE.fullmatch(parent) and RUN_ID_RE.fullmatch(root)
            and _TASK_ID_RE.fullmatch(tree_id)):
        return Tree()
    return Tree(parent, root, tree_id)


def depth() -> int:
    """How deep in nested burnless calls this process is (0 at the top)."""
    raw = os.environ.get(DEPTH_ENV, "0").strip()
    return int(raw) if raw.isdigit() else 0


def depth_refusal(max_depth: int) -> str | None:
    """Why this process may not run (too deeply nested), or None."""
    d = depth()
    if d > max_depth:
        return (f"nested burnless call at depth {d} exceeds policy.max_depth = {max_depth}; "
                "refused before spending anything")
    return None


def active_sessions() -> list[str]:
    """The sessions whose turns are running above this process."""
    raw = os.environ.get(ACTIVE_ENV)
    if not raw:
        return []
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [str(x) for x in data] if isinstance(data, list) else []


def is_calling_session(workspace: Path, session_id: str) -> bool:
    """True when this run was started by a worker of that very session's running turn."""
    return _key(workspace, session_id) in active_sessions()


def worker_env(
    workspace: Path, session_id: str, *, run_id: str, root_run_id: str, tree_id: str
) -> dict[str, str]:
    """What burnless adds to the environment of the worker of call ``run_id``."""
    active = [*active_sessions(), _key(workspace, session_id)]
    return {DEPTH_ENV: str(depth() + 1), ACTIVE_ENV: orjson.dumps(active).decode(),
            PARENT_ENV: run_id, ROOT_ENV: root_run_id, TREE_ENV: tree_id}


def _key(workspace: Path, session_id: str) -> str:
    return f"{workspace}::{session_id}"
