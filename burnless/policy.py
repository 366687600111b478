"""Policy for one workspace: secret masking, sensitive work, and nested calls (SPEC 8).

The mechanisms live in ``redact`` (secret detection and masks) and ``sensitive`` (what makes a
task sensitive); this module applies the config's ``policy:`` section to a turn.

Besides what ``redact`` detects by shape, the values the config hands to workers as secrets are
masked wherever they show up (a worker that prints its environment, an error that quotes a
header): the tiers' ``env`` and ``pass_env`` values whose name says key, token, secret,
password or credential, or whose value looks random (``redact.looks_random``).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import orjson

from burnless.config import Config

if TYPE_CHECKING:
    from burnless.redact import Redactor

DEPTH_ENV = "BURNLESS_DEPTH"
ACTIVE_ENV = "BURNLESS_ACTIVE_SESSIONS"
# an env name that says its value is a credential: ANTHROPIC_API_KEY, GH_TOKEN, DB_PASS, MY_CRED
_SECRET_NAME = re.compile(
    r"(?i)(?:^|[^a-z])(?:key|apikey|token|secret|password|passwd|pwd|pass|creds?|credentials?|auth)"
    r"(?:$|[^a-z])"
)


class Policy:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._redactor: Redactor | None = None

    # -- secrets

    def redact(self, text: str, originals: dict[str, str] | None = None) -> tuple[str, int]:
        """``text`` with its secrets masked, and how many there were (no-op when disabled).
        ``originals`` receives each mask and its secret (see ``Redactor.redact``)."""
        if not self.cfg.policy.redact_secrets or not text:
            return text, 0
        if self._redactor is None:
            from burnless.redact import Redactor

            self._redactor = Redactor.for_workspace(self.cfg.state_dir, self.known_secrets())
        red = self._redactor.redact(text, originals)
        return red.text, red.count

    def mask(self, text: str) -> str:
        return self.redact(text)[0]

    def known_secrets(self) -> list[str]:
        """Secret values the config gives workers: tier ``env`` and ``pass_env`` values."""
        from burnless.redact import looks_random

        found: list[str] = []
        for tier in self.cfg.tiers.values():
            pairs = [*tier.env.items(), *((n, os.environ.get(n, "")) for n in tier.pass_env)]
            for name, value in pairs:
                value = (value or "").strip()
                if len(value) < 8 or value.startswith(("/", "~", ".")) or "://" in value:
                    continue  # short, a path, a URL (credentials in URLs are masked by shape)
                if _SECRET_NAME.search(name) or looks_random(value):
                    found.append(value)
        return found

    # -- sensitive work

    def sensitivity(self, task: str, labels: tuple[str, ...]) -> tuple[str, ...]:
        """Why the task is sensitive (empty: it is not)."""
        from burnless.sensitive import classify

        pol = self.cfg.policy
        res = classify(task, patterns=pol.sensitive_patterns, paths=pol.sensitive_paths,
                       labels=labels, redact_secrets=pol.redact_secrets)
        reasons = list(res.reasons)
        if not pol.redact_secrets:
            # prefix.md goes out with every prompt, unmasked when redaction is off
            from burnless.prompt import read_prefix
            from burnless.redact import find_secrets

            try:
                prefix = read_prefix(self.cfg.state_dir)
            except (OSError, UnicodeDecodeError):
                prefix = ""
            kinds = sorted({f.kind for f in find_secrets(prefix)})
            if kinds:
                reasons.append(f"secret ({', '.join(kinds)}) in .burnless/prefix.md while "
                               "redact_secrets is off")
        # a reason quotes the task (a path): it goes to the ledger and the terminal
        return tuple(self.mask_if_secret(r) for r in reasons)

    def mask_if_secret(self, text: str) -> str:
        """``text`` masked when it holds a secret; else as is, without touching ``redact.key``
        (so ``route``, which must write nothing, stays read-only on ordinary text)."""
        if self.cfg.policy.redact_secrets and self._has_secret(text):
            return self.mask(text)
        return text

    def _has_secret(self, text: str) -> bool:
        from burnless.redact import find_secrets

        return bool(find_secrets(text, self.known_secrets()))

    # -- nesting

    def depth_refusal(self) -> str | None:
        """Why this process may not run (too deeply nested), or None."""
        d = depth()
        if d > self.cfg.policy.max_depth:
            return (f"nested burnless call at depth {d} exceeds policy.max_depth = "
                    f"{self.cfg.policy.max_depth}; refused before spending anything")
        return None

    def is_calling_session(self, session_id: str) -> bool:
        """True when this run was started by a worker of that very session's running turn."""
        return self._key(session_id) in active_sessions()

    def worker_env(self, session_id: str) -> dict[str, str]:
        """What burnless adds to every worker's environment."""
        active = [*active_sessions(), self._key(session_id)]
        return {DEPTH_ENV: str(depth() + 1), ACTIVE_ENV: orjson.dumps(active).decode()}

    def _key(self, session_id: str) -> str:
        return f"{self.cfg.workspace}::{session_id}"


def depth() -> int:
    """How deep in nested burnless calls this process is (0 at the top)."""
    raw = os.environ.get(DEPTH_ENV, "0").strip()
    return int(raw) if raw.isdigit() else 0


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
