"""Prometheus metrics computed from the ledger, and the small HTTP server that exposes them.

The figures are sums of the ledger index (``index``, its ``totals`` table), never counters
kept beside it: they survive restarts, and runs made while the server is up appear at the next
scrape (each scrape reads only the bytes appended since the last one). The text follows the
Prometheus exposition format 0.0.4; ``/stats`` serves the same samples as JSON.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
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

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")  # = Sums[1:5]
_ROLE_METRIC = {
    "planning": "burnless_tier_planning_tokens_total",
    "execution": "burnless_tier_execution_tokens_total",
    "compaction": "burnless_tier_compaction_tokens_total",
}
_T, _M, _R, _S, _RB = range(5)  # positions in a series key (a totals key without the key)

Labels = tuple[tuple[str, str], ...]


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
    """The index's figures summed over days, sessions and keys: small, cheap to recompute."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, ...], Sums] = {}

    def apply(self, cells: Cells) -> None:
        """Add rows keyed like the index's ``cells`` (the day first)."""
        for key, sums in cells.items():
            add(self.series, key[1:6], sums)

    def apply_totals(self, totals: dict[TotalKey, Sums]) -> None:
        """Add rows keyed like the index's ``totals`` (``LedgerIndex.totals()``)."""
        for key, sums in totals.items():
            add(self.series, key[:5], sums)

    def families(self) -> list[Family]:
        tokens: dict[str, dict[Labels, float]] = {name: {} for name in _ROLE_METRIC.values()}
        cost: dict[Labels, float] = {}
        unknown: dict[Labels, float] = {}
        calls: dict[Labels, float] = {}
        audit: dict[str, float] = {}
        refusals: dict[Labels, float] = {}
        cached: dict[str, float] = {}
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
            tm = (("tier", tier), ("model", k[_M]))
            role_metric = tokens.get(_ROLE_METRIC.get(k[_R], ""))
            if role_metric is not None:
                for i, typ in enumerate(TOKEN_TYPES, 1):
                    _add(role_metric, (*tm, ("type", typ)), s[i])
            if n > s[UNKNOWN]:  # a tier and model whose every call is of unknown cost has no cost
                _add(cost, tm, s[COST])
            _add(unknown, tm, s[UNKNOWN])
            _add(calls, (("tier", tier), ("status", k[_S])), n)
            _add(audit, tier, s[AUDIT_FAILURES])
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
        return out


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
    """The same samples as JSON, with where they come from."""
    return {
        "ledger": {"path": str(index.path), "offset": index.offset},
        "metrics": {f.name: f.to_dict() for f in families},
    }


def families_for(state_dir: Path) -> list[Family]:
    """The metrics of a workspace, once (``burnless metrics``)."""
    view = MetricsView()
    with LedgerIndex.open(state_dir) as idx:
        view.apply_totals(idx.totals())
    return view.families()


# --------------------------------------------------------------------------- server


class Live:
    """The server's state: the index, caught up on each scrape (only the bytes appended since
    the last one are read), and the families recomputed from its ``totals`` (a few rows)."""

    def __init__(self, state_dir: Path) -> None:
        self.index = LedgerIndex.open(state_dir)  # a current index: a fast start
        self.view = MetricsView()
        self.view.apply_totals(self.index.totals())
        self._lock = threading.Lock()

    def families(self) -> list[Family]:
        with self._lock:
            self.index.refresh()
            view = MetricsView()
            view.apply_totals(self.index.totals())
            self.view = view
            return view.families()

    def close(self) -> None:
        self.index.close()


MAX_CLIENTS = 128  # connections handled at once; more wait in the listen backlog
CLIENT_TIMEOUT_S = 5.0  # a socket read or write stalled longer frees its thread
_ALLOW = "GET, HEAD"


def make_server(state_dir: Path, host: str, port: int) -> Any:
    """A ThreadingHTTPServer serving /metrics, /stats and /healthz (not started)."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import orjson

    class Handler(BaseHTTPRequestHandler):
        server_version = "burnless"
        timeout = CLIENT_TIMEOUT_S  # a client that connects and sends nothing is dropped

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            routes: dict[str, Callable[[], tuple[bytes, str]]] = {
                "/metrics": lambda: (exposition(live.families()).encode(), CONTENT_TYPE),
                "/stats": lambda: (orjson.dumps(stats(live.families(), live.index),
                                                option=orjson.OPT_INDENT_2),
                                   "application/json"),
                "/healthz": lambda: (b"ok\n", "text/plain; charset=utf-8"),
            }
            route = routes.get(path)
            if route is None:
                self._send(404, b"not found: try /metrics, /stats or /healthz\n",
                           "text/plain; charset=utf-8")
                return
            try:
                body, ctype = route()
            except Exception as exc:  # a scrape must get an answer, not a dropped connection
                self._send(500, f"error: {exc}\n".encode(), "text/plain; charset=utf-8")
                return
            self._send(200, body, ctype)

        do_HEAD = do_GET  # _send leaves the body out

        def _not_allowed(self) -> None:
            self._send(405, f"method not allowed: use {_ALLOW}\n".encode(),
                       "text/plain; charset=utf-8", {"Allow": _ALLOW})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = (
            _not_allowed)

        def _send(self, code: int, body: bytes, ctype: str,
                  extra: dict[str, str] | None = None) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except OSError:  # the client went away (or stalled past ``timeout``) mid-answer
                self.close_connection = True

        def send_error(self, code: int, message: str | None = None,
                       explain: str | None = None) -> None:
            """The stdlib's own refusals (a malformed request line, an unknown method, headers
            too long): with a status line even when the request line could not be read."""
            if not str(self.request_version).startswith("HTTP/1."):
                self.request_version = "HTTP/1.0"
            try:
                super().send_error(code, message, explain)
            except OSError:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: a scrape every few seconds is not news

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # listen backlog: many scrapers may connect at once
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        _slots = threading.BoundedSemaphore(MAX_CLIENTS)
        # The requests holding a slot. Ctrl-C can land in the main thread while it waits for
        # a request's thread to start, after that thread already answered and freed its slot:
        # freeing it a second time raised ValueError, which swallowed the Ctrl-C.
        _held: set[int] = set()
        _held_lock = threading.Lock()

        def process_request(self, request: Any, client_address: Any) -> None:
            self._slots.acquire()  # threads never pile up: the next client waits its turn
            with self._held_lock:
                self._held.add(id(request))
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._free(request)
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self._free(request)

        def _free(self, request: Any) -> None:
            with self._held_lock:
                if id(request) not in self._held:
                    return
                self._held.discard(id(request))
            self._slots.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            if isinstance(sys.exc_info()[1], OSError):
                return  # a client that reset or stalled: no traceback on stderr
            super().handle_error(request, client_address)

    server = Server((host, port), Handler)  # bind first: a busy port fails before any work
    try:
        live = Live(state_dir)
    except BaseException:
        server.server_close()
        raise
    return server


def serve(state_dir: Path, host: str, port: int) -> None:
    """Serve until interrupted. A port that cannot be bound is a usage error."""
    from burnless.errors import UsageError

    if not 0 <= port <= 65535:
        raise UsageError(f"port {port}: expected 0..65535")
    try:
        server = make_server(state_dir, host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                         "choose another with --port or metrics.port") from None
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    sys.stderr.write(f"burnless: serving http://{shown}:{bound_port}/metrics "
                     "(also /stats, /healthz); Ctrl-C stops\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
