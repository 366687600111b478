"""The ledger: one JSON line per call, cache hit or refusal, and the only code that writes it.

``.burnless/ledger.jsonl`` is the single source of truth for spend: usage reports, budgets and
metrics are all computed from it. Four functions append to it — ``record_call`` for a call
that was made (or answered from the response cache), ``record_refusal`` for one that was not,
``record_orphan`` for a call a dead run left in flight (``inflight``) and ``record_copies``
for the calls of an evaluation job (``burnless eval``) — all through
``jsonl.append`` (one whole line under the file's lock).

While the user's config sets a budget limit (``Config.user_dir``), each record is also
appended, with the ``workspace`` it came from, to ``$BURNLESS_HOME/ledger.jsonl``: the user's
spend across projects, which the user's ``max_cost_per_day`` is checked against. The
workspace's ledger is written first: it stays the truth of its own project.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, each record appended by the first three is also an
OpenTelemetry span (``telemetry``), emitted after the append and outside any budget lock;
without it, nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from burnless.accounting.inflight import Journal, Orphan, orphans
from burnless.accounting.tokens import Tokens
from burnless.runs import new_run_id, now_iso
from burnless.storage import jsonl
from burnless.vocab import CostSource, RecordStatus, RefusedBy, Role, Verdict

if TYPE_CHECKING:
    from burnless.settings import Tier

LEDGER_NAME = "ledger.jsonl"
_OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Where the records appended to a state directory's ledger are also sent: a shared state
# backend (``burnless.state``) registers its ``copy`` here. Empty with the local backend.
# Copies never raise: what cannot reach the server waits in its outbox.
COPIES: dict[Path, Callable[[list[dict[str, Any]]], None]] = {}


@dataclass(frozen=True)
class Route:
    """Why a call went to its tier: the tier and the router's reasons."""
    tier: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class LedgerRecord:
    """One call (or refusal) as the ledger stores it; ``RunResult.calls`` holds these too."""

    run_id: str
    session: str
    role: Role
    tier: str
    model: str | None
    status: RecordStatus
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    cost_source: CostSource = "unknown"
    audit: Verdict = "skipped"
    exit: int | None = None
    seq: int | None = None
    duration_s: float = 0.0
    route: Route | None = None
    redactions: int = 0
    cached: bool = False
    task_id: str = ""  # groups the calls of one `run` invocation
    reason: str = ""  # refusals, timeouts, breaker decisions
    refused_by: RefusedBy | None = None  # for status "refused"
    parent_run_id: str | None = None  # the call whose worker made this one (delegation)
    root_run_id: str | None = None  # the top-level call of that delegation tree
    depth: int = 0  # how deep in nested burnless calls (0: top level)
    client: str = ""  # the gateway's caller (from its user agent); "" for run's own calls
    key: str = ""  # the name of the gateway virtual key the request carried ("" without one)
    ts: str = field(default_factory=now_iso)
    v: int = 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": self.v, "ts": self.ts, "run_id": self.run_id, "session": self.session,
            "seq": self.seq, "role": self.role, "tier": self.tier, "model": self.model,
            "status": self.status, "audit": self.audit, "exit": self.exit,
            "tokens": self.tokens.to_dict(),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
            "cost_source": self.cost_source, "duration_s": round(self.duration_s, 3),
            "route": self.route.to_dict() if self.route else None,
            "redactions": self.redactions, "cached": self.cached, "task_id": self.task_id,
        }
        if self.reason:
            d["reason"] = self.reason
        if self.refused_by:
            d["refused_by"] = self.refused_by
        if self.parent_run_id:
            d.update(parent_run_id=self.parent_run_id, root_run_id=self.root_run_id,
                     depth=self.depth)
        if self.client:
            d["client"] = self.client
        if self.key:
            d["key"] = self.key
        return d

    def call_dict(self) -> dict[str, Any]:
        """The call as ``RunResult.to_dict()`` (``burnless run --json``) lists it."""
        return {
            "role": self.role, "tier": self.tier, "model": self.model, "run_id": self.run_id,
            "status": self.status, "audit": self.audit, "usage": self.tokens.to_dict(),
            "cost_usd": self.cost_usd, "cost_source": self.cost_source,
            "duration_s": round(self.duration_s, 3), "seq": self.seq, "reason": self.reason,
        }


