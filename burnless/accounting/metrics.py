"""Prometheus metrics computed from the ledger (served by ``burnless serve``: burnless.gateway).

The figures are sums of the ledger index (``index``, its ``totals`` table), never counters
kept beside it: they survive restarts, and runs made while the server is up appear at the next
scrape (each scrape reads only the bytes appended since the last one). The text follows the
Prometheus exposition format 0.0.4; ``/stats`` serves the same samples as JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from burnless.accounting.index import (
    AUDIT_FAILURES,
    CACHED_HITS,
    CALLS,
    COST,
    REFUSALS,
    UNKNOWN,
    Cells,
    LedgerIndex,
    Sums,
    TotalKey,
    add,
)
from burnless.settings import STATE_DIR

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")  # = Sums[1:5]
_ROLE_METRIC = {
    "planning": "burnless_tier_planning_tokens_total",
    "execution": "burnless_tier_execution_tokens_total",
    "compaction": "burnless_tier_compaction_tokens_total",
}
_T, _M, _R, _S, _RB, _KEY = range(6)  # positions in a series key (a totals key)

Labels = tuple[tuple[str, str], ...]

# Label cardinality: every distinct ``model`` value is a new series in each family, and a
# worker or a hand-edited ledger can name anything. A model keeps its own label when it is a
# configured tier's model or in the price table; of the others, the MAX_OTHER_MODELS with the
# most records keep theirs too (a new model the table does not list yet), and the rest, with
# any value that is not a valid model name (too long, odd characters), are summed under "other".
MAX_OTHER_MODELS = 20
OTHER_MODEL = "other"


@dataclass(frozen=True)
class Sample:
    """One labelled value of a metric family."""
    labels: Labels
    value: float


@dataclass(frozen=True)
class Family:
    """A metric with its samples, as ``/metrics`` and ``/stats`` show it."""
    name: str
    help: str
    samples: tuple[Sample, ...]
    type: str = "counter"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "help": self.help,
                "samples": [{"labels": dict(s.labels), "value": s.value} for s in self.samples]}


class MetricsView:
    """The index's figures summed over days and sessions: small, cheap to recompute.

    ``known_models`` (the configured tiers' models) always keep their own ``model`` label.
    """

    def __init__(self, known_models: Iterable[str | None] = ()) -> None:
        self.series: dict[tuple[str, ...], Sums] = {}
        self.known_models = frozenset(m for m in known_models if m)

    def apply(self, cells: Cells) -> None:
        """Add rows keyed like the index's ``cells`` (the day first)."""
        for key, sums in cells.items():
            add(self.series, key[1:7], sums)

    def apply_totals(self, totals: dict[TotalKey, Sums]) -> None:
        """Add rows keyed like the index's ``totals`` (``LedgerIndex.totals()``)."""
        for key, sums in totals.items():
            add(self.series, key[:6], sums)

    def model_labels(self) -> dict[str, str]:
        """The ``model`` label of each model in the ledger (see MAX_OTHER_MODELS)."""
        from burnless.accounting import pricing
        from burnless.formats.output import valid_model_name

        records: dict[str, float] = {}
        for k, s in self.series.items():
            records[k[_M]] = records.get(k[_M], 0) + s[CALLS] + s[REFUSALS] + s[CACHED_HITS]
        labels: dict[str, str] = {}
        others: list[tuple[float, str]] = []
        for model, n in records.items():
            if not model or model in self.known_models:
                labels[model] = model
            elif not valid_model_name(model):
                labels[model] = OTHER_MODEL
            elif pricing.canonical_model(model) is not None:
                labels[model] = model
            else:
                others.append((-n, model))
        for rank, (_, model) in enumerate(sorted(others)):
            labels[model] = model if rank < MAX_OTHER_MODELS else OTHER_MODEL
        return labels

    def families(self) -> list[Family]:
        model_label = self.model_labels()
        tokens: dict[str, dict[Labels, float]] = {name: {} for name in _ROLE_METRIC.values()}
        cost: dict[Labels, float] = {}
        unknown: dict[Labels, float] = {}
        calls: dict[Labels, float] = {}
        audit: dict[str, float] = {}
        refusals: dict[Labels, float] = {}
        cached: dict[str, float] = {}
        key_cost: dict[Labels, float] = {}  # gateway virtual keys (gateway.keys)
        key_calls: dict[Labels, float] = {}
        budget = 0.0
        records = 0.0
        for k, s in self.series.items():
            tier = k[_T]
            records += s[CALLS] + s[REFUSALS] + s[CACHED_HITS]
            if s[REFUSALS]:
                _add(refusals, (("tier", tier), ("refused_by", k[_RB])), s[REFUSALS])
                budget += s[REFUSALS] if k[_RB] == "budget" else 0
            if s[CACHED_HITS]:
                _add(cached, tier, s[CACHED_HITS])
            n = s[CALLS]  # billed calls (index.billed): the only ones with tokens and cost
            if not n:
                continue
            tm = (("tier", tier), ("model", model_label[k[_M]]))
            role_metric = tokens.get(_ROLE_METRIC.get(k[_R], ""))
            if role_metric is not None:
                for i, typ in enumerate(TOKEN_TYPES, 1):
                    _add(role_metric, (*tm, ("type", typ)), s[i])
            if n > s[UNKNOWN]:  # a tier and model whose every call is of unknown cost has no cost
                _add(cost, tm, s[COST])
            _add(unknown, tm, s[UNKNOWN])
            _add(calls, (("tier", tier), ("status", k[_S])), n)
            _add(audit, tier, s[AUDIT_FAILURES])
            if k[_KEY]:
                key = (("key", _key_label(k[_KEY])),)
                _add(key_calls, key, n)
                _add(key_cost, key, s[COST])
        out = [
            Family(name, f"Tokens of {role} calls, by tier, model and type "
                   "(input | output | cache_read | cache_write; never overlapping).",
                   _samples(tokens[name]))
            for role, name in _ROLE_METRIC.items()
        ]
        out += [
            Family("burnless_cost_usd_total",
                   "Known cost of calls in USD, by tier and model (unknown costs are not "
                   "counted as 0: see burnless_unknown_cost_calls_total; no sample while "
                   "every call's cost is unknown).", _samples(cost)),
            Family("burnless_unknown_cost_calls_total",
                   "Calls whose cost is unknown (no reported cost, no price for the model).",
                   _samples(unknown)),
            Family("burnless_calls_total",
                   "Calls dispatched to a worker, by tier and status (refusals and "
                   "response-cache hits are not calls).", _samples(calls)),
            Family("burnless_audit_failures_total", "Calls whose filesystem audit failed.",
                   _samples({(("tier", t),): v for t, v in audit.items()})),
            Family("burnless_refusals_total",
                   "Calls refused before dispatch, by tier and what refused them.",
                   _samples(refusals)),
            Family("burnless_budget_refusals_total", "Calls refused by a budget limit.",
                   (Sample((), budget),)),
            Family("burnless_cached_responses_total",
                   "Answers served from the response cache (no call made), by tier.",
                   _samples({(("tier", t),): v for t, v in cached.items()})),
            Family("burnless_ledger_records_total", "Records read from the ledger.",
                   (Sample((), records),)),
        ]
        if key_calls:  # only where the gateway has virtual keys
            out += [
                Family("burnless_key_calls_total", "Gateway calls by virtual key.",
                       _samples(key_calls)),
                Family("burnless_key_cost_usd_total",
                       "Known cost of gateway calls in USD, by virtual key.", _samples(key_cost)),
            ]
        return out


def _key_label(name: str) -> str:
    from burnless.settings import KEY_NAME_RE

    # A key is named by `burnless keys create`; anything else came from a hand-edited ledger.
    return name if KEY_NAME_RE.fullmatch(name) else OTHER_MODEL


def _add(d: dict[Any, float], key: Any, value: float) -> None:
    d[key] = d.get(key, 0) + value


def _samples(d: dict[Labels, float]) -> tuple[Sample, ...]:
    return tuple(Sample(k, v) for k, v in sorted(d.items()))


# --------------------------------------------------------------------------- exposition


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _number(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(round(v, 10))


def exposition(families: Iterable[Family]) -> str:
    """The Prometheus text format (0.0.4) of the families."""
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.type}")
        for s in f.samples:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels)
            lines.append(f"{f.name}{{{labels}}} {_number(s.value)}" if labels
                         else f"{f.name} {_number(s.value)}")
    return "\n".join(lines) + "\n"


