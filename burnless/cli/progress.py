"""The spinner shown while a worker runs: tier, elapsed time, the worker's last line.

Only on a TTY (stderr); nothing at all otherwise, so CI logs and pipes stay clean.
"""

from __future__ import annotations

import time
from typing import Any


class Spinner:
    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._status: Any = None
        self._label = ""
        self._last = ""
        self._t0 = 0.0

    def start(self, role: str, tier: str) -> None:
        self._label = f"{role} on {tier}"
        self._last = ""
        self._t0 = time.monotonic()
        self._status = self._console.status(self)  # re-rendered ~12 times a second
        self._status.start()

    def line(self, text: str) -> None:
        self._last = text

    def __rich__(self) -> Any:
        from rich.text import Text

        elapsed = time.monotonic() - self._t0
        text = Text(self._label, style="bold")
        text.append(f" {elapsed:5.1f}s")
        if self._last:
            text.append(" " + self._last[:80], style="dim")
        return text

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def for_terminal() -> Spinner | None:
    import sys

    return Spinner() if sys.stderr.isatty() else None