def ledger_path(state_dir: Path) -> Path:
    return state_dir / LEDGER_NAME


def record_call(
    state_dir: Path,
    record: LedgerRecord,
    settling: AbstractContextManager[object] | None = None,
    *,
    journal: Journal | None = None,
    capsule: dict[str, Any] | None = None,
    user_dir: Path | None = None,
    tier_settings: Tier | None = None,
) -> None:
    """Append the record of a call that was made (and its copy to ``user_dir``'s ledger).
    ``settling`` (``budget.Guard.settling``) holds the budget locks and releases the call's
    reservation around the writes, so no other run ever sees the call's cost twice or not at
    all. With the call's ``journal``, the record (and the turn's ``capsule``) are kept in it
    first, with the offset the record is appended at (under the ledger's lock, so it is
    exact), so a crash from here on loses neither and a later run can tell whether the record
    landed; the caller closes the journal once the capsule is written too.
    ``tier_settings``: the tier's configuration, for the call's span (its provider and kind)."""
    data = record.to_dict()
    path = ledger_path(state_dir)
    staged = False
    with settling or nullcontext():
        try:
            check_writable(state_dir)
            if user_dir is not None:
                check_writable(user_dir)
            with jsonl.locked(path):
                jsonl.repair_torn_tail(path)
                if journal is not None:
                    journal.stage(data, capsule, _size(path))
                    staged = True
                jsonl.append_unlocked(path, [data])
            _to_user(state_dir, user_dir, [data])
            _copy(state_dir, [data])  # with a shared backend: settles the reservation there
        except OSError:
            if journal is not None and not staged:  # the ledger cannot even be opened:
                journal.stage(data, capsule, None)  # kept anyway, with no offset
            raise
    _span(record, tier_settings)


def record_calls(
    state_dir: Path,
    records: Sequence[LedgerRecord],
    settling: AbstractContextManager[object] | None = None,
    *,
    user_dir: Path | None = None,
    tier_settings: Sequence[Tier | None] = (),
) -> None:
    """Append the records of several calls that were made in one write: one lock, one fsync
    (the gateway's group commit, where an fsync per request would serialise every request
    behind the disk), and their copies to ``user_dir``'s ledger. ``settling``
    (``budget.Guard.settling_all``) as for ``record_call``; ``tier_settings``: each record's
    tier configuration, for its span."""
    if not records:
        return
    lines = [r.to_dict() for r in records]
    with settling or nullcontext():
        check_writable(state_dir)
        if user_dir is not None:
            check_writable(user_dir)
        jsonl.append(ledger_path(state_dir), lines)
        _copy(state_dir, lines)
        _to_user(state_dir, user_dir, lines)
    for i, record in enumerate(records):
        _span(record, tier_settings[i] if i < len(tier_settings) else None)


def record_orphans(
    state_dir: Path, user_dir: Path | None = None
) -> list[tuple[LedgerRecord, str]]:
    """Record every call that a dead run left in flight (``record_orphan``; copied to
    ``user_dir``'s ledger too), with the delegation tree each appended record counts in. A
    journal that still holds a capsule is kept, marked recorded, for its session
    (``recovery``). The caller holds the budget lock (``budget.record_orphans``), so no call
    is recorded twice and budgets count each one."""
    done: list[tuple[LedgerRecord, str]] = []
    for orphan in orphans(state_dir):
        if orphan.data.get("recorded"):
            orphan.keep(orphan.data)
            continue
        try:
            rec = record_orphan(state_dir, orphan, user_dir)
        except OSError:
            orphan.keep(orphan.data)  # a later run tries again
            raise
        if rec is not None:
            done.append((rec, orphan.tree))
        if orphan.capsule is not None:
            orphan.keep({**orphan.data, "recorded": True})
        else:
            orphan.release()
    return done


