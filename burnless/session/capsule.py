"""Capsules: one small, bounded record per turn; the session's memory instead of a transcript.

A capsule is stored as one JSON line (``capsules.jsonl``) and rendered into prompts by the fixed
templates of ``render``. Rendering uses only fields that never change after the capsule is written
(no ``ts``, no cost, no run id), so an old capsule renders to the same bytes forever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

ROLES = ("plan", "exec", "compact")

# Bounds keep a capsule to a few hundred bytes; the full answer stays in the run's log.
MAX_TASK = 240
MAX_SUMMARY = 320
MAX_NEXT = 200
MAX_FILES = 16
MAX_PATH = 160
MAX_PLAN_STEPS = 12
MAX_STEP = 200
MAX_NOTES = 6
MAX_NOTE = 120
MAX_DIGEST = 2400
MAX_LABEL = 120  # tier, model, status, audit, run id, timestamp
MAX_INT = 2**53 - 1  # seq and epoch: next_seq() + 1 must still be a JSON-safe integer

_WS = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_safe(text: str) -> str:
    """Lone surrogates (undecodable bytes in argv or a pipe) cannot be stored as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace and cut to ``limit`` characters (with an ellipsis)."""
    flat = _WS.sub(" ", utf8_safe(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def bounded(text: str, limit: int) -> str:
    """Keep line structure, cut to ``limit`` characters."""
    lines = utf8_safe(text).strip().splitlines()
    body = "\n".join(line.rstrip() for line in lines if line.strip())
    return body if len(body) <= limit else body[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Capsule:
    """One turn of a session as later turns see it: what was asked, done and audited."""
    seq: int
    epoch: int
    role: str
    tier: str = ""
    model: str = ""
    task: str = ""
    status: str = ""
    audit: str = ""
    summary: str = ""
    files: tuple[str, ...] = ()
    next: str = ""
    run_id: str = ""
    ts: str = ""
    notes: tuple[str, ...] = ()  # why an attempt failed: audit findings, errors
    plan: tuple[str, ...] = ()  # role plan
    folds: tuple[int, ...] = ()  # role compact: seqs folded into the digest
    keeps: tuple[int, ...] = ()  # role compact: seqs kept verbatim into the new epoch
    digest: str = ""  # role compact
    sensitive: bool = False  # written by sensitive work: the session stays on local tiers
    v: int = 1

    @classmethod
    def make(cls, **kw: Any) -> Capsule:
        """Build a capsule with every text field bounded (idempotent: bounded stays as is)."""
        c = cls(**kw)
        return replace(
            c,
            tier=one_line(c.tier, MAX_LABEL),
            model=one_line(c.model, MAX_LABEL),
            status=one_line(c.status, MAX_LABEL),
            audit=one_line(c.audit, MAX_LABEL),
            run_id=one_line(c.run_id, MAX_LABEL),
            ts=one_line(c.ts, MAX_LABEL),
            task=one_line(c.task, MAX_TASK),
            summary=one_line(c.summary, MAX_SUMMARY),
            next=one_line(c.next, MAX_NEXT),
            files=tuple(one_line(f, MAX_PATH) for f in c.files[:MAX_FILES]),
            notes=tuple(one_line(n, MAX_NOTE) for n in c.notes[:MAX_NOTES]),
            plan=tuple(one_line(s, MAX_STEP) for s in c.plan[:MAX_PLAN_STEPS]),
            digest=bounded(c.digest, MAX_DIGEST),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": self.v, "seq": self.seq, "epoch": self.epoch, "role": self.role,
            "run_id": self.run_id, "tier": self.tier, "model": self.model, "task": self.task,
            "status": self.status, "audit": self.audit, "summary": self.summary,
            "files": list(self.files), "next": self.next, "ts": self.ts,
        }
        if self.notes:
            d["notes"] = list(self.notes)
        if self.role == "plan":
            d["plan"] = list(self.plan)
        if self.role == "compact":
            d.update(folds=list(self.folds), keeps=list(self.keeps), digest=self.digest)
        if self.sensitive:
            d["sensitive"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Capsule:
        """Read a stored capsule; unknown keys are ignored, bad types raise ValueError.

        Text fields are bounded as ``make`` bounds them (a no-op for what burnless wrote), so
        a hand-edited or damaged line cannot blow up every later prompt.
        """

        def s(key: str) -> str:
            v = d.get(key, "")
            return v if isinstance(v, str) else str(v)

        def strs(key: str) -> tuple[str, ...]:
            v = d.get(key) or []
            return tuple(str(x) for x in v) if isinstance(v, list) else ()

        def ints(key: str) -> tuple[int, ...]:
            v = d.get(key) or []
            return tuple(int(x) for x in v) if isinstance(v, list) else ()

        seq, epoch, role = d.get("seq"), d.get("epoch"), d.get("role")
        if not (_count(seq) and _count(epoch) and role in ROLES):
            raise ValueError(f"not a capsule: {d!r:.120}")
        return cls.make(
            seq=seq, epoch=epoch, role=str(role), tier=s("tier"), model=s("model"),
            task=s("task"), status=s("status"), audit=s("audit"), summary=s("summary"),
            files=strs("files"), next=s("next"), run_id=s("run_id"), ts=s("ts"),
            notes=strs("notes"), plan=strs("plan"), folds=ints("folds"), keeps=ints("keeps"),
            digest=s("digest"), sensitive=d.get("sensitive") is True, v=int(d.get("v", 1)),
        )


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_INT


@dataclass(frozen=True)
class Context:
    """What a turn's prompt carries between prefix and task: the plan and the capsules."""

    plan: Capsule | None = None
    capsules: tuple[Capsule, ...] = field(default=())


def render(c: Capsule) -> str:
    """The fixed template of one capsule. Pure: same capsule, same bytes."""
    if c.role == "plan":
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(c.plan, 1)) or "(no steps)"
        return f'<plan epoch="{c.epoch}" seq="{c.seq}" tier="{c.tier}">\n{steps}\n</plan>\n\n'
    if c.role == "compact":
        return (
            f'<digest epoch="{c.epoch}" seq="{c.seq}" folds="{_ranges(c.folds)}" '
            f'keeps="{_ranges(c.keeps)}">\n{c.digest or "(empty)"}\n</digest>\n\n'
        )
    lines = [f"task: {c.task}"]
    if c.summary:
        lines.append(f"summary: {c.summary}")
    if c.files:
        lines.append("files: " + ", ".join(c.files))
    if c.notes:
        lines.append("notes: " + "; ".join(c.notes))
    if c.next:
        lines.append(f"next: {c.next}")
    body = "\n".join(lines)
    return (
        f'<capsule seq="{c.seq}" role="{c.role}" tier="{c.tier}" status="{c.status}" '
        f'audit="{c.audit or "none"}">\n{body}\n</capsule>\n\n'
    )


def _ranges(seqs: tuple[int, ...]) -> str:
    """1,2,3,5 -> '1-3,5' (compact and stable)."""
    out: list[str] = []
    nums = sorted(set(seqs))
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ",".join(out)
