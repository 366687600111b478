"""Sessions on disk: capsules (append-only), ``session.json`` (pins), the session lock.

    .burnless/sessions/<id>/capsules.jsonl   one capsule per line, never rewritten
    .burnless/sessions/<id>/session.json     pins and bookkeeping, replaced atomically
    .burnless/sessions/<id>/.lock            held for a whole turn

The epoch structure is derived from the capsule file alone: a ``compact`` capsule opens a new
epoch, so rendering the context is a pure function of the file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting.tokens import estimate_tokens
from burnless.errors import BurnlessError, SessionBusy, UsageError
from burnless.session.capsule import Capsule, Context, render
from burnless.storage import jsonl
from burnless.storage.atomic import write_atomic
from burnless.storage.locks import LockTimeout, file_lock

log = logging.getLogger("burnless")

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise UsageError(
            f"invalid session id {session_id!r:.140}: use 1-128 characters from A-Z a-z 0-9 . _ -,"
            " not starting with a dot"
        )
    return session_id


@dataclass(frozen=True)
class Pin:
    command: str | None
    model: str | None
    api: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "model": self.model, "api": self.api}


@dataclass
class SessionMeta:
    id: str
    created: str = ""
    pins: dict[str, Pin] = field(default_factory=dict)
    executor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.id,
            "created": self.created,
            "pins": {name: pin.to_dict() for name, pin in sorted(self.pins.items())},
            "executor": self.executor,
        }

    @classmethod
    def from_dict(cls, session_id: str, d: dict[str, Any]) -> SessionMeta:
        """Read ``session.json``; a pin that is not strings is dropped with a warning."""
        pins: dict[str, Pin] = {}
        raw_pins = d.get("pins")
        if isinstance(raw_pins, dict):
            for name, p in raw_pins.items():
                fields = [p.get(k) for k in ("command", "model", "api")] if isinstance(
                    p, dict) else None
                if fields is not None and all(f is None or isinstance(f, str) for f in fields):
                    pins[str(name)] = Pin(*fields)
                else:
                    log.warning("session %r: ignoring the damaged pin of tier %r in "
                                "session.json; the current config is used", session_id, name)
        elif raw_pins is not None:
            log.warning("session %r: the pins in session.json are not a mapping; ignored",
                        session_id)
        executor, created = d.get("executor"), d.get("created")
        return cls(
            id=session_id,
            created=created if isinstance(created, str) else "",
            pins=pins,
            executor=executor if isinstance(executor, str) else None,
        )


class Session:
    """One session's files. Cheap to construct; touches the disk only when asked."""

    def __init__(self, state_dir: Path, session_id: str) -> None:
        self.id = check_session_id(session_id)
        self.state_dir = state_dir
        self.dir = state_dir / "sessions" / session_id
        self.capsules_path = self.dir / "capsules.jsonl"
        self.meta_path = self.dir / "session.json"
        self.lock_path = self.dir / ".lock"

    def exists(self) -> bool:
        return self.capsules_path.exists() or self.meta_path.exists()

    def _plain(self) -> None:
        """Session state lives in a plain directory of plain files, never behind a link.

        A symbolic link planted in ``.burnless/sessions`` (an unpacked archive, a cloned repo)
        would have burnless append to, truncate or send out a file anywhere on the disk; a FIFO
        or a device would hang every read.
        """
        for path, is_kind, kind in ((self.dir, stat.S_ISDIR, "directory"),
                                    (self.capsules_path, stat.S_ISREG, "file")):
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                return  # absent (a new session), or unreachable: the open says why
            if not is_kind(mode):
                what = "a symbolic link" if stat.S_ISLNK(mode) else f"not a plain {kind}"
                raise UsageError(
                    f"{path} is {what}; burnless keeps session state in plain files and does "
                    f"not follow or read it (move it away, or `burnless session rm {self.id}`)"
                )

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """Hold the session for a whole turn; SessionBusy after ``timeout`` seconds."""
        try:
            with file_lock(self.lock_path, timeout):
                yield
        except LockTimeout:
            waited = (f"another run held its lock for {timeout:g}s (session.lock_timeout)"
                      if timeout > 0 else "a run is using it now; try again when it ends")
            raise SessionBusy(f"session {self.id!r} is busy: {waited}") from None
        except OSError as exc:
            raise UsageError(
                f"session {self.id!r}: cannot take its lock {self.lock_path}: {_why(exc)}"
            ) from None

    # -- capsules

    def capsules(self) -> list[Capsule]:
        """Every readable capsule, in file order; a damaged line is skipped with a warning."""
        self._plain()
        try:
            records = jsonl.read(self.capsules_path)
        except OSError as exc:
            raise UsageError(f"session {self.id!r}: cannot read {self.capsules_path}: "
                             f"{_why(exc)}") from None
        out: list[Capsule] = []
        for i, rec in enumerate(records, 1):
            try:
                out.append(Capsule.from_dict(rec))
            except (ValueError, TypeError, OverflowError) as exc:
                log.warning("%s: skipping record %d: %s", self.capsules_path, i, exc)
        return out

    def append(self, capsule: Capsule) -> None:
        self._plain()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            jsonl.append(self.capsules_path, [capsule.to_dict()])
        except OSError as exc:
            raise BurnlessError(
                f"session {self.id!r}: cannot write capsule {capsule.seq} to "
                f"{self.capsules_path}: {_why(exc)}"
            ) from None

    # -- session.json

    def meta(self) -> SessionMeta:
        """``session.json``; a damaged one loses only pins (the capsules are the truth)."""
        try:
            data = self._read_meta()
        except FileNotFoundError:
            return SessionMeta(self.id)
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); the session's pins are reset to the current "
                        "config", self.meta_path, exc)
            return SessionMeta(self.id)
        return SessionMeta.from_dict(self.id, data)

    def _read_meta(self) -> dict[str, Any]:
        if not stat.S_ISREG(os.lstat(self.meta_path).st_mode):
            raise ValueError("not a plain file")  # a link is not followed, a FIFO would block
        data = orjson.loads(self.meta_path.read_bytes())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data

    def save_meta(self, meta: SessionMeta) -> None:
        """Replace ``session.json``; a failure only warns (the turn's capsule is written)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.meta_path,
                         orjson.dumps(meta.to_dict(), option=orjson.OPT_INDENT_2))
        except OSError as exc:
            log.warning("%s: cannot save the session's pins: %s", self.meta_path, _why(exc))

    def remove(self) -> None:
        try:
            if self.dir.is_symlink():
                self.dir.unlink()  # the link only, never what it points to
            else:
                shutil.rmtree(self.dir)
        except OSError as exc:
            raise BurnlessError(f"cannot remove session {self.id!r}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    """An OSError as a short reason that names its file."""
    name = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{name}"


def list_sessions(state_dir: Path) -> list[str]:
    """The sessions that can be read; one that is not plain files is skipped with a warning."""
    root = state_dir / "sessions"
    if not root.is_dir():
        return []
    out: list[str] = []
    for p in root.iterdir():
        if not (SESSION_ID_RE.fullmatch(p.name) and p.is_dir()):
            continue
        try:
            Session(state_dir, p.name)._plain()
        except UsageError as exc:
            log.warning("session list: skipping %r: %s", p.name, exc)
            continue
        out.append(p.name)
    return sorted(out)


# --------------------------------------------------------------------------- epochs


def current_epoch(capsules: Sequence[Capsule]) -> int:
    return max((c.epoch for c in capsules), default=1)


def context_of(capsules: Sequence[Capsule]) -> Context:
    """The plan and capsules the next turn renders, derived from the capsule file alone.

    Epoch E's context: its plan (part 3), then the compact digest that opened it, the capsules
    that digest kept, and the epoch's own exec capsules, in file order (part 4).
    """
    epoch = current_epoch(capsules)
    by_seq: dict[int, Capsule] = {}
    for c in capsules:
        by_seq.setdefault(c.seq, c)  # a damaged file may repeat a seq: the first one stays
    plan: Capsule | None = None
    items: list[Capsule] = []
    for c in capsules:
        if c.epoch != epoch:
            continue
        if c.role == "plan":
            plan = plan or c  # the epoch's first plan; it opens the context
        elif c.role == "compact":
            items.append(c)
            items.extend(by_seq[s] for s in c.keeps if s in by_seq and by_seq[s].role == "exec")
        else:
            items.append(c)
    return Context(plan, tuple(items))


def context_tokens(context: Context) -> int:
    text = (render(context.plan) if context.plan else "") + "".join(
        render(c) for c in context.capsules
    )
    return estimate_tokens(text)


def needs_plan(capsules: Sequence[Capsule]) -> bool:
    """The planner fires on the first turn of an epoch (session start, after a compaction)."""
    epoch = current_epoch(capsules)
    return not any(c.epoch == epoch and c.role in ("plan", "exec") for c in capsules)


def next_seq(capsules: Sequence[Capsule]) -> int:
    return max((c.seq for c in capsules), default=0) + 1


@dataclass(frozen=True)
class Fold:
    """What a compaction folds and keeps."""

    folds: tuple[int, ...]
    keeps: tuple[int, ...]
    folded: tuple[Capsule, ...]


def plan_fold(context: Context, keep_recent: int) -> Fold | None:
    """Fold everything in the context but the last ``keep_recent`` exec capsules (None: nothing)."""
    execs = [c for c in context.capsules if c.role == "exec"]
    kept = execs[-keep_recent:] if keep_recent else []
    kept_seqs = {c.seq for c in kept}
    folded = ([context.plan] if context.plan else []) + [
        c for c in context.capsules if c.seq not in kept_seqs
    ]
    if not any(c.role == "exec" for c in folded):
        return None
    return Fold(
        folds=tuple(sorted(c.seq for c in folded)),
        keeps=tuple(c.seq for c in kept),
        folded=tuple(folded),
    )


def compact_capsule(
    capsules: Sequence[Capsule], fold: Fold, digest_text: str, *, tier: str = "", ts: str = ""
) -> Capsule:
    """The capsule that folds ``fold`` into ``digest_text`` and opens the next epoch."""
    return Capsule.make(
        seq=next_seq(capsules), epoch=current_epoch(capsules) + 1, role="compact", tier=tier,
        task="compaction", status="ok", audit="skipped",
        summary=f"folded {len(fold.folds)} capsules, kept {len(fold.keeps)}",
        folds=fold.folds, keeps=fold.keeps, digest=digest_text, ts=ts,
        sensitive=any(c.sensitive for c in fold.folded),
    )


def digest(history: Sequence[Capsule], fold: Fold) -> str:
    """A deterministic digest of the folded turns, bounded, derived from the capsules only."""
    folded_execs = [c for c in fold.folded if c.role == "exec"]
    previous = [c for c in fold.folded if c.role == "compact"]
    plan = next((c for c in fold.folded if c.role == "plan"), None)
    lines: list[str] = []
    if previous:
        lines.append(f"Earlier digest (seq {previous[-1].seq}):")
        lines.extend("  " + line for line in previous[-1].digest.splitlines()[:8])
    if plan and plan.plan:
        lines.append("Plan was: " + " / ".join(plan.plan[:6]))
    lines.append(f"Turns folded: {len(folded_execs)}")
    for c in folded_execs[-10:]:
        mark = "" if c.audit in ("passed", "skipped", "") else f" audit {c.audit}"
        lines.append(f"- [{c.seq}] {c.status}{mark}: {c.summary or c.task}"[:160])
    touched: list[str] = []
    for c in reversed([c for c in history if c.role == "exec"]):
        for f in c.files:
            if f not in touched:
                touched.append(f)
    if touched:
        more = f" (+{len(touched) - 20} more)" if len(touched) > 20 else ""
        lines.append("Files touched: " + ", ".join(touched[:20]) + more)
    failed = [c for c in folded_execs if c.audit == "failed" or c.status in ("failed", "partial")]
    if failed:
        lines.append("Failed or partial: " + "; ".join(
            f"[{c.seq}] {c.status}/{c.audit} {' '.join(c.notes[:2])}".strip() for c in failed[-5:]
        ))
    open_items = [c.next for c in folded_execs[-3:] if c.next]
    if open_items:
        lines.append("Open: " + " | ".join(open_items))
    return "\n".join(lines)
