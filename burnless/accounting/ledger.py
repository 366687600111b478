"""The ledger: one JSON line per call, cache hit or refusal, and the only code that writes it.

``.burnless/ledger.jsonl`` is the single source of truth for spend: usage reports, budgets and
metrics are all computed from it. Four functions append to it — ``record_call`` for a call
that was made (or answered from the response cache), ``record_refusal`` for one that was not,
``record_orphan`` for a call a dead run left in flight (``inflight``) and ``record_copies``
for the calls of an evaluation job (``burnless eval``) — all through
``jsonl.append`` (one whole line under the file's lock).
"""

from __future__ import annotations

import calendar
import errno
import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless.accounting.inflight import Journal, Orphan, orphans
from burnless.accounting.tokens import Tokens
from burnless.runs import new_run_id, now_iso
from burnless.storage import jsonl
from burnless.vocab import CostSource, RecordStatus, RefusedBy, Role, Verdict

LEDGER_NAME = "ledger.jsonl"
# Where the records appended to a state directory's ledger are also sent: a shared state
# backend (``burnless.state``) registers its ``copy`` here. Empty with the local backend.
# Copies never raise: what cannot reach the server waits in its outbox.
COPIES: dict[Path, Callable[[list[dict[str, Any]]], None]] = {}


@dataclass(frozen=True)
class Route:
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
) -> None:
    """Append the record of a call that was made. ``settling`` (``budget.Guard.settling``)
    holds the budget lock and releases the call's reservation around the write, so no other
    run ever sees the call's cost twice or not at all. With the call's ``journal``, the record
    (and the turn's ``capsule``) are kept in it first, so a crash from here on loses neither;
    the caller closes the journal once the capsule is written too."""
    if journal is not None:
        journal.stage(record.to_dict(), capsule)
    with settling or nullcontext():
        _append(state_dir, record)


def record_orphans(state_dir: Path) -> list[LedgerRecord]:
    """Record every call that a dead run left in flight (``record_orphan``). A journal that
    still holds a capsule is kept, marked recorded, for its session (``recovery``). Budgets
    call this under their lock before they count what was spent."""
    done: list[LedgerRecord] = []
    for orphan in orphans(state_dir):
        if orphan.data.get("recorded"):
            orphan.keep(orphan.data)
            continue
        try:
            rec = record_orphan(state_dir, orphan)
        except OSError:
            orphan.keep(orphan.data)  # a later run tries again
            raise
        if rec is not None:
            done.append(rec)
        if orphan.capsule is not None:
            orphan.keep({**orphan.data, "recorded": True})
        else:
            orphan.release()
    return done


def record_orphan(state_dir: Path, orphan: Orphan) -> LedgerRecord | None:
    """Record a call that a dead run left in flight: its finished record when the journal has
    it and the ledger does not yet, else a ``lost`` record at its worst case. Returns what
    was appended (None: the ledger had it already)."""
    data = orphan.record
    if data is not None and contains(state_dir, orphan.run_id):
        return None
    if data is None:
        data = orphan.lost_record()
    else:
        data = {**data, "reason": (str(data.get("reason") or "") + "; recorded by a later run "
                                   "(the run that made the call died first)").lstrip("; ")[:300]}
    check_writable(state_dir)
    jsonl.append(ledger_path(state_dir), [data])
    _copy(state_dir, [data])
    return record_from_dict(data)


def record_copies(state_dir: Path, records: list[dict[str, Any]], *, eval_id: str,
                  eval_job: str) -> None:
    """Copy the records of an evaluation job's own ledger (its worktree's) into this one,
    tagged with the evaluation, so ``usage`` can include or leave out evaluation spend. They
    are not copied to a shared state server: the job's own runs (its workspace has the
    project's ``state`` settings) sent them there already."""
    check_writable(state_dir)
    jsonl.append(ledger_path(state_dir),
                 [{**r, "eval": eval_id, "eval_job": eval_job} for r in records])


_TS = re.compile(rb'"ts":"([^"]*)"')


def contains(state_dir: Path, run_id: str, *, lookback: int = 64 << 20) -> bool:
    """Whether the ledger holds a record of ``run_id``, looking back from its end (a dead run's
    record is among the last ones; past ``lookback`` bytes it is taken as absent)."""
    needle = b'"run_id":"' + run_id.encode("ascii") + b'"'
    # A run id starts with the UTC time of the call: no record of it is older. Records land in
    # ts order up to a lock wait, so stop at records 10 minutes older than that.
    t = calendar.timegm(time.strptime(run_id[2:17], "%Y%m%dT%H%M%S")) - 600
    oldest = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    try:
        f = open(ledger_path(state_dir), "rb")
    except FileNotFoundError:
        return False
    with f:
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
                if needle in line:
                    return True
                m = _TS.search(line)
                if m and m.group(1).decode("ascii", "replace")[:19] < oldest:
                    return False
    return False


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
        client=str(d.get("client") or ""),
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
) -> LedgerRecord:
    """Append the record of a call that was not made (a budget, policy or an open breaker)."""
    record = LedgerRecord(
        run_id=new_run_id(), session=session, role=role, tier=tier, model=model,
        status="refused", cost_usd=0.0, cost_source="priced", route=route, task_id=task_id,
        reason=reason[:300], refused_by=refused_by, parent_run_id=parent_run_id,
        root_run_id=root_run_id, depth=depth, client=client,
    )
    _append(state_dir, record)
    return record


def _append(state_dir: Path, record: LedgerRecord) -> None:
    check_writable(state_dir)
    data = record.to_dict()
    jsonl.append(ledger_path(state_dir), [data])
    _copy(state_dir, [data])


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
