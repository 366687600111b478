"""Calls in flight: one small journal file per dispatched call, so no paid call goes unseen.

    .burnless/inflight/<run-id>.json

A journal is written before a call is dispatched: who made it (pid and process start time),
its session, role, tier and model, and the worst case it could cost. When the call is done,
the journal gets the call's full ledger record and capsule first (an atomic replace), then the
ledger is appended, then the session's capsule file, then the journal is removed. Whatever
stops burnless in between — SIGKILL, a full disk, an immutable ledger — the journal stays, and
its process is dead:

- ``sweep`` (every run, any session, before it dispatches) writes the ledger record of every
  dead journal: the complete record when the journal has it and the ledger does not, else a
  ``lost`` record that charges the call's worst case (``cost_source: estimated``), so spent
  money always reaches the ledger and the budgets.
- ``recover`` (the journal's own session, under its lock, before its next turn) appends the
  capsule the journal holds if the session does not have it, so its seq is never reused.

Journals are claimed by renaming them (``<run-id>.json.sweep-<pid>``), so two runs never
record the same call twice; a claim whose process died is claimed again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting.tokens import Tokens
from burnless.runs import RUN_ID_RE, alive, start_ticks
from burnless.storage.atomic import write_atomic

DIR = "inflight"
_CLAIM = ".sweep-"


def journal_dir(state_dir: Path) -> Path:
    return state_dir / DIR


@dataclass(frozen=True)
class Journal:
    """The open journal of one call."""

    path: Path
    head: dict[str, Any]  # what was known before dispatch

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        run_id: str,
        session: str,
        role: str,
        tier: str,
        model: str | None,
        task_id: str,
        prompt_tokens: int,
        worst_case: float | None,
    ) -> Journal:
        """Write the journal of a call about to be dispatched (an OSError: do not dispatch)."""
        head = {
            "v": 1, "run_id": run_id, "session": session, "role": role, "tier": tier,
            "model": model, "task_id": task_id, "prompt_tokens": prompt_tokens,
            "worst_case": worst_case, "pid": os.getpid(), "start": start_ticks(os.getpid()),
        }
        d = journal_dir(state_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{run_id}.json"
        write_atomic(path, orjson.dumps(head))
        return cls(path, head)

    def stage(self, record: dict[str, Any], capsule: dict[str, Any] | None) -> None:
        """Keep the call's finished record (and capsule) before they are written."""
        body = {**self.head, "record": record}
        if capsule is not None:
            body["capsule"] = capsule
        write_atomic(self.path, orjson.dumps(body))

    def close(self) -> None:
        """The record and capsule are written: the journal is no longer needed."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class Orphan:
    """The journal of a call whose process died before it finished recording it."""

    path: Path  # the claimed journal
    data: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def session(self) -> str:
        return str(self.data["session"])

    @property
    def record(self) -> dict[str, Any] | None:
        rec = self.data.get("record")
        return rec if isinstance(rec, dict) else None

    @property
    def capsule(self) -> dict[str, Any] | None:
        cap = self.data.get("capsule")
        return cap if isinstance(cap, dict) else None

    def lost_record(self) -> dict[str, Any]:
        """The ledger record of a call that was dispatched and never recorded: what it sent,
        and its worst case as the cost (unknown when its model has no price)."""
        from burnless.runs import now_iso

        worst = self.data.get("worst_case")
        known = isinstance(worst, (int, float)) and not isinstance(worst, bool)
        tokens = Tokens(input=_count(self.data.get("prompt_tokens")))
        return {
            "v": 1, "ts": now_iso(), "run_id": self.run_id, "session": self.session,
            "seq": None, "role": self.data.get("role"), "tier": self.data.get("tier"),
            "model": self.data.get("model"), "status": "lost", "audit": "skipped",
            "exit": None, "tokens": tokens.to_dict(),
            "cost_usd": round(float(worst), 8) if known else None,  # type: ignore[arg-type]
            "cost_source": "estimated" if known else "unknown", "duration_s": 0.0,
            "route": None, "redactions": 0, "cached": False,
            "task_id": self.data.get("task_id") or "",
            "reason": "the process that made this call died before recording it; its worst "
                      "case is charged (the tokens are what it sent)",
        }

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def keep(self, data: dict[str, Any]) -> None:
        """Write back what is still to do (the capsule, for its session) and give up the
        claim: the journal stays for the session's next run."""
        write_atomic(self.path, orjson.dumps(data))
        name = self.path.name.split(_CLAIM)[0]
        os.replace(self.path, self.path.with_name(name))


def orphans(state_dir: Path, session: str | None = None) -> Iterator[Orphan]:
    """Claim each journal whose process is dead (and whose claim, if any, is dead too).
    ``session`` limits it to one session's journals."""
    d = journal_dir(state_dir)
    try:
        entries = list(os.scandir(d))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        name = entry.name
        run_id, _, claim = name.partition(".json")
        if not RUN_ID_RE.fullmatch(run_id) or not entry.is_file(follow_symlinks=False):
            continue
        if claim.startswith(_CLAIM):
            claimer = claim[len(_CLAIM):].split("-")
            if len(claimer) == 2 and claimer[0].isdigit() and alive(
                    int(claimer[0]), int(claimer[1]) if claimer[1].isdigit() else None):
                continue  # another run is recording it now
        elif claim:
            continue
        data = _read(Path(entry.path))
        if data is None:
            continue
        if session is not None and data.get("session") != session:
            continue
        if alive(data.get("pid"), data.get("start")):
            continue  # the call is still running
        me = os.getpid()
        claimed = d / f"{run_id}.json{_CLAIM}{me}-{start_ticks(me) or 0}"
        try:
            os.rename(entry.path, claimed)  # atomic: one run wins the claim
        except OSError:
            continue
        yield Orphan(claimed, data)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        return None
    if not isinstance(data.get("session"), str):
        return None
    return data


def _count(x: object) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**53 else 0
