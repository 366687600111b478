"""The gateway's one door into burnless's core: every routing, policy, budget, breaker, pricing,
ledger, response-cache and metrics call the gateway makes goes through a function here.

The gateway is a second front door to the same core as ``burnless run`` (STYLE: "two front
doors, one core"): nothing here re-implements a rule. These functions only adapt the core's
signatures to what a request has (a model id that may not be the tier's, a request's own output
cap, byte counts instead of texts). When the core moves, only this module follows it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import orjson

from burnless import response_cache as responses
from burnless import runs
from burnless.accounting import ledger
from burnless.accounting.budget import Guard, KeyLimits, Reservation
from burnless.accounting.ledger import LedgerRecord, Route
from burnless.accounting.metrics import Live, exposition, stats
from burnless.accounting.tokens import Tokens, estimate_bytes
from burnless.errors import BudgetExceeded
from burnless.formats import WorkerOutput
from burnless.routing.breaker import Breaker
from burnless.safety.policy import Policy
from burnless.settings import Config, Tier
from burnless.vocab import CostSource, RecordStatus, RefusedBy, Role

if TYPE_CHECKING:
    from burnless.state import SharedState
    from burnless.state.report import SharedLive

__all__ = [
    "Breaker", "BudgetExceeded", "Guard", "KeyLimits", "LedgerRecord", "Live", "Policy",
    "Reservation", "Tokens", "account", "allows", "breaker_open", "breaker_record",
    "breaker_streak", "cache_get", "cache_key", "cache_put", "estimate", "example_for",
    "make_breaker", "make_guard", "make_policy", "make_record", "mask", "mask_if_secret",
    "metrics_source", "metrics_text", "new_run_id", "new_task_id", "next_rungs",
    "record_refusal", "release", "reserve", "retry_after", "rule_for", "sensitivity", "settle",
    "settle_all", "shared_state", "stats_body", "upstream_base_url", "upstream_key",
]

MIN_SECRET = 8  # redact.MIN_SECRET_VALUE: shorter literal values would mask ordinary words


# --------------------------------------------------------------------------- shared state


def shared_state(cfg: Config) -> SharedState | None:
    """The workspace's shared backend (``state.backend``), None when its state is local."""
    if not cfg.state.shared:
        return None
    from burnless.state import shared

    return shared(cfg)


# --------------------------------------------------------------------------- routing


def rule_for(cfg: Config, text: str, labels: Sequence[str]) -> tuple[str, str] | None:
    """The tier of the first ``routing.rules`` entry that matches, and why (as for ``run``)."""
    from burnless.routing.router import first_rule

    matched = first_rule(cfg, text, labels)
    return (matched[0].tier, matched[1]) if matched is not None else None


def example_for(cfg: Config, policy: Policy, text: str, sensitive: Sequence[str]
                ) -> tuple[str | None, str] | None:
    """What ``routing.examples`` say of ``text`` (the tier, or None when they do not decide,
    and why), as for ``run``; None when no examples are configured."""
    from burnless.routing.router import examples_exist

    if not examples_exist(cfg):
        return None
    from burnless.routing import examples

    found = examples.match(cfg, text, sensitive=tuple(sensitive), mask=policy.mask)
    return found.tier, found.reason


def next_rungs(cfg: Config, tier: str) -> tuple[str, ...]:
    """The rungs above ``tier`` on ``routing.ladder`` (none when it is not on the ladder)."""
    from burnless.routing.ladder import rungs_above

    return rungs_above(cfg, tier)


def allows(tier: Tier, sensitive: Sequence[str]) -> bool:
    """The one policy decision: may ``tier`` receive this (sensitive) request?"""
    from burnless.safety.policy import allows as core_allows

    return core_allows(tier, sensitive)


# --------------------------------------------------------------------------- safety


def make_policy(cfg: Config) -> Policy:
    return Policy(cfg)


def sensitivity(cfg: Config, policy: Policy, text: str, labels: Sequence[str]) -> tuple[str, ...]:
    """Why ``text`` (with ``labels``) is sensitive; empty when it is not. The reasons are masked
    (a reason quotes a path, which may hold a secret)."""
    from burnless.safety.sensitivity import classify

    pol = cfg.policy
    res = classify(text, patterns=pol.sensitive_patterns, paths=pol.sensitive_paths,
                   labels=labels, redact_secrets=pol.redact_secrets)
    return tuple(policy.mask(r) for r in res.reasons)


