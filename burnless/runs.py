"""A run's identity: run ids (one per call), task ids (one per ``run``), timestamps, logs, and
whether the process that made a reservation or a call is still alive.

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


def alive(pid: object, start: object = None) -> bool:
    """Whether the run that made a reservation still runs: its pid exists and, where process
    start times are known (Linux), it is the same process (not a later one that reused the pid).
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _stat(pid)
    if stat is None:
        return True
    state, ticks = stat
    if state == "Z":  # killed, not yet reaped by its parent: it will never settle
        return False
    return not isinstance(start, int) or isinstance(start, bool) or ticks == start


def start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """State and start time (clock ticks since boot, immune to clock changes) of process
    ``pid``, from /proc; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
