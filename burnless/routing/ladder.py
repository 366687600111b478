"""The ladder: the order a cascade climbs (cheapest first), and the rungs a turn will try.

``routing.ladder`` lists tiers cheapest first. A cascade climbs it from the cheapest rung (or
from the rung ``--tier`` or a rule named); an open breaker on the routed tier hands the turn to
the next rung up. Sensitive work never climbs to a rung that may not receive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from burnless.errors import PolicyRefused
from burnless.routing.breaker import Breaker
from burnless.safety.policy import allows
from burnless.settings import Config

if TYPE_CHECKING:
    from burnless.routing.router import Decision


def climb_from(cfg: Config, start: str) -> tuple[str, ...]:
    """The cascade rungs from ``start`` up (``start`` then the whole ladder if it is not on it)."""
    ladder = cfg.routing.ladder
    if start in ladder:
        return ladder[ladder.index(start):]
    return (start, *ladder)


def rungs_above(cfg: Config, tier: str) -> tuple[str, ...]:
    """The rungs above ``tier`` on ``routing.ladder`` (none when it is not on the ladder)."""
    ladder = cfg.routing.ladder
    return ladder[ladder.index(tier) + 1:] if tier in ladder else ()


def next_rung(cfg: Config, tier: str) -> str | None:
    ladder = cfg.routing.ladder
    if tier in ladder and ladder.index(tier) + 1 < len(ladder):
        return ladder[ladder.index(tier) + 1]
    return None


def rungs(
    cfg: Config, decision: Decision, sensitive: Sequence[str], *, explicit: bool
) -> tuple[list[str], list[str]]:
    """The tiers a turn tries, in order, and why any planned rung was skipped.

    Open breakers are skipped (never against an explicit ``--tier``); when the routed tier's
    breaker is open outside a cascade, the next rung up serves. Sensitive work with no rung
    that may receive it is refused (``PolicyRefused``): nothing is sent.
    """
    planned = list(decision.ladder) if decision.cascade else [decision.tier]
    if explicit:
        return planned, []
    breaker = Breaker(cfg)
    chosen: list[str] = []
    skipped: list[str] = []
    for rung in planned:
        why = breaker.open_reason(rung)
        if why:
            skipped.append(why)
        else:
            chosen.append(rung)
    nxt = next_rung(cfg, decision.tier) if not chosen and not decision.cascade else None
    while nxt is not None:
        why = breaker.open_reason(nxt)
        if not allows(cfg.tiers[nxt], sensitive):
            why = f"{nxt} skipped: the work is sensitive and {nxt} is not local"
        if why is None:
            chosen.append(nxt)
            skipped.append(f"{nxt} serves instead (next rung up routing.ladder)")
            break
        skipped.append(why)
        nxt = next_rung(cfg, nxt)
    if sensitive and not chosen:
        raise PolicyRefused(
            "sensitive work may only go to a tier with local: true, and no local tier can "
            f"serve now ({'; '.join(skipped)}); nothing was sent"
        )
    return chosen, skipped
