"""Prometheus metrics computed from the ledger (served by ``burnless serve``: burnless.gateway).

The figures are projections of the ledger's cells (``ledger_index``), never counters kept
beside it: they survive restarts, and runs made while the server is up appear at the next
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
    AUDIT_FAILED,
    CACHED,
    COST,
    COST_KNOWN,
    KEY,
    MODEL,
    RECORDS,
    REFUSED_BY,
    ROLE,
    STATUS,
    TIER,
    Cells,
    LedgerIndex,
    Sums,
    add,
    billed,
)
from burnless.config import STATE_DIR

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")  # = Sums[1:5]
_ROLE_METRIC = {
    "planning": "burnless_tier_planning_tokens_total",
    "execution": "burnless_tier_execution_tokens_total",
    "compaction": "burnless_tier_compaction_tokens_total",
}
_PROJECTION = (TIER, MODEL, ROLE, STATUS, AUDIT_FAILED, CACHED, REFUSED_BY, COST_KNOWN, KEY)
_T, _M, _R, _S, _A, _C, _RB, _K, _KEY = range(9)  # positions in a projected key

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
    labels: Labels
    value: float


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    samples: tuple[Sample, ...]
    type: str = "counter"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "help": self.help,
                "samples": [{"labels": dict(s.labels), "value": s.value} for s in self.samples]}


class MetricsView:
    """The cells summed over days and sessions: small, and cheap to keep up to date.

    ``known_models`` (the configured tiers' models) always keep their own ``model`` label.
    """

    def __init__(self, known_models: Iterable[str | None] = ()) -> None:
        self.series: dict[tuple[Any, ...], Sums] = {}
        self.known_models = frozenset(m for m in known_models if m)

    def apply(self, cells: Cells) -> None:
        for key, sums in cells.items():
            add(self.series, tuple(key[i] for i in _PROJECTION), sums)

    def model_labels(self) -> dict[str, str]:
        """The ``model`` label of each model in the ledger (see MAX_OTHER_MODELS)."""
        from burnless.accounting import pricing
        from burnless.formats.output import valid_model_name

        records: dict[str, float] = {}
        for k, s in self.series.items():
            records[k[_M]] = records.get(k[_M], 0) + s[RECORDS]
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
            n, tier = s[RECORDS], k[_T]
            records += n
            key = (("key", _key_label(k[_KEY])),) if k[_KEY] else None
            if not billed(k[_S], k[_C]):
                if k[_S] == "refused":
                    _add(refusals, (("tier", tier), ("refused_by", k[_RB])), n)
                    budget += n if k[_RB] == "budget" else 0
                else:
                    _add(cached, tier, n)
                continue
            tm = (("tier", tier), ("model", model_label[k[_M]]))
            role_metric = tokens.get(_ROLE_METRIC.get(k[_R], ""))
            if role_metric is not None:
                for i, typ in enumerate(TOKEN_TYPES, 1):
                    _add(role_metric, (*tm, ("type", typ)), s[i])
            if k[_K]:  # a tier and model whose every call is of unknown cost has no cost
                _add(cost, tm, s[COST])
            _add(unknown, tm, 0 if k[_K] else n)
            _add(calls, (("tier", tier), ("status", k[_S])), n)
            _add(audit, tier, n if k[_A] else 0)
            if key is not None:
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
    from burnless.config import KEY_NAME_RE

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
    view.apply(LedgerIndex.open(state_dir).cells)
    return view.families()


# --------------------------------------------------------------------------- server


class Live:
    """The server's state: an in-memory index that catches up on each scrape."""

    def __init__(self, state_dir: Path) -> None:
        self.index = LedgerIndex.open(state_dir)  # from the checkpoint: a fast start
        self.view = MetricsView()
        self.view.apply(self.index.cells)
        self._lock = threading.Lock()

    def families(self) -> list[Family]:
        with self._lock:
            done = self.index.refresh()
            if done.rebuilt:
                self.view = MetricsView()
            self.view.apply(done.tables.cells)
            return self.view.families()
