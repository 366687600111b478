"""Crash points for tests: ``BURNLESS_FAULT=<point>`` makes burnless SIGKILL itself there.

Tests use it to prove that a crash at any point of a turn leaves a session the next turn can
continue. Outside tests the variable is unset and a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after-ledger", "after-capsule")


def point(name: str) -> None:
    if os.environ.get("BURNLESS_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
