"""What a worker (or a verify command) sees of the caller's environment: almost nothing.

PATH, HOME, LANG/LC_*, TERM, TMPDIR, USER, SHELL, then the tier's ``env`` and its ``pass_env``
names, then burnless's own additions (nesting depth). No key of the caller's reaches a worker
unless the config names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from burnless.settings import Tier

KEPT_ENV = ("PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER", "SHELL")


def scrubbed_env(tier: Tier, extra: Mapping[str, str] = {}) -> dict[str, str]:  # noqa: B006
    """PATH, HOME, LANG/LC_*, TERM, TMPDIR, USER, SHELL + the tier's env and pass_env."""
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV or k.startswith("LC_")}
    env.update(tier.env)
    for name in tier.pass_env:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env
