"""burnless: run AI agent work cheaply and honestly.

    from burnless import BurnlessAgent
    result = BurnlessAgent().run("Refactor the auth module", session_id="auth")

The names below are the public API; everything else is private by convention. They are
imported lazily so that ``import burnless`` (and ``burnless --help``) stay fast.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: importing typing (and re, which it imports) is a
# good part of what `burnless run` costs when a resident process runs it (burnless.resident).
TYPE_CHECKING = False

__version__ = "0.2.0"  # the one place the version is written (pyproject reads it)

__all__ = [
    "AuditReport",
    "BudgetExceeded",
    "BurnlessAgent",
    "BurnlessError",
    "ConfigError",
    "Interrupted",
    "PolicyRefused",
    "RunResult",
    "SessionBusy",
    "Tokens",
    "TierUnavailable",
    "UsageError",
    "__version__",
]

_WHERE = {
    "BurnlessAgent": "burnless.agent",
    "RunResult": "burnless.result",
    "AuditReport": "burnless.audit",
    "Tokens": "burnless.accounting.tokens",
    "BurnlessError": "burnless.errors",
    "UsageError": "burnless.errors",
    "ConfigError": "burnless.errors",
    "TierUnavailable": "burnless.errors",
    "BudgetExceeded": "burnless.errors",
    "PolicyRefused": "burnless.errors",
    "SessionBusy": "burnless.errors",
    "Interrupted": "burnless.errors",
}

if TYPE_CHECKING:
    from typing import Any

    from burnless.accounting.tokens import Tokens
    from burnless.agent import BurnlessAgent
    from burnless.audit import AuditReport
    from burnless.errors import (
        BudgetExceeded,
        BurnlessError,
        ConfigError,
        Interrupted,
        PolicyRefused,
        SessionBusy,
        TierUnavailable,
        UsageError,
    )
    from burnless.result import RunResult


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'burnless' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
