"""Nested calls: a worker that calls burnless again (``policy.max_depth``).

burnless sets two variables in every worker's environment: ``BURNLESS_DEPTH`` (how deep the
worker runs) and ``BURNLESS_ACTIVE_SESSIONS`` (the sessions whose turns are running above it).
A call deeper than ``policy.max_depth`` is refused before anything is spent; a nested run on the
very session whose turn called it is refused at once instead of waiting on its own lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

DEPTH_ENV = "BURNLESS_DEPTH"
ACTIVE_ENV = "BURNLESS_ACTIVE_SESSIONS"


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


def worker_env(workspace: Path, session_id: str) -> dict[str, str]:
    """What burnless adds to every worker's environment."""
    active = [*active_sessions(), _key(workspace, session_id)]
    return {DEPTH_ENV: str(depth() + 1), ACTIVE_ENV: orjson.dumps(active).decode()}


def _key(workspace: Path, session_id: str) -> str:
    return f"{workspace}::{session_id}"
