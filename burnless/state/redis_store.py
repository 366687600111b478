"""The Redis (or Valkey) backend of shared state: ``state.backend: redis://host:port/db``.

Keys live under ``burnless:{<namespace>}:`` (one hash tag per namespace, so a cluster keeps a
team's keys in one slot and its scripts may touch them together):

    open, open:s:<session>, open:t:<tree>     open reservations (scripts.py)
    open:k:<key>                              open reservations of a virtual key
    spent:d:<day>, spent:s:<session>, spent:t:<tree>, calls:s:<session>,
    spent:k:d:<day>:<key>, spent:k:m:<month>:<key>
                                              settled nano-USD and billed calls
    breaker                                   each tier's streak and last failure
    pin:<session>, pins                       gateway pins, and their LRU order
    cache:<key>                               response cache entries (with cache.ttl)
    ledger                                    a stream: one entry per ledger record,
                                              fields r (the record) and o (its origin)
    applied:<op>                              outbox entries already applied

Every ledger record this process appends is copied (``copy``); a copy, or a settle, that
cannot reach the server waits in ``.burnless/outbox.jsonl`` and is sent, once, by the next
operation that reaches it. While the server is unreachable, copies go straight to the
outbox for a few seconds instead of each waiting for a timeout; a budget reservation always
asks (it cannot be granted by guessing).

A reservation is renewed by a thread of the process that holds it, every third of its TTL: a
long stream keeps its reservation, a process that died stops renewing and its reservation
expires ``budget.reservation_ttl`` later.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from burnless.errors import UsageError
from burnless.state import Denial, Grant, Scope, Unreachable
from burnless.state.scripts import SCRIPTS
from burnless.storage import jsonl
from burnless.storage.atomic import write_atomic

if TYPE_CHECKING:
    from burnless.accounting.budget import Reservation
    from burnless.settings import Config

log = logging.getLogger("burnless")

OUTBOX = "outbox.jsonl"
NANO = 1e9  # money on the server is integer nano-USD
DOWN_BACKOFF = 5.0  # seconds copies skip the server after it failed (budgets still ask)
KEEP_DAY_MS = 3 * 86400_000  # a day's settled total outlives its day by two
KEEP_MONTH_MS = 62 * 86400_000  # a key's month total outlives its month
KEEP_SESSION_MS = 90 * 86400_000  # a session's (and a tree's) totals: 90 days after last use
KEEP_APPLIED_MS = 7 * 86400_000
BATCH = 5000  # stream entries read per round trip


def nano(usd: float | None) -> int:
    return round(usd * NANO) if usd is not None and math.isfinite(usd) and usd > 0 else 0


def origin_of(workspace: Path) -> str:
    """Which machine and workspace a copy comes from: the host name and the workspace's folder
    name, with a short hash of its path (two checkouts named alike stay apart; the path itself
    is not sent)."""
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}/{workspace.name}-{digest}"


class RedisState:
    """``burnless.state.SharedState`` on a Redis server."""

    def __init__(self, cfg: Config) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        st = cfg.state
        self.shown = st.shown
        self.namespace = st.namespace
        self.prefix = f"burnless:{{{st.namespace}}}:"
        self.retention_ms = int(st.retention_days * 86400_000)
        self.state_dir = cfg.state_dir
        self.outbox = cfg.state_dir / OUTBOX
        self.origin = origin_of(cfg.workspace)
        self._raw = st.backend
        try:
            # No retries inside the client: an unreachable server is reported at once, and
            # each caller decides (a budget refuses, a copy waits in the outbox).
            self._client: Any = redis.Redis.from_url(
                st.backend, socket_timeout=st.timeout, socket_connect_timeout=st.timeout,
                retry=Retry(NoBackoff(), 0), health_check_interval=0, protocol=2,
                client_name="burnless")
        except ValueError as exc:
            raise UsageError(f"state.backend {self.shown}: {self._scrub(str(exc))}") from None
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._scripts: dict[str, Any] = {name: self._client.register_script(src)
                                         for name, src in SCRIPTS.items()}
        self._down_until = 0.0
        self._warned = False
        self._local = threading.local()
        self._held: dict[str, tuple[list[str], int]] = {}  # member -> (its sets, ttl ms)
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._closed = threading.Event()
        self._wake = threading.Event()  # something to renew
        self._flushing = threading.Lock()

    def ping(self) -> None:
        self._do("ping")

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        with self._held_lock:
            self._held.clear()
        self._client.close()

    # ------------------------------------------------------------------ the server

    def _scrub(self, text: str) -> str:
        return text.replace(self._raw, self.shown) if self._raw else text

    def _fail(self, exc: BaseException) -> Unreachable:
        self._down_until = time.monotonic() + DOWN_BACKOFF
        return Unreachable(f"the shared state server {self.shown} is unreachable: "
                           f"{self._scrub(str(exc)) or type(exc).__name__}")

    def _run(self, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        try:
            out = self._scripts[name](keys=list(keys), args=list(args))
        except self._errors as exc:
            raise self._fail(exc) from None
        self._reached()
        return out

    def _do(self, method: str, *args: Any, **kw: Any) -> Any:
        try:
            out = getattr(self._client, method)(*args, **kw)
        except self._errors as exc:
            raise self._fail(exc) from None
        self._reached()
        return out

    def _down(self) -> bool:
        """The server failed a moment ago: what can wait does not ask it again yet."""
        return time.monotonic() < self._down_until

    def _up(self) -> None:
        """For what has a local fallback (breaker, pins, cache): no waiting for a timeout on
        every request while the server is known to be down."""
        if self._down():
            raise Unreachable(f"the shared state server {self.shown} was unreachable a "
                              "moment ago")

    def _reached(self) -> None:
        """The server answered: what waits in the outbox is sent now."""
        self._down_until = 0.0
        if not self._flushing.acquire(blocking=False):
            return  # this thread is flushing (or another one is)
        try:
            self._flush()
        finally:
            self._flushing.release()

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ------------------------------------------------------------------ budgets

    def session_key(self, session: str, *, team: bool) -> str:
        return session if team else f"{self.origin}/{session}"

    def _sets(self, session: str, tree: str, key: str = "") -> list[str]:
        keys = [self._key("open"), self._key("open", "s", session)]
        if tree:
            keys.append(self._key("open", "t", tree))
        if key:
            keys.append(self._key("open", "k", key))
        return keys

    def _key_totals(self, key: str, day: str) -> list[str]:
        """A virtual key's open reservations and its day's and month's settled totals."""
        return [self._key("open", "k", key), self._key("spent", "k", "d", day, key),
                self._key("spent", "k", "m", day[:7], key)]

    def reserve(self, scopes: Sequence[Scope], *, session: str, tree: str, fixed: float,
                grow: bool, max_calls: int | None, ttl: float, day: str, key: str = ""
                ) -> Grant | Denial:
        ttl_ms = max(1, int(ttl * 1000))
        keys = [self._key("open"), self._key("open", "s", session),
                self._key("open", "t", tree), self._key("spent", "d", day),
                self._key("spent", "s", session), self._key("calls", "s", session),
                self._key("spent", "t", tree)]
        if key:
            keys += self._key_totals(key, day)
        args: list[object] = [ttl_ms, f"{os.getpid()}-{uuid.uuid4().hex[:12]}", nano(fixed),
                              int(grow), -1 if max_calls is None else max_calls,
                              int(bool(tree)), len(scopes)]
        for s in scopes:
            args += [s.kind, -1 if s.limit is None else round(s.limit * NANO), nano(s.spent)]
        out = self._run("reserve", keys, args)
        if int(out[0]) != 1:
            _, scope, spent, held, amount, calls, calls_open = (int(x) for x in out)
            return Denial(scope - 1, spent / NANO, held / NANO, amount / NANO, calls, calls_open)
        member = out[1].decode() if isinstance(out[1], bytes) else str(out[1])
        self._hold(member, self._sets(session, tree, key), ttl_ms)
        return Grant(int(out[2]) / NANO, member)

    @contextmanager
    def settling(self, res: Reservation) -> Iterator[None]:
        """The ledger appends the call's record inside: its copy settles the reservation on
        the server in the same script (``copy``)."""
        self._local.pending = res
        try:
            yield
        except BaseException:
            # The record was not written: the reservation stays until its TTL (the call's
            # journal charges it when a later run records it).
            self._local.pending = None
            self._unhold(res.handle)
            raise
        pending = self._local.pending
        self._local.pending = None
        self._unhold(res.handle)
        if pending is not None:  # no record went through the ledger's copy: just release it
            self.release(res)

    def release(self, res: Reservation) -> None:
        self._unhold(res.handle)
        try:
            self._run("release", self._sets(res.session, res.tree, res.key), [res.handle])
        except Unreachable:
            pass  # it expires with its TTL

    def key_spend(self, key: str, day: str) -> tuple[float, float]:
        _, d, m = self._key_totals(key, day)
        day_n, month_n = (int(x or 0) for x in self._do("mget", [d, m]))
        return day_n / NANO, month_n / NANO

    def forget_tree(self, tree: str) -> None:
        try:
            self._do("delete", self._key("spent", "t", tree), self._key("open", "t", tree))
        except Unreachable:
            pass  # the totals expire on their own

    def _hold(self, member: str, keys: list[str], ttl_ms: int) -> None:
        with self._held_lock:
            self._held[member] = (keys, ttl_ms)
            self._wake.set()
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                                 name="burnless-state-renew")
                self._renewer.start()

    def _unhold(self, member: str) -> None:
        with self._held_lock:
            self._held.pop(member, None)

    def _renew_loop(self) -> None:
        while not self._closed.is_set():
            with self._held_lock:
                held = list(self._held.items())
                if not held:
                    self._wake.clear()
            if not held:
                self._wake.wait()
                continue
            # Each reservation is pushed on every third of the shortest TTL held.
            if self._closed.wait(max(0.05, min(ttl for _, (_, ttl) in held) / 3000)):
                return
            for member, (keys, ttl) in held:
                with self._held_lock:
                    if member not in self._held:
                        continue
                try:
                    kept = self._run("renew", keys, [member, ttl])
                except Unreachable:
                    continue
                if not kept:
                    self._unhold(member)

    # ------------------------------------------------------------------ copies of records

    def copy(self, records: list[dict[str, Any]]) -> None:
        """Send ledger records to the server (the ledger calls this after each append); the
        first one settles the reservation being settled in this thread, if any. Never
        raises: what cannot be sent waits in the outbox."""
        pending: Reservation | None = getattr(self._local, "pending", None)
        self._local.pending = None
        ops = []
        for i, r in enumerate(records):
            res = pending if i == 0 else None
            ops.append({"id": uuid.uuid4().hex, "record": r, "handle": res.handle if res else "",
                        "tree": res.tree if res else "", "session": res.session if res else ""})
        sent = 0
        if not self._down():
            try:
                for op in ops:
                    self._apply(op, dedupe=False)
                    sent += 1
            except Unreachable as exc:
                self._warn(exc)
        if sent < len(ops):
            try:
                jsonl.append(self.outbox, ops[sent:])
            except OSError as exc:
                log.warning("could not keep %d ledger copies for %s in %s: %s",
                            len(ops) - sent, self.shown, self.outbox, exc)

    def _warn(self, exc: Unreachable) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s; ledger copies wait in %s until it is back", exc, self.outbox)

    def _apply(self, op: dict[str, Any], *, dedupe: bool) -> bool:
        from burnless.accounting.index import billed

        r = op["record"]
        tree, handle = str(op["tree"]), str(op["handle"])
        # The reservation's session key; else a gateway's record (it names its client) counts
        # in the team's session, a run's in its workspace's.
        session = str(op.get("session") or self.session_key(str(r.get("session") or ""),
                                                            team=bool(r.get("client"))))
        day = str(r.get("ts") or "")[:10]
        cost = r.get("cost_usd")
        cost_n = nano(float(cost)) if isinstance(cost, (int, float)) else 0
        keys = [self._key("ledger"), self._key("open"), self._key("open", "s", session),
                self._key("open", "t", tree), self._key("spent", "d", day),
                self._key("spent", "s", session), self._key("calls", "s", session),
                self._key("spent", "t", tree), self._key("applied", str(op["id"]))]
        vkey = r.get("key")
        if isinstance(vkey, str) and vkey:  # a virtual key's request: its totals too
            keys += self._key_totals(vkey, day)
        args = [orjson.dumps(r), self.origin, cost_n,
                int(billed(r.get("status"), r.get("cached"))), handle, int(bool(tree)),
                self.retention_ms, KEEP_DAY_MS, KEEP_SESSION_MS, int(dedupe), KEEP_APPLIED_MS,
                int(bool(r.get("session"))), KEEP_MONTH_MS]
        return bool(self._run("record", keys, args))

    def _flush(self) -> None:
        """Send what waits in the outbox, each entry once, oldest first."""
        try:
            if self.outbox.stat().st_size == 0:
                return
        except OSError:
            return
        with jsonl.locked(self.outbox):
            ops = jsonl.read(self.outbox)
            rest: list[dict[str, Any]] = []
            for i, op in enumerate(ops):
                try:
                    self._apply(op, dedupe=True)
                except Unreachable:
                    rest = ops[i:]
                    break
                except (KeyError, TypeError, AttributeError, ValueError):
                    log.warning("%s: dropping a damaged entry", self.outbox)
            write_atomic(self.outbox, b"".join(jsonl.dumps(op) for op in rest))
        if not rest and ops:
            log.info("sent %d ledger copies from %s to %s", len(ops), self.outbox, self.shown)

    def records(self, since_day: str | None = None, after: str | None = None
                ) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
        """The stream's records in batches, each with the id of its last entry: those after
        the entry ``after``, else those sent from ``since_day`` (UTC) on, else all."""
        if after:
            start = "(" + after
        elif since_day:
            start = str(calendar.timegm(time.strptime(since_day, "%Y-%m-%d")) * 1000)
        else:
            start = "-"
        key = self._key("ledger")
        self.ping()  # this workspace's outbox reaches the stream before it is read
        while True:
            entries = self._do("xrange", key, start, "+", count=BATCH)
            if not entries:
                return
            batch: list[tuple[str, dict[str, Any]]] = []
            for _id, fields in entries:
                try:
                    rec = orjson.loads(fields[b"r"])
                    origin = fields.get(b"o", b"").decode("utf-8", "replace")
                except (KeyError, orjson.JSONDecodeError, AttributeError):
                    continue
                if isinstance(rec, dict):
                    batch.append((origin, rec))
            last = entries[-1][0]
            last_id = last.decode() if isinstance(last, bytes) else str(last)
            yield last_id, batch
            if len(entries) < BATCH:
                return
            start = "(" + last_id

    # ------------------------------------------------------------------ breaker

    def breaker_state(self, tier: str) -> tuple[dict[str, float], float]:
        self._up()
        raw, sec, usec = self._run("breaker_state", [self._key("breaker")], [tier])
        now = int(sec) + int(usec) / 1e6
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        streak, _, last = text.partition("|")
        try:
            return {"streak": float(streak), "last_failure": float(last)}, now
        except ValueError:
            return {}, now

    def breaker_record(self, tier: str, failed: bool) -> None:
        self._up()
        self._run("breaker_record", [self._key("breaker")], [tier, int(failed)])

    # ------------------------------------------------------------------ pins, cache

    def pin_get(self, key: str) -> dict[str, Any] | None:
        self._up()
        return _mapping(self._do("get", self._key("pin", key)))

    def pin_put(self, key: str, data: dict[str, Any], ttl: float, max_pins: int) -> None:
        self._up()
        if ttl <= 0:
            return
        self._run("pin_put", [self._key("pin", key), self._key("pins")],
                  [orjson.dumps(data), max(1, int(ttl * 1000)), max_pins])

    def cache_get(self, key: str) -> dict[str, Any] | None:
        self._up()
        return _mapping(self._do("get", self._key("cache", key)))

    def cache_put(self, key: str, data: dict[str, Any], ttl: float) -> None:
        self._up()
        if ttl <= 0:
            return
        self._do("set", self._key("cache", key), orjson.dumps(data),
                 px=max(1, int(ttl * 1000)))


def _mapping(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, (bytes, str)):
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