def mask(policy: Policy, text: str, originals: dict[str, str]) -> tuple[str, int]:
    """``text`` with its secrets masked (``policy.redact_secrets``), and how many; each mask and
    its secret go into ``originals``."""
    return policy.mask_counted(text, originals)


def mask_if_secret(policy: Policy, text: str) -> str:
    return policy.mask(text)


# --------------------------------------------------------------------------- breaker


def make_breaker(cfg: Config) -> Breaker:
    return Breaker(cfg)


def breaker_open(breaker: Breaker, tier: str) -> str | None:
    return breaker.open_reason(tier)


def breaker_streak(breaker: Breaker, tier: str) -> int:
    return breaker.streak(tier)


def breaker_record(breaker: Breaker, tier: str, failed: bool) -> None:
    breaker.record(tier, failed)


# --------------------------------------------------------------------------- money


def make_guard(cfg: Config) -> Guard:
    guard = Guard(cfg)
    guard.team_sessions = True  # a client session may reach any gateway of a shared backend
    return guard


def _priced_tier(tier: Tier, model: str | None, max_output: int | None) -> Tier:
    """The tier as one request uses it: the model it sends (a passed-through client model id
    is priced as itself) and the request's own output cap."""
    changes: dict[str, object] = {}
    if model and model != tier.model:
        changes["model"] = model
    if max_output:
        changes["max_output_tokens"] = max_output
    return dataclasses.replace(tier, **changes) if changes else tier  # type: ignore[arg-type]


def reserve(guard: Guard, *, session: str, tier: Tier, model: str | None, prompt_tokens: int,
            max_output: int | None, spent: float, key: KeyLimits | None = None,
            ) -> Reservation | None:
    """Reserve a request's worst case (prompt at the full input rate + its output cap, or the
    tier's ``max_output_tokens``) against every limit, the virtual ``key``'s too, or raise
    BudgetExceeded."""
    return guard.reserve(session=session, tier=_priced_tier(tier, model, max_output),
                         prompt_tokens=prompt_tokens, task_spent=spent, key=key)


def settle(guard: Guard, reservation: Reservation | None, record: LedgerRecord) -> None:
    """Append the attempt's ledger record, settling its reservation (ledger.record_call, as
    for ``run``)."""
    ledger.record_call(guard.state_dir, record, guard.settling(reservation, record.cost_usd),
                       user_dir=guard.cfg.user_dir, tier_settings=guard.cfg.tiers.get(record.tier))


def settle_all(guard: Guard, calls: Sequence[tuple[Reservation | None, LedgerRecord]]) -> None:
    """``settle`` for several attempts in one ledger write (ledger.record_calls): one lock and
    one fsync for all of them."""
    if guard.shared is not None:  # each record's copy settles its reservation on the server
        for reservation, record in calls:
            settle(guard, reservation, record)
        return
    records = [record for _, record in calls]
    ledger.record_calls(
        guard.state_dir, records,
        guard.settling_all([(res, record.cost_usd) for res, record in calls]),
        user_dir=guard.cfg.user_dir,
        tier_settings=[guard.cfg.tiers.get(record.tier) for record in records])


def release(guard: Guard, reservation: Reservation | None) -> None:
    guard.release(reservation)


def record_refusal(cfg: Config, record: LedgerRecord) -> None:
    """A request that was not forwarded (budget, policy, breaker): ledger.record_refusal."""
    ledger.record_refusal(
        cfg.state_dir, session=record.session, role=record.role, tier=record.tier,
        model=record.model, reason=record.reason, refused_by=record.refused_by or "policy",
        task_id=record.task_id, route=record.route, client=record.client, key=record.key,
        user_dir=cfg.user_dir, tier_settings=cfg.tiers.get(record.tier))


def estimate(n_bytes: int) -> int:
    """The one token estimator (tokens.estimate_tokens), for a text known by its byte size."""
    return estimate_bytes(n_bytes)


