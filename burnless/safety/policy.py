"""The workspace's policy: what is masked, what is sensitive, and which tier may receive what.

``allows(tier, sensitive)`` is the one decision "sensitive work stays local": routing, the
cascade ladder, the planner, the compactor and the last guard before any dispatch all ask it.
``Policy`` applies the config's ``policy:`` section: ``mask`` (the one verb for hiding
secrets, see ``secrets``) and ``sensitivity`` (why a task is sensitive, see ``sensitivity``).

Besides what ``secrets`` detects by shape, the values the config hands to workers as secrets are
masked wherever they show up (a worker that prints its environment, an error that quotes a
header): the tiers' ``env`` and ``pass_env`` values whose name says key, token, secret,
password or credential, or whose value looks random (``secrets.looks_random``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from burnless.config import _SECRET_NAME
from burnless.settings import Config, Tier

if TYPE_CHECKING:
    from burnless.safety.secrets import Redactor


def allows(tier: Tier, sensitive: Sequence[str]) -> bool:
    """May ``tier`` receive work whose sensitivity reasons are ``sensitive``? Sensitive work
    (any reason at all) goes only to tiers with ``local: true``."""
    return tier.local or not sensitive


def refusal(tier: Tier, sensitive: Sequence[str]) -> str:
    """Why ``allows`` says no, for the ledger and the user."""
    return (f"sensitive work ({'; '.join(sensitive)}) may not go to tier {tier.name!r}, which "
            "is not local; nothing was sent")


class Policy:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._redactor: Redactor | None = None
        self._known: list[str] | None = None

    # -- secrets

    def mask(self, text: str) -> str:
        """``text`` with its secrets masked (as is when ``redact_secrets`` is off)."""
        return self.mask_counted(text)[0]

    def mask_counted(
        self, text: str, originals: dict[str, str] | None = None
    ) -> tuple[str, int]:
        """``mask``, and how many secrets it replaced. Text with no secret is returned as is
        without touching ``redact.key`` (so ``route``, which writes nothing, stays read-only).
        ``originals`` receives each mask and its secret (in memory only: the gateway restores
        a secret where an answer echoes its mask)."""
        if not self.cfg.policy.redact_secrets or not text:
            return text, 0
        from burnless.safety.secrets import find_secrets

        if not find_secrets(text, self.known_secrets()):
            return text, 0
        red = self.redactor().redact(text, originals)
        return red.text, red.count

    def redactor(self) -> Redactor:
        """The workspace's redactor, its key (``redact.key``) created or checked on first use.
        A run asks for it before dispatching, so a damaged key stops the run up front."""
        if self._redactor is None:
            from burnless.safety.secrets import Redactor

            self._redactor = Redactor.for_workspace(self.cfg.state_dir, self.known_secrets())
        return self._redactor

    def known_secrets(self) -> list[str]:
        """Secret values the config gives workers: tier ``env`` and ``pass_env`` values."""
        if self._known is not None:
            return self._known
        from burnless.safety.secrets import looks_random

        found: list[str] = []
        for tier in self.cfg.tiers.values():
            pairs = [*tier.env.items(), *((n, os.environ.get(n, "")) for n in tier.pass_env)]
            for name, value in pairs:
                value = (value or "").strip()
                if len(value) < 8 or value.startswith(("/", "~", ".")) or "://" in value:
                    continue  # short, a path, a URL (credentials in URLs are masked by shape)
                if _SECRET_NAME.search(name) or looks_random(value):
                    found.append(value)
        self._known = found
        return found

    # -- sensitive work

    def sensitivity(self, task: str, labels: tuple[str, ...]) -> tuple[str, ...]:
        """Why the task is sensitive (empty: it is not)."""
        from burnless.safety.sensitivity import classify

        pol = self.cfg.policy
        res = classify(task, patterns=pol.sensitive_patterns, paths=pol.sensitive_paths,
                       labels=labels, redact_secrets=pol.redact_secrets)
        reasons = list(res.reasons)
        if not pol.redact_secrets:
            # prefix.md goes out with every prompt, unmasked when redaction is off
            from burnless.prompt import read_prefix
            from burnless.safety.secrets import find_secrets

            try:
                prefix = read_prefix(self.cfg.state_dir)
            except (OSError, UnicodeDecodeError):
                prefix = ""
            kinds = sorted({f.kind for f in find_secrets(prefix)})
            if kinds:
                reasons.append(f"secret ({', '.join(kinds)}) in .burnless/prefix.md while "
                               "redact_secrets is off")
        # a reason quotes the task (a path): it goes to the ledger and the terminal
        return tuple(self.mask(r) for r in reasons)