def record_orphan(
    state_dir: Path, orphan: Orphan, user_dir: Path | None = None
) -> LedgerRecord | None:
    """Record a call that a dead run left in flight: its finished record when the journal has
    a sound one and the ledger does not hold it, else a ``lost`` record at its worst case.
    Returns what was appended (None: the ledger had it already)."""
    data = orphan.record
    if data is not None and not _sound(data):
        data = None  # a damaged record: what the journal's head says is all there is
    if data is not None and contains(state_dir, orphan.run_id, offset=orphan.offset):
        return None
    if data is None:
        data = orphan.lost_record()
    else:
        data = {**data, "reason": (str(data.get("reason") or "") + "; recorded by a later run "
                                   "(the run that made the call died first)").lstrip("; ")[:300]}
    check_writable(state_dir)
    jsonl.append(ledger_path(state_dir), [data])
    if user_dir is not None:
        check_writable(user_dir)
    _to_user(state_dir, user_dir, [data])
    _copy(state_dir, [data])
    record = record_from_dict(data)
    _span(record, None)
    return record


def record_copies(state_dir: Path, records: list[dict[str, Any]], *, eval_id: str,
                  eval_job: str) -> None:
    """Copy the records of an evaluation job's own ledger (its worktree's) into this one,
    tagged with the evaluation, and into the evaluation's own copy (``eval_ledger``), so
    ``usage --evals`` can include, leave out or show only evaluation spend. They
    are not copied to a shared state server: the job's own runs (its workspace has the
    project's ``state`` settings) sent them there already."""
    copies = [{**r, "eval": eval_id, "eval_job": eval_job} for r in records]
    check_writable(state_dir)
    # The evaluation's own copy first: what `usage --evals exclude|only` reads (a crash
    # between the two writes leaves a copy the ledger lacks, never spend it cannot leave out).
    jsonl.append(eval_ledger(state_dir, eval_id), copies)
    jsonl.append(ledger_path(state_dir), copies)


def eval_ledger(state_dir: Path, eval_id: str) -> Path:
    """Where an evaluation's copies of its calls' records are kept beside the ledger's."""
    return state_dir / "evals" / eval_id / LEDGER_NAME


def contains(state_dir: Path, run_id: str, *, offset: int | None = None,
             lookback: int = 64 << 20) -> bool:
    """Whether the ledger holds the record of ``run_id``: the whole line at ``offset`` (where
    its journal says it was appended), or without one any whole line in the last
    ``lookback`` bytes. A torn line (a write cut short by a full disk) does not count: it is
    moved away before the next append, and the record goes in again."""
    try:
        f = open(ledger_path(state_dir), "rb")
    except FileNotFoundError:
        return False
    with f:
        if offset is not None:
            f.seek(offset)
            return _is(f.read(1 << 20).split(b"\n", 1)[0], run_id)
        needle = b'"run_id":"' + run_id.encode("ascii", "replace") + b'"'
        end = f.seek(0, os.SEEK_END)
        pos, carry = end, b""
        while pos > 0 and end - pos < lookback:
            step = min(1 << 18, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step) + carry
            lines = block.split(b"\n")
            carry = lines[0] if pos > 0 else b""
            for line in reversed(lines[1:] if pos > 0 else lines):
                if needle in line and _is(line, run_id):
                    return True
    return False


def _is(line: bytes, run_id: str) -> bool:
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(rec, dict) and rec.get("run_id") == run_id


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


_STATUSES = frozenset(("ok", "partial", "failed", "escalate", "refused", "interrupted", "lost"))


def _sound(d: dict[str, Any]) -> bool:
    """Whether a journal's finished record is one burnless wrote (else it is not copied to
    the ledger as it is: the call is charged as lost instead)."""
    if d.get("status") not in _STATUSES or not isinstance(d.get("tier"), str):
        return False
    cost = d.get("cost_usd")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))):
        return False
    try:
        record_from_dict(d)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return False
    return True


