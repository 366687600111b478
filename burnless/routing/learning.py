"""Examples learned from the ledger (``routing.learn: true``).

The ledger says how every execution call ended; the call's capsule holds its task, masked. A
call that ended ``ok`` with its audit ``passed`` makes its task an example for its tier; one
that ended ``escalate``, or ``failed``/``partial`` by the worker's own word (exit 0), or ``ok``
with a failed audit, makes it a counter-example (the tier was not enough). Nothing else teaches
anything: an audit that checked nothing (``skipped``), a timeout or a crash of the worker (that
is the breaker's business, not the task's difficulty), a refusal, an interruption, an answer
from the response cache.

A sensitive task never becomes an example: not when its capsule is marked sensitive (the run
was, or its session held sensitive work), nor when today's policy finds it sensitive. The text
learned is the capsule's, which is masked before it is written; nothing is read from run logs.

The learned examples are kept in ``.burnless/cache/learned.json`` with the ledger offset read
so far, so each route reads only what the ledger gained since. The file can be deleted at any
time: it is rebuilt from the ledger and the capsules. Growth is bounded: ``routing.learn_max``
examples per tier and as many counter-examples, the newest kept, one per distinct text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting.ledger import ledger_path
from burnless.errors import BurnlessError
from burnless.routing.examples import Example, Kind
from burnless.settings import Config
from burnless.storage import jsonl
from burnless.storage.atomic import write_atomic
from burnless.storage.locks import LockTimeout, file_lock

STORE_NAME = "learned.json"
PENDING_S = 600.0  # how long a record waits for its capsule (written just after the record)
_MAX_TEXT = 1000


@dataclass(frozen=True)
class Learned:
    """An example learned from an audited outcome in the ledger."""
    tier: str
    kind: Kind
    text: str
    run_id: str
    ts: str

    def to_dict(self) -> dict[str, str]:
        return {"tier": self.tier, "kind": self.kind, "text": self.text, "run_id": self.run_id,
                "ts": self.ts}


def outcome(record: dict[str, Any]) -> Kind | None:
    """What a ledger record teaches: an example, a counter-example, or nothing."""
    if record.get("role") != "execution" or record.get("cached"):
        return None
    status, audit, code = record.get("status"), record.get("audit"), record.get("exit")
    if status == "ok" and audit == "passed":
        return "example"
    if status == "ok" and audit == "failed":
        return "counter"
    if code != 0:  # a timeout, a crash, a refusal: says nothing about the task
        return None
    if status in ("escalate", "failed", "partial"):
        return "counter"
    return None


def store_path(cfg: Config) -> Path:
    return cfg.state_dir / "cache" / STORE_NAME


@dataclass
class _State:
    """How far learning has read the ledger, and what it learned."""
    ino: int = 0
    offset: int = 0
    learned: list[Learned] | None = None
    pending: list[dict[str, Any]] | None = None  # records whose capsule was not written yet

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "v": 1, "ledger": {"ino": self.ino, "offset": self.offset},
            "learned": [x.to_dict() for x in self.learned or ()],
            "pending": self.pending or [],
        })


def _load(path: Path) -> _State:
    from burnless.storage.atomic import open_regular

    try:
        with open_regular(path) as f:  # a FIFO planted here must not hang every route
            data = orjson.loads(f.read())
        ledger = data["ledger"]
        learned = [Learned(str(x["tier"]), "counter" if x["kind"] == "counter" else "example",
                           str(x["text"]), str(x["run_id"]), str(x["ts"]))
                   for x in data["learned"]]
        pending = [p for p in data.get("pending", []) if isinstance(p, dict)]
        return _State(int(ledger["ino"]), int(ledger["offset"]), learned, pending)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return _State()  # absent or damaged: learned again from the ledger


def learned_examples(cfg: Config) -> list[Example]:
    """The learned examples (oldest first), after reading what the ledger gained."""
    store = store_path(cfg)
    state = _load(store)
    try:
        st = os.stat(ledger_path(cfg.state_dir))
        ino, size = st.st_ino, st.st_size
    except FileNotFoundError:
        ino, size = 0, 0
    if (state.ino, state.offset) != (ino, size) or state.pending:
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(store.with_name(STORE_NAME + ".lock"), 10.0):
                state = _refresh(cfg, _load(store), ino, size)
                write_atomic(store, state.to_bytes())
        except (OSError, LockTimeout):
            state = _refresh(cfg, state, ino, size)  # read-only or busy: learn, keep nothing
    return [Example(x.tier, x.text, x.kind, f"learned {x.run_id}")
            for x in state.learned or () if x.tier in cfg.tiers]


def _refresh(cfg: Config, state: _State, ino: int, size: int) -> _State:
    if state.ino != ino or state.offset > size:  # a new or truncated ledger: from the start
        state = _State(ino, 0, [], [])
    reader = jsonl.Records(ledger_path(cfg.state_dir), start=state.offset, end=size)
    fresh = [dict(rec, _kind=kind) for rec in reader
             if (kind := outcome(rec)) is not None and rec.get("run_id")]
    todo = [*(state.pending or []), *fresh]
    found, pending = _from_capsules(cfg, todo)
    learned = bound([*(state.learned or []), *found], cfg.routing.learn_max)
    return _State(ino, reader.offset, learned, pending)


def _from_capsules(
    cfg: Config, records: Sequence[dict[str, Any]]
) -> tuple[list[Learned], list[dict[str, Any]]]:
    """The learned examples of ``records`` (in order), and the records still waiting for
    their capsule."""
    from burnless.safety.policy import Policy
    from burnless.safety.secrets import find_secrets
    from burnless.session.store import Session

    policy = Policy(cfg)
    by_session: dict[str, dict[str, Any]] = {}
    out: list[Learned] = []
    pending: list[dict[str, Any]] = []
    now = time.time()
    for rec in records:
        sid = str(rec.get("session") or "")
        if sid not in by_session:
            try:
                by_session[sid] = {c.run_id: c for c in Session(cfg.state_dir, sid).capsules()
                                   if c.role == "exec"}
            except BurnlessError:
                by_session[sid] = {}
        capsule = by_session[sid].get(rec["run_id"])
        if capsule is None:
            if now - _epoch(str(rec.get("ts", ""))) < PENDING_S:
                pending.append(rec)
            continue
        text = " ".join(capsule.task.split())[:_MAX_TEXT]
        if not text or capsule.sensitive or policy.sensitivity(text, ()):
            continue  # sensitive work never becomes an example
        if find_secrets(text, policy.known_secrets()):
            continue  # masked text only: a secret the masking did not know then stays out
        out.append(Learned(str(rec.get("tier", "")), rec["_kind"], text, str(rec["run_id"]),
                           str(rec.get("ts", ""))))
    return out, pending


def _epoch(ts: str) -> float:
    import calendar

    try:
        return float(calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0.0


def bound(learned: Iterable[Learned], limit: int) -> list[Learned]:
    """The newest ``limit`` per tier and kind, one per distinct text (the newest), oldest first."""
    kept: list[Learned] = []
    seen: set[tuple[str, str, str]] = set()
    count: dict[tuple[str, str], int] = {}
    for x in reversed(list(learned)):
        key = (x.tier, x.kind, x.text.casefold())
        if key in seen or count.get((x.tier, x.kind), 0) >= limit:
            continue
        seen.add(key)
        count[(x.tier, x.kind)] = count.get((x.tier, x.kind), 0) + 1
        kept.append(x)
    kept.reverse()
    return kept


__all__ = ["Learned", "bound", "learned_examples", "outcome", "store_path"]
