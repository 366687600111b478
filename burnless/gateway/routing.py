"""Which tier serves a gateway request, and the sessions pinned to their tiers.

1. ``model`` names a tier → that tier.
2. ``model`` is ``burnless/auto`` or matches ``gateway.route_models`` → the routing engine:
   ``routing.rules``, then ``routing.examples``, on the text of the last user message (and
   ``X-Burnless-Label`` labels);
   else the planner/executor split: the first request of a session, and the first after the
   client compacted its context (a transcript shorter than the session's previous request), go
   to the ``planner``; every other request to the executor — the session's pinned tier when a
   failover moved it, else ``executor``. A request without a session goes to the executor.
3. any other ``model`` → the first tier of the request's protocol whose ``model`` is that id;
   else ``gateway.passthrough`` with the client's model id unchanged; else an error naming the
   model and the tiers.

Then policy: a sensitive request goes only to ``local: true`` tiers of its protocol (the routed
one if it is local, else the first local one on ``routing.ladder``, else any), or nowhere.

A session remembers the transcript size of its previous request per model the client asked
for: Claude Code makes small side requests on another model (titles, checks) in the same
session, which must not look like a compaction of the main conversation. Pins live
``gateway.affinity_ttl`` seconds after their last use, at most ``gateway.max_sessions`` of them
(least recently used dropped). With a shared backend (``state.backend``) pins are on the server,
so every gateway of the team routes a session alike (and in memory while it is unreachable).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from burnless.accounting import pricing
from burnless.gateway import core
from burnless.settings import Config, Tier
from burnless.vocab import Role

if TYPE_CHECKING:
    from burnless.state import SharedState

AUTO = "burnless/auto"
PLANNING: Final[Role] = "planning"
EXECUTION: Final[Role] = "execution"


class NoRoute(Exception):
    """The request names nothing the gateway can serve; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Plan:
    """Where a gateway request goes: the routed tier, its model, and the tiers to fail over to."""
    tier: str  # the routed tier (before failover)
    model: str  # the model id sent upstream
    role: Role
    reasons: tuple[str, ...]
    candidates: tuple[str, ...]  # tiers to try in order: the routed one, then its fallbacks
    passthrough: bool = False  # the client's model id goes upstream unchanged
    engine: bool = False  # routed by the engine: the session's pin follows it
    by_rule: bool = False  # a routing rule chose the tier (the pin stays where it was)
    sensitive: tuple[str, ...] = ()


@dataclass
class SessionState:
    """A client session's pin: its tier and role, and what its last requests looked like."""
    tier: str | None = None  # the pinned tier
    role: Role = EXECUTION  # the role it was pinned for
    transcripts: dict[str, int] = field(default_factory=dict)  # per requested model: the
    # transcript size of the session's previous request with it
    sensitive: bool = False  # once sensitive, the session stays on local tiers
    seen: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "role": self.role, "transcripts": self.transcripts,
                "sensitive": self.sensitive}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionState | None:
        """A pin as another gateway stored it; None when it is not one."""
        tier, role, transcripts = d.get("tier"), d.get("role"), d.get("transcripts")
        if (not isinstance(tier, (str, type(None))) or role not in (PLANNING, EXECUTION)
                or not isinstance(transcripts, dict)
                or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                           for k, v in transcripts.items())):
            return None
        return cls(tier=tier, role=role, transcripts=dict(transcripts),
                   sensitive=d.get("sensitive") is True)


class Sessions:
    """Pins by session id, with a TTL refreshed on use and an LRU bound; on the ``shared``
    backend when there is one (its calls then block: ``remote`` says so)."""

    def __init__(self, ttl: float, max_sessions: int,
                 clock: Callable[[], float] = time.monotonic,
                 shared: SharedState | None = None) -> None:
        self.ttl, self.max, self._clock = ttl, max_sessions, clock
        self._items: OrderedDict[str, SessionState] = OrderedDict()
        self.shared = shared
        # With a shared backend, get and put run in threads (and fall back to _items).
        self._lock = threading.Lock()

    @property
    def remote(self) -> bool:
        return self.shared is not None

    def get(self, key: str) -> SessionState | None:
        if self.shared is not None:
            from burnless.state import Unreachable

            try:
                data = self.shared.pin_get(key)
                return SessionState.from_dict(data) if data is not None else None
            except Unreachable:
                pass  # this gateway's own pins, until the server is back
        with self._lock:
            state = self._items.get(key)
            if state is None:
                return None
            if self._clock() - state.seen > self.ttl:
                del self._items[key]
                return None
            return state

    def put(self, key: str, state: SessionState) -> None:
        if self.shared is not None:
            from burnless.state import Unreachable

            try:
                self.shared.pin_put(key, state.to_dict(), self.ttl, self.max)
                return
            except Unreachable:
                pass
        state.seen = self._clock()
        with self._lock:
            self._items[key] = state
            self._items.move_to_end(key)
            while len(self._items) > self.max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def speaks(tier: Tier, api: str) -> bool:
    return tier.api == api


def served_models(cfg: Config) -> list[str]:
    """What ``/v1/models`` lists: the auto router and every api tier."""
    return [AUTO, *(name for name, t in cfg.tiers.items() if t.api is not None)]


