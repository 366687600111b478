"""A run's identity: run ids (one per call), task ids (one per ``run``), timestamps, logs.

    .burnless/logs/<run-id>.log     the raw (masked) output of one call
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from burnless.errors import UsageError

RUN_ID_RE = re.compile(r"r-\d{8}T\d{6}-[0-9a-f]{6}")


def new_run_id() -> str:
    # os.urandom, not secrets: ids need uniqueness, and `secrets` costs ~5 ms to import.
    return time.strftime("r-%Y%m%dT%H%M%S-", time.gmtime()) + os.urandom(3).hex()


def new_task_id() -> str:
    """Groups the calls of one `run` invocation in the ledger."""
    return "t-" + os.urandom(6).hex()


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def log_path(state_dir: Path, run_id: str) -> Path:
    """Where the call ``run_id`` logs its output; a malformed id is a usage error, never a
    path (``burnless log ../../x``)."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise UsageError(f"invalid run id {run_id!r} (expected r-YYYYMMDDTHHMMSS-xxxxxx)")
    return state_dir / "logs" / f"{run_id}.log"
