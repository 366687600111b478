"""The ledger: one JSON line per call, cache hit or refusal (SPEC section 9).

``.burnless/ledger.jsonl`` is the single source of truth for spend: usage reports, budgets and
metrics are all computed from it.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless import jsonl
from burnless.tokens import Tokens

LEDGER_NAME = "ledger.jsonl"
ROLES = ("planning", "execution", "compaction")
COST_SOURCES = ("reported", "priced", "estimated", "unknown")
RUN_ID_RE = re.compile(r"r-\d{8}T\d{6}-[0-9a-f]{6}")


def new_run_id() -> str:
    # os.urandom, not secrets: ids need uniqueness, and `secrets` costs ~5 ms to import.
    return time.strftime("r-%Y%m%dT%H%M%S-", time.gmtime()) + os.urandom(3).hex()


def new_task_id() -> str:
    """Groups the calls of one `run` invocation in the ledger."""
    return "t-" + os.urandom(6).hex()


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


@dataclass(frozen=True)
class Route:
    tier: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class LedgerRecord:
    run_id: str
    session: str
    role: str
    tier: str
    model: str | None
    status: str  # ok | partial | failed | escalate | refused | interrupted
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    cost_source: str = "unknown"
    audit: str = "skipped"
    exit: int | None = None
    seq: int | None = None
    duration_s: float = 0.0
    route: Route | None = None
    redactions: int = 0
    cached: bool = False
    task_id: str = ""  # groups the calls of one `run` invocation
    reason: str = ""  # refusals, timeouts, breaker decisions
    refused_by: str = ""  # budget | policy | breaker, for status "refused"
    ts: str = field(default_factory=now_iso)
    v: int = 1
    client: str = ""  # the gateway caller (from its user agent); "" for run's own calls

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
        if self.client:
            d["client"] = self.client
        return d


def ledger_path(state_dir: Path) -> Path:
    return state_dir / LEDGER_NAME


def append(state_dir: Path, record: LedgerRecord) -> None:
    check_writable(state_dir)
    jsonl.append(ledger_path(state_dir), [record.to_dict()])


def check_writable(state_dir: Path) -> None:
    """Refuse a ledger (or its ``.torn`` file) that is a symbolic link: appending, and the
    torn-tail repair that truncates, would act on whatever file the link names (a checked-out
    repository could point it at ``~/.bashrc``)."""
    path = ledger_path(state_dir)
    for p in (path, Path(str(path) + ".torn")):
        if p.is_symlink():
            raise OSError(errno.ELOOP, "the ledger is a symbolic link; burnless writes only "
                          "a regular file there (remove the link)", str(p))


def read(state_dir: Path) -> list[dict[str, Any]]:
    return jsonl.read(ledger_path(state_dir))


def log_path(state_dir: Path, run_id: str) -> Path:
    if not RUN_ID_RE.fullmatch(run_id):
        from burnless.errors import UsageError

        raise UsageError(f"invalid run id {run_id!r} (expected r-YYYYMMDDTHHMMSS-xxxxxx)")
    return state_dir / "logs" / f"{run_id}.log"


def logs_dir(state_dir: Path) -> Path:
    d = state_dir / "logs"
    os.makedirs(d, exist_ok=True)
    return d