def choose(cfg: Config, api: str, model: str, *, text: str, labels: Sequence[str],
           session: bool, state: SessionState | None, transcript: int,
           sensitive: tuple[str, ...], policy: core.Policy | None = None) -> Plan:
    """The plan for one request. ``session``: the request has one (without, there is no
    "first request" to plan: it goes to the executor); ``state``: what the session left (None
    for its first request, or after its pin expired)."""
    reasons: list[str] = []
    passthrough = engine = by_rule = False
    role: Role = EXECUTION
    if model in cfg.tiers:
        tier = model
        reasons.append(f"model names tier {tier}")
        _check_protocol(cfg, tier, api)
    elif model == AUTO or any(fnmatch.fnmatchcase(model, g) for g in cfg.gateway.route_models):
        engine = True
        why = "burnless/auto" if model == AUTO else f"model {model!r} is in gateway.route_models"
        rule = core.rule_for(cfg, text, labels)
        example = None if rule is not None else core.example_for(
            cfg, policy or core.make_policy(cfg), text, sensitive)
        if rule is not None:
            tier, by_rule = rule[0], True
            reasons += [why, rule[1]]
        elif example is not None and example[0] is not None:
            tier, by_rule = example[0], True
            reasons += [why, example[1]]
        elif session and cfg.planner is not None and (
                state is None or transcript < state.transcripts.get(model, 0)):
            tier, role = cfg.planner, PLANNING
            first = "first request of the session" if state is None else (
                f"the transcript shrank ({state.transcripts[model]} → {transcript} items): "
                "the client compacted its context")
            reasons += [why, f"planner {tier}: {first}"]
        elif state is not None and state.tier in cfg.tiers and state.role == EXECUTION:
            tier = state.tier
            reasons += [why, f"pinned: the session's tier is {tier}"]
        else:
            tier = cfg.executor or next(iter(cfg.tiers))
            reasons += [why, f"executor {tier}" + ("" if session else " (no session)")]
        _check_protocol(cfg, tier, api)
    else:
        found = _tier_with_model(cfg, api, model)
        if found is not None:
            tier = found
            reasons.append(f"model {model!r} is tier {tier}'s model")
        elif cfg.gateway.passthrough is not None and speaks(
                cfg.tiers[cfg.gateway.passthrough], api):
            tier, passthrough = cfg.gateway.passthrough, True
            reasons.append(f"model {model!r} passed through to tier {tier} (gateway.passthrough)")
        else:
            names = ", ".join(served_models(cfg)) or "none"
            raise NoRoute(404, f"model {model!r} is neither a tier nor a tier's model, and "
                          f"gateway.passthrough does not serve it; models here: {names} "
                          f"(config {cfg.path})")
    chosen = tier
    if sensitive:
        chosen = _local(cfg, tier, api, sensitive)
        because = "; ".join(sensitive)
        if chosen == tier:
            reasons.append(f"policy: sensitive ({because}): {tier} is local")
        else:
            reasons.append(f"policy: sensitive ({because}): {tier} is not local → {chosen}")
            passthrough = False
    sent = model if passthrough else (cfg.tiers[chosen].model or model)
    return Plan(tier=chosen, model=sent, role=role, reasons=tuple(reasons),
                candidates=candidates(cfg, chosen, api, sensitive), passthrough=passthrough,
                engine=engine, by_rule=by_rule, sensitive=sensitive)


def _check_protocol(cfg: Config, tier: str, api: str) -> None:
    t = cfg.tiers[tier]
    if t.api is None:
        raise NoRoute(400, f"tier {tier!r} is a command tier (it runs {t.argv[0]!r}); the "
                      "gateway serves api tiers only (api: anthropic or openai)")
    if t.api != api:
        raise NoRoute(400, f"tier {tier!r} speaks the {t.api} API, not this endpoint's {api} "
                      "API (the gateway does not translate between them)")


def _tier_with_model(cfg: Config, api: str, model: str) -> str | None:
    tiers = [(n, t) for n, t in cfg.tiers.items() if t.api == api and t.model]
    for name, t in tiers:
        if t.model == model:
            return name
    canonical = pricing.canonical_model(model)
    if canonical is None:
        return None
    for name, t in tiers:
        if pricing.canonical_model(t.model) == canonical:
            return name
    return None


def _local(cfg: Config, tier: str, api: str, sensitive: tuple[str, ...]) -> str:
    if core.allows(cfg.tiers[tier], sensitive):
        return tier
    locals_ = [n for n, t in cfg.tiers.items() if core.allows(t, sensitive) and t.api == api]
    if not locals_:
        raise NoRoute(403, f"the request is sensitive ({'; '.join(sensitive)}) and may only "
                      f"go to a tier with local: true that speaks the {api} API; none is "
                      "configured. Nothing was sent")
    on_ladder = [t for t in cfg.routing.ladder if t in locals_]
    return (on_ladder or locals_)[0]


def candidates(cfg: Config, tier: str, api: str, sensitive: tuple[str, ...]) -> tuple[str, ...]:
    """The tier, then who serves if it fails: its ``fallback`` list, else the rungs above it
    on ``routing.ladder`` — only api tiers of the request's protocol (local ones when the
    request is sensitive)."""
    after = cfg.tiers[tier].fallback or core.next_rungs(cfg, tier)
    out = [tier]
    for name in after:
        t = cfg.tiers[name]
        if name not in out and t.api == api and core.allows(t, sensitive):
            out.append(name)
    return tuple(out)