def record_from_dict(d: dict[str, Any]) -> LedgerRecord:
    """A LedgerRecord from its JSON form (as ``to_dict`` wrote it)."""
    route = d.get("route")
    return LedgerRecord(
        run_id=str(d.get("run_id")), session=str(d.get("session")), role=d.get("role"),  # type: ignore[arg-type]
        tier=str(d.get("tier")), model=d.get("model"), status=d.get("status"),  # type: ignore[arg-type]
        tokens=Tokens.from_dict(d.get("tokens") or {}), cost_usd=d.get("cost_usd"),
        cost_source=d.get("cost_source"), audit=d.get("audit") or "skipped",  # type: ignore[arg-type]
        exit=d.get("exit"), seq=d.get("seq"), duration_s=float(d.get("duration_s") or 0.0),
        route=Route(str(route.get("tier")), tuple(route.get("reasons") or ()))
        if isinstance(route, dict) else None,
        redactions=int(d.get("redactions") or 0), cached=bool(d.get("cached")),
        task_id=str(d.get("task_id") or ""), reason=str(d.get("reason") or ""),
        refused_by=d.get("refused_by"), parent_run_id=d.get("parent_run_id"),
        root_run_id=d.get("root_run_id"), depth=int(d.get("depth") or 0),
        client=str(d.get("client") or ""), key=str(d.get("key") or ""),
        ts=str(d.get("ts") or ""),
    )


def record_refusal(
    state_dir: Path,
    *,
    session: str,
    role: Role,
    tier: str,
    model: str | None,
    reason: str,
    refused_by: RefusedBy,
    task_id: str = "",
    route: Route | None = None,
    parent_run_id: str | None = None,
    root_run_id: str | None = None,
    depth: int = 0,
    client: str = "",
    key: str = "",
    user_dir: Path | None = None,
    tier_settings: Tier | None = None,
) -> LedgerRecord:
    """Append the record of a call that was not made (a budget, policy or an open breaker)."""
    record = LedgerRecord(
        run_id=new_run_id(), session=session, role=role, tier=tier, model=model,
        status="refused", cost_usd=0.0, cost_source="priced", route=route, task_id=task_id,
        reason=reason[:300], refused_by=refused_by, parent_run_id=parent_run_id,
        root_run_id=root_run_id, depth=depth, client=client, key=key,
    )
    _append(state_dir, record, user_dir)
    _span(record, tier_settings)
    return record


def _span(record: LedgerRecord, tier: Tier | None) -> None:
    """The record's OpenTelemetry span, when a collector is configured (``telemetry``)."""
    if not any(os.environ.get(v) for v in _OTEL_VARS):
        return  # the common case: not even the telemetry module is imported
    from burnless.accounting import telemetry

    if telemetry.enabled():
        telemetry.emit(record, tier)


def _append(state_dir: Path, record: LedgerRecord, user_dir: Path | None = None) -> None:
    check_writable(state_dir)
    if user_dir is not None:
        check_writable(user_dir)
    line = record.to_dict()
    jsonl.append(ledger_path(state_dir), [line])
    _to_user(state_dir, user_dir, [line])
    _copy(state_dir, [line])


def _to_user(state_dir: Path, user_dir: Path | None, lines: list[dict[str, Any]]) -> None:
    """The user's copy of records this workspace's ledger got (``$BURNLESS_HOME``, for the
    user's limits across projects), each naming its workspace. The caller checked it first."""
    if user_dir is not None:
        jsonl.append(ledger_path(user_dir),
                     [{**line, "workspace": str(state_dir.parent)} for line in lines])


def _copy(state_dir: Path, records: list[dict[str, Any]]) -> None:
    send = COPIES.get(state_dir)
    if send is not None:
        send(records)


def check_writable(state_dir: Path, *, probe: bool = False) -> None:
    """Refuse a ledger (or its ``.torn`` file) that is a symbolic link: appending, and the
    torn-tail repair that truncates, would act on whatever file the link names (a checked-out
    repository could point it at ``~/.bashrc``). With ``probe``, also open it for appending
    (before a call is dispatched: an immutable or read-only ledger refuses the call then, not
    after it was paid for)."""
    path = ledger_path(state_dir)
    for p in (path, Path(str(path) + ".torn")):
        if p.is_symlink():
            raise OSError(errno.ELOOP, "the ledger is a symbolic link; burnless writes only "
                          "a regular file there (remove the link)", str(p))
    if probe:
        state_dir.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_NONBLOCK | os.O_CLOEXEC, 0o644))


def read(state_dir: Path) -> list[dict[str, Any]]:
    return jsonl.read(ledger_path(state_dir))
