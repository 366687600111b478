"""The kinds of tier, by name (no imports, so the config loader can validate against them).

``command`` is every tier with ``command:``; the others are the values of ``api:``. Each names
the module whose ``WORKER`` serves it (see ``burnless.workers``).
"""

from __future__ import annotations

from typing import Final

KINDS: Final[dict[str, str]] = {
    "command": "burnless.workers.command",
    "anthropic": "burnless.workers.anthropic_api",
    "openai": "burnless.workers.openai_api",
}
API_KINDS: Final[tuple[str, ...]] = tuple(k for k in KINDS if k != "command")
