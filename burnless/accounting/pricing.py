"""The price table (what a model's tokens cost, in USD per million) and the cost of a call.

One dated table ships in ``burnless/data/prices.json``; it is read on first use. A tier's
``price:`` in config overrides it.

Model ids are matched after normalising: lowercase, a provider prefix dropped (``anthropic/``,
``openai/``, ``google/``, ``models/``), ``.`` between digits read as ``-`` (``opus-4.8`` =
``opus-4-8``), then an exact match on a table id or alias; failing that, the same again with a
trailing snapshot date dropped (``-20250929``, ``-2025-08-07``, ``@20250805``). Nothing is
guessed: a bare family name (``opus``, ``sonnet``, ``gpt``), a family without its minor version
(``opus-4``: 4.0? 4.8?) or any id the table does not list has no price (None), and its cost is
reported as unknown, never as 0. Full API ids are exact (``claude-opus-4`` is Opus 4.0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.vocab import CostSource

if TYPE_CHECKING:
    from burnless.formats import WorkerOutput
    from burnless.settings import Tier

RATES = ("input", "output", "cache_write", "cache_write_1h", "cache_read")
_PREFIXES = ("anthropic/", "openai/", "google/", "models/")
_DOT_VERSION = re.compile(r"(?<=\d)\.(?=\d)")
_SNAPSHOT = re.compile(r"[-@](?:\d{8}|\d{4}-\d{2}-\d{2})$")
# Anthropic's cache multipliers, used only to fill cache rates for a model the table does not
# know when the config gives just input and output (1.25x / 2x / 0.1x input).
_DEFAULT_RATIOS = {"cache_write": 1.25, "cache_write_1h": 2.0, "cache_read": 0.1}


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float  # 5-minute cache write
    cache_write_1h: float
    cache_read: float


@dataclass(frozen=True)
class _Table:
    """The price table as loaded: prices by model id, aliases, minimum cacheable lengths."""
    as_of: str
    sources: tuple[str, ...]
    prices: dict[str, Price]
    index: dict[str, str]  # normalised id or alias -> table id
    min_cache: dict[str, int]  # table id -> minimum cacheable prompt length, in tokens


def normalise(model: str) -> str:
    s = model.strip().lower()
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if s.startswith(prefix):
                s, stripped = s[len(prefix) :], True
    return _DOT_VERSION.sub("-", s)


def _rate(model: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"price of {model}: {key} must be a number, not {value!r}")
    f = float(value)
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"price of {model}: {key} must be a non-negative number, not {value!r}")
    return f


def _build(data: Any) -> _Table:
    """Check and index the table; a broken table is a bug in burnless, so it raises."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ValueError("prices.json: expected an object with 'models'")
    as_of = str(data.get("as_of", ""))
    date.fromisoformat(as_of)
    prices: dict[str, Price] = {}
    index: dict[str, str] = {}
    min_cache: dict[str, int] = {}
    for model_id, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"prices.json: {model_id}: expected an object")
        missing = [k for k in RATES if k not in entry]
        if missing:
            raise ValueError(f"prices.json: {model_id}: missing {', '.join(missing)}")
        prices[model_id] = Price(**{k: _rate(model_id, k, entry[k]) for k in RATES})
        if "min_cache_tokens" in entry:
            min_cache[model_id] = int(entry["min_cache_tokens"])
        for name in [model_id, *entry.get("aliases", [])]:
            key = normalise(name)
            if index.setdefault(key, model_id) != model_id:
                raise ValueError(f"prices.json: {name!r} names both {index[key]} and {model_id}")
    return _Table(as_of, tuple(data.get("sources", ())), prices, index, min_cache)


@lru_cache(maxsize=1)
def _table() -> _Table:
    # Beside the package's modules (a wheel installs it there); not importlib.resources, whose
    # import alone is a few ms of every run.
    raw = (Path(__file__).resolve().parent.parent / "data" / "prices.json").read_bytes()
    return _build(orjson.loads(raw))


def prices_as_of() -> str:
    """The date the shipped table was checked against its sources (YYYY-MM-DD)."""
    return _table().as_of


def price_sources() -> tuple[str, ...]:
    return _table().sources


def known_models() -> tuple[str, ...]:
    return tuple(_table().prices)


def __getattr__(name: str) -> str:
    # PRICES_AS_OF reads the table lazily, so importing this module stays free.
    if name == "PRICES_AS_OF":
        return prices_as_of()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def canonical_model(model: str | None) -> str | None:
    """The table's id for a model id or alias, or None when the table does not know it."""
    if not model or not model.strip():
        return None
    index = _table().index
    key = normalise(model)
    found = index.get(key)
    if found is None:
        found = index.get(_SNAPSHOT.sub("", key))
    return found


def min_cacheable_tokens(model: str | None) -> int | None:
    """The shortest prompt prefix the provider caches for this model, when the table says."""
    canonical = canonical_model(model)
    return _table().min_cache.get(canonical) if canonical else None