def stats(families: Iterable[Family], index: LedgerIndex) -> dict[str, Any]:
    """The same samples as JSON, with where they come from: the ledger's name inside the
    workspace, never its absolute path (a scrape must not learn the machine's layout)."""
    return {
        "ledger": {"path": f"{STATE_DIR}/{index.path.name}", "offset": index.offset},
        "metrics": {f.name: f.to_dict() for f in families},
    }


def families_for(state_dir: Path, known_models: Iterable[str | None] = ()) -> list[Family]:
    """The metrics of a workspace, once (``burnless metrics``); ``known_models``: the
    configured tiers' models (they keep their own label)."""
    view = MetricsView(known_models)
    with LedgerIndex.open(state_dir) as idx:
        view.apply_totals(idx.totals())
    return view.families()


# --------------------------------------------------------------------------- server


class Live:
    """The server's state: the index, caught up on each scrape (only the bytes appended since
    the last one are read), and the families recomputed from its ``totals`` (a few rows).
    ``known_models``: the configured tiers' models (they keep their own label)."""

    def __init__(self, state_dir: Path, known_models: Iterable[str | None] = ()) -> None:
        self.known_models = tuple(known_models)
        self.index = LedgerIndex.open(state_dir)  # a current index: a fast start
        self.view = MetricsView(self.known_models)
        self.view.apply_totals(self.index.totals())
        self._lock = threading.Lock()

    def families(self) -> list[Family]:
        with self._lock:
            self.index.refresh()
            view = MetricsView(self.known_models)
            view.apply_totals(self.index.totals())
            self.view = view
            return view.families()

    def close(self) -> None:
        self.index.close()