def account(tier: Tier, model: str | None, tokens: Tokens | None, cache_write_1h: int, *,
            sent_bytes: int, output_bytes: int, partial: bool = False,
            ) -> tuple[Tokens, float | None, CostSource]:
    """Tokens, USD and cost source of one upstream attempt (cost.account). Without reported
    usage the prompt and the answer are estimated from their sizes; ``partial``: the usage
    was reported only in part (a stream cut before its final figures), the output estimated."""
    from burnless.accounting.pricing import cost_of_call

    if tokens is None:
        tokens_used: Tokens | None = None
    elif partial:
        tokens_used = dataclasses.replace(tokens, output=max(tokens.output,
                                                             estimate_bytes(output_bytes)))
    else:
        tokens_used = tokens
    if tokens_used is None:
        tokens_used = Tokens(input=estimate_bytes(sent_bytes), output=estimate_bytes(output_bytes))
        partial = True
    output = WorkerOutput(text="", format="gateway", usage=tokens_used, cost_usd=None,
                          model=model, is_error=False, cache_write_1h=cache_write_1h)
    return cost_of_call(tier, output, "", estimated=partial)


def new_run_id() -> str:
    return runs.new_run_id()


def new_task_id() -> str:
    return runs.new_task_id()


def make_record(*, run_id: str, task_id: str, session: str, role: Role, tier: str,
                model: str | None, status: RecordStatus, tokens: Tokens, cost_usd: float | None,
                cost_source: CostSource, duration_s: float, route: tuple[str, Sequence[str]],
                redactions: int, client: str, reason: str = "",
                refused_by: RefusedBy | None = None, cached: bool = False,
                key: str = "") -> LedgerRecord:
    return LedgerRecord(
        run_id=run_id, session=session, role=role, tier=tier, model=model, status=status,
        tokens=tokens, cost_usd=cost_usd, cost_source=cost_source, duration_s=duration_s,
        route=Route(route[0], tuple(route[1])), redactions=redactions, task_id=task_id,
        reason=reason[:300], refused_by=refused_by, cached=cached, client=client, key=key,
    )


# --------------------------------------------------------------------------- response cache


def cache_key(tier: Tier, role: str, canonical: str) -> str:
    return responses.key(tier, role, canonical)


def cache_get(cfg: Config, key: str) -> tuple[str, str | None] | None:
    return responses.ResponseCache.of(cfg).get(key)


def cache_put(cfg: Config, key: str, text: str, model: str | None) -> None:
    responses.ResponseCache.of(cfg).put(key, text, model)


# --------------------------------------------------------------------------- metrics


def metrics_source(cfg: Config) -> Live | SharedLive:
    """The server's metrics state: the ledger index, caught up at each scrape (the configured
    tiers' models keep their own label); with a shared backend, the team's records from the
    server's stream instead."""
    shared = shared_state(cfg)
    if shared is not None:
        from burnless.state.report import SharedLive

        return SharedLive(shared)
    return Live(cfg.state_dir, [t.model for t in cfg.tiers.values()])


def metrics_text(live: Live | SharedLive) -> bytes:
    return exposition(live.families()).encode()


def stats_body(live: Live | SharedLive) -> bytes:
    if isinstance(live, Live):
        body = stats(live.families(), live.index)
    else:
        body = live.stats()
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


# --------------------------------------------------------------------------- upstreams


def upstream_base_url(tier: Tier) -> str:
    """Where the tier's API is: ``base_url`` › the kind's URL variable as the tier sees it
    (its ``env`` or ``pass_env``, never the gateway's own environment, which may point at the
    gateway itself) › the provider's default."""
    if tier.api == "openai":
        from burnless.workers import openai_api

        return openai_api.base_url(tier)
    from burnless.workers import anthropic_api

    return anthropic_api.base_url(tier)


def upstream_key(tier: Tier, environ: Mapping[str, str]) -> str | None:
    """The tier's API key for the gateway: its ``env`` / ``pass_env`` value (as for ``run``),
    else the gateway's own environment (where the user started ``burnless serve``)."""
    return tier.env_value(tier.api_key_env) or environ.get(tier.api_key_env) or None


def retry_after(headers: Mapping[str, str]) -> float | None:
    from burnless.workers.openai_api import retry_after as parse

    return parse(headers)