def price_for(
    model: str | None, override: Mapping[str, float] | float | None = None
) -> Price | None:
    """The price of ``model``'s tokens, with a tier's ``price:`` applied; None when unknown.

    ``override`` keys are the five rates. A key it leaves out comes from the table; except that
    when ``input`` is overridden, cache rates left out follow it in the table's proportions
    (a discount on input carries to the cache, and ``{input: 0, output: 0}`` is free
    throughout). For a model the table does not know, ``input`` and ``output`` are both
    required (else None: a price is never guessed) and cache rates default to Anthropic's
    1.25x / 2x / 0.1x of input. A bare number (``price: 0``) sets input and output to it.
    Invalid values (negative, not a number, unknown key) raise ValueError.
    """
    table_id = canonical_model(model)
    base = _table().prices.get(table_id) if table_id else None
    if override is None:
        return base
    name = model or "the tier"
    if not isinstance(override, Mapping):
        flat = _rate(name, "price", override)
        override = {"input": flat, "output": flat}
    unknown = sorted(set(override) - set(RATES))
    if unknown:
        raise ValueError(f"price of {name}: unknown key(s) {', '.join(unknown)}")
    given = {k: _rate(name, k, v) for k, v in override.items()}

    if base is None:
        if "input" not in given or "output" not in given:
            return None
        base_input, base_output = given["input"], given["output"]
    else:
        base_input, base_output = base.input, base.output
    input_rate = given.get("input", base_input)
    rates = {"input": input_rate, "output": given.get("output", base_output)}
    for key, default_ratio in _DEFAULT_RATIOS.items():
        if key in given:
            rates[key] = given[key]
        elif base is None:
            rates[key] = input_rate * default_ratio
        elif "input" in given:
            ratio = getattr(base, key) / base.input if base.input else default_ratio
            rates[key] = input_rate * ratio
        else:
            rates[key] = getattr(base, key)
    return Price(**rates)


def cost_usd(tokens: Tokens, price: Price, cache_write_1h: int = 0) -> float:
    """What ``tokens`` cost at ``price``; ``cache_write_1h`` of the cache writes used the 1h TTL."""
    one_hour = min(max(cache_write_1h, 0), tokens.cache_write)
    micro = (
        tokens.input * price.input
        + tokens.output * price.output
        + (tokens.cache_write - one_hour) * price.cache_write
        + one_hour * price.cache_write_1h
        + tokens.cache_read * price.cache_read
    )
    return micro / 1_000_000


def tier_price(tier: Tier, model: str | None = None) -> Price | None:
    """The price of a tier's tokens (of ``model`` when the worker named another): the table
    with the tier's ``price:`` override applied; None when unknown."""
    return price_for(model or tier.model, tier.price.as_mapping() if tier.price else None)


def _model_price(tier: Tier, model: str) -> Price | None:
    """One model's price within a call that used several: the tier's ``price:`` describes the
    tier's own model (every model, when the tier names none); others come from the table."""
    table_id = canonical_model(model)
    own = not tier.model or model == tier.model or (
        table_id is not None and table_id == canonical_model(tier.model))
    return tier_price(tier, model) if own else price_for(model)


def _priced_per_model(tier: Tier, by_model: tuple[tuple[str, Tokens], ...]) -> float | None:
    total = 0.0
    for model, tokens in by_model:
        price = _model_price(tier, model)
        if price is None:
            return None  # one unpriced model makes the whole call's cost unknown, never partial
        total += cost_usd(tokens, price)
    return total


def cost_of_call(
    tier: Tier, output: WorkerOutput, sent: str, *, estimated: bool = False
) -> tuple[Tokens, float | None, CostSource]:
    """Tokens, USD and cost source of one call that sent ``sent`` and answered ``output``.

    ``cost_source`` is the first that applies: ``reported`` (the worker said what it cost, or
    that the call failed before anything was billed: $0), ``priced`` (reported tokens x the
    price table; each model at its own rate when the worker used several), ``estimated`` (no
    usage in the output's format: tokens from bytes x the table; or ``estimated``: the usage is
    partly burnless's estimate, as for a stream cut before its final usage), ``unknown`` (no
    price for a model, or a worker that failed without saying what it billed: the cost is
    None, never 0).
    """
    if output.usage is None and output.no_usage == "unbilled":
        return Tokens(), 0.0, "reported"
    if output.usage is None and output.no_usage == "unknown":
        return Tokens(), None, "unknown"
    price = tier_price(tier, output.model)
    tokens = output.usage or Tokens(
        input=estimate_tokens(sent), output=estimate_tokens(output.text)
    )
    if output.cost_usd is not None:
        return tokens, output.cost_usd, "reported"
    if output.by_model:
        usd = _priced_per_model(tier, output.by_model)
        return tokens, usd, "priced" if usd is not None else "unknown"
    if price is None:
        return tokens, None, "unknown"
    usd = cost_usd(tokens, price, output.cache_write_1h)
    return tokens, usd, "priced" if output.usage is not None and not estimated else "estimated"
