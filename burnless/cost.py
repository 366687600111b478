"""What a call cost: its tokens, its USD, and where that figure comes from (SPEC 9).

``cost_source`` is the first that applies: ``reported`` (the worker said what it cost),
``priced`` (reported tokens x the price table), ``estimated`` (no usage reported: tokens from
bytes x the table), ``unknown`` (no price for the model: the cost is None, never 0).
"""

from __future__ import annotations

from burnless import pricing
from burnless.config import Tier
from burnless.formats import WorkerOutput
from burnless.tokens import Tokens, estimate_tokens


def account(
    tier: Tier, output: WorkerOutput, sent: str, *, estimated: bool = False
) -> tuple[Tokens, float | None, str]:
    """Tokens, USD and cost source of one call that sent ``sent`` and answered ``output``.
    ``estimated``: ``output.usage`` is partly burnless's estimate (a stream cut before its
    final usage), so the source says ``estimated``, not ``priced``."""
    model = output.model or tier.model
    price = pricing.price_for(model, tier.price.as_mapping() if tier.price else None)
    tokens = output.usage or Tokens(
        input=estimate_tokens(sent), output=estimate_tokens(output.text)
    )
    if output.cost_usd is not None:
        return tokens, output.cost_usd, "reported"
    if price is None:
        return tokens, None, "unknown"
    usd = pricing.cost_usd(tokens, price, output.cache_write_1h)
    return tokens, usd, "priced" if output.usage is not None and not estimated else "estimated"
