"""burnless demo (placeholder)."""

from __future__ import annotations

from burnless.errors import UsageError


def demo() -> None:
    """Offline demo (not built yet)."""
    raise UsageError("demo is not built yet")
