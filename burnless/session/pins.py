"""Pinning: a session keeps the tiers it started with, so the provider's cache stays warm.

With ``routing.pin``, the first time a session uses a tier, that tier's command, model and API
are recorded in ``session.json``; the first execution turn records the session's executor.
Later turns use the recorded ones even when the config changes (with a warning); ``--repin``
adopts the current config. A command that held a secret is pinned masked (``session.json`` is
state on disk) and cannot be restored from it: the current config is used instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from burnless.safety.secrets import MASK_PATTERN
from burnless.session.store import Pin, Session, SessionMeta
from burnless.settings import Config, Tier

_MASKED = re.compile(MASK_PATTERN)


class PinBook:
    """One turn's view of the session's pins: read under the session lock, saved if changed."""

    def __init__(self, session: Session, meta: SessionMeta) -> None:
        self.session = session
        self.meta = meta
        self.dirty = False

    @classmethod
    def load(cls, session: Session) -> PinBook:
        return cls(session, session.meta())

    @property
    def executor(self) -> str | None:
        return self.meta.executor

    def pin_executor(self, name: str | None) -> None:
        if self.meta.executor is None and name is not None:
            self.meta.executor = name
            self.dirty = True

    def stamp_created(self, ts: str) -> None:
        if not self.meta.created:
            self.meta.created = ts
            self.dirty = True

    def reset(self) -> bool:
        """Forget every pin (``--repin``). True when there was one."""
        had = bool(self.meta.pins or self.meta.executor)
        if had:
            self.meta.pins.clear()
            self.meta.executor = None
            self.dirty = True
        return had

    def tier(self, cfg: Config, name: str, mask: Callable[[str], str]) -> tuple[Tier, str | None]:
        """The tier as the session pinned it (command, model, api), pinning it on first use;
        and a warning when the pin and the config disagree."""
        tier = cfg.tier(name)
        if not cfg.routing.pin:
            return tier, None
        current = Pin(mask(tier.command) if tier.command else tier.command, tier.model, tier.api)
        pin = self.meta.pins.get(name)
        if pin is None or pin == current:
            if pin is None:
                self.meta.pins[name] = current
                self.dirty = True
            return tier, None
        sid = self.session.id
        if pin.command and _MASKED.search(pin.command):
            self.meta.pins[name] = current
            self.dirty = True
            return tier, (f"session {sid!r}: tier {name} was pinned to a command that held a "
                          "secret, which cannot be restored; the current config is used")
        what = pin.command or f"api {pin.api}"
        warning = (f"session {sid!r}: tier {name} is pinned to {what!r} (model {pin.model}); "
                   "the config changed; run with --repin to adopt it")
        return dataclasses.replace(tier, command=pin.command, model=pin.model, api=pin.api), warning

    def save(self) -> None:
        if self.dirty:
            self.session.save_meta(self.meta)
            self.dirty = False
