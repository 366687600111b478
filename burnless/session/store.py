"""Sessions on disk: capsules (append-only), ``session.json`` (pins), the session lock.

    .burnless/sessions/<id>/capsules.jsonl   one capsule per line, never rewritten
    .burnless/sessions/<id>/session.json     pins and bookkeeping, replaced atomically
    .burnless/sessions/<id>/.lock            held for a whole turn

The epoch structure is derived from the capsule file alone: a ``compact`` capsule opens a new
epoch, so rendering the context is a pure function of the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from burnless.errors import BurnlessError, SessionBusy, UsageError
from burnless.session.capsule import Capsule
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
    """The command and model a session's tier was pinned to."""
    command: str | None
    model: str | None
    api: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "model": self.model, "api": self.api}


@dataclass
class SessionMeta:
    """A session's metadata: when it began, its pins, its executor."""
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
        lock = file_lock(self.lock_path, timeout)
        try:
            lock.__enter__()
        except LockTimeout:
            waited = (f"another run held its lock for {timeout:g}s (session.lock_timeout)"
                      if timeout > 0 else "a run is using it now; try again when it ends")
            raise SessionBusy(f"session {self.id!r} is busy: {waited}") from None
        except OSError as exc:
            raise UsageError(
                f"session {self.id!r}: cannot take its lock {self.lock_path}: {_why(exc)}"
            ) from None
        # Only taking the lock is mapped above: an error inside the turn (a full disk, an
        # immutable ledger) is the turn's own, and may come after work was done.
        with contextlib.ExitStack() as stack:
            stack.push(lock)
            yield

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
