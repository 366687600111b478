"""Calls in flight: one small journal file per dispatched call, so no paid call goes unseen.

    .burnless/inflight/<run-id>.json    what the call is (and, once done, its record)
    .burnless/inflight/<run-id>.lock    held (flock) by the process making the call

A journal is written before a call is dispatched: who made it, its session, role, tier and
model, and the worst case it could cost. Its process holds an exclusive ``flock`` on the
journal's lock file for as long as the call is its own; the kernel lets go when that process
dies, whatever kills it. When the call is done, the journal gets the call's full ledger record
and capsule, and the ledger offset the record goes to (an atomic replace, under the ledger's
lock), then the ledger is appended, then the session's capsule file, then the journal is
removed. Whatever stops burnless in between — SIGKILL, a full disk, an immutable ledger — the
journal stays and its lock is free:

- ``ledger.record_orphans`` (every run before it dispatches, and every budget reservation)
  writes the ledger record of every such journal: the complete record when the journal has it
  and the ledger does not hold it at its offset, else a ``lost`` record that charges the
  call's worst case (``cost_source: estimated``), so spent money always reaches the ledger
  and the budgets.
- ``recovery`` (under the journal's session's lock) appends the capsule the journal holds if
  the session does not have it, so its seq is never reused.

A run claims a dead journal by taking its lock, and only while it holds the budget lock
(``budget.locked``): so no call is recorded twice, and a run that holds the budget lock sees
every dead journal (none is half-way through another run's hands). A lock, not a process id,
says whether the call's process lives: a pid means nothing to a process in another PID
namespace (a container sharing the workspace), and can be reused.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting.tokens import Tokens
from burnless.runs import RUN_ID_RE, alive, start_ticks
from burnless.storage.atomic import write_atomic

log = logging.getLogger("burnless")

DIR = "inflight"
_MAX_BYTES = 64 << 20  # a journal holds one record and one capsule: far less than this
_SESSION_RE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def journal_dir(state_dir: Path) -> Path:
    return state_dir / DIR


def _lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name[: -len(".json")] + ".lock")


def _try_lock(path: Path, *, create: bool) -> int | None:
    """An open descriptor holding an exclusive flock on ``path`` (the file the path names now),
    or None when another process holds it or (without ``create``) it does not exist."""
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        now = os.stat(path, follow_symlinks=False)
        held = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None


def _new_lock(path: Path) -> int:
    """A lock file that appears at ``path`` already locked by this process: created and
    locked under another name, then renamed (a sweeper that found it between its creation
    and its lock would take it for the stale lock of a closed call, and remove it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file no one else has opened
        os.rename(tmp, path)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    return fd


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class Journal:
    """The open journal of one call; ``fd`` holds its lock while this process lives."""

    path: Path
    head: dict[str, Any]  # what was known before dispatch
    fd: int

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
        tree: str = "",
    ) -> Journal:
        """Write the journal of a call about to be dispatched (an OSError: do not dispatch).
        ``tree`` is the delegation tree whose ``max_cost_per_task`` the call counts in."""
        head = {
            "v": 1, "run_id": run_id, "session": session, "role": role, "tier": tier,
            "model": model, "task_id": task_id, "prompt_tokens": prompt_tokens,
            "worst_case": worst_case, "tree": tree, "pid": os.getpid(),
            "start": start_ticks(os.getpid()),
        }
        d = journal_dir(state_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{run_id}.json"
        fd = _new_lock(_lock_path(path))  # first: no one ever sees this journal unlocked
        try:
            write_atomic(path, orjson.dumps(head))
        except BaseException:
            _unlink(_lock_path(path))
            os.close(fd)
            raise
        return cls(path, head, fd)

    def stage(self, record: dict[str, Any], capsule: dict[str, Any] | None,
              offset: int | None) -> None:
        """Keep the call's finished record (and capsule), and the ledger offset it is about
        to be appended at (None: unknown), before they are written."""
        body = {**self.head, "record": record, "offset": offset}
        if capsule is not None:
            body["capsule"] = capsule
        write_atomic(self.path, orjson.dumps(body))

    def close(self) -> None:
        """The record and capsule are written: the journal is no longer needed."""
        _unlink(self.path)
        _unlink(_lock_path(self.path))
        try:
            os.close(self.fd)
        except OSError:
            pass


@dataclass(frozen=True)
class Orphan:
    """The journal of a call whose process died before it finished recording it, claimed
    (``fd`` holds its lock) by this process."""

    path: Path
    data: dict[str, Any]
    fd: int

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def session(self) -> str:
        return str(self.data["session"])

    @property
    def tree(self) -> str:
        tree = self.data.get("tree")
        return tree if isinstance(tree, str) else ""

    @property
    def offset(self) -> int | None:
        off = self.data.get("offset")
        return off if isinstance(off, int) and not isinstance(off, bool) and off >= 0 else None

    @property
    def record(self) -> dict[str, Any] | None:
        """The finished record the journal holds, when it is one of this call's."""
        rec = self.data.get("record")
        if not isinstance(rec, dict) or rec.get("run_id") != self.run_id or rec.get(
                "session") != self.session:
            return None
        return rec

    @property
    def capsule(self) -> dict[str, Any] | None:
        cap = self.data.get("capsule")
        return cap if isinstance(cap, dict) else None

    def lost_record(self) -> dict[str, Any]:
        """The ledger record of a call that was dispatched and never recorded: what it sent,
        and its worst case as the cost (unknown when its model has no price)."""
        from burnless.runs import now_iso

        worst = self.data.get("worst_case")
        known = (isinstance(worst, (int, float)) and not isinstance(worst, bool)
                 and 0 <= worst < 1e12)
        tokens = Tokens(input=_count(self.data.get("prompt_tokens")))
        return {
            "v": 1, "ts": now_iso(), "run_id": self.run_id, "session": self.session,
            "seq": None, "role": _text(self.data.get("role")),
            "tier": _text(self.data.get("tier")), "model": _text(self.data.get("model")),
            "status": "lost", "audit": "skipped",
            "exit": None, "tokens": tokens.to_dict(),
            "cost_usd": round(float(worst), 8) if known else None,  # type: ignore[arg-type]
            "cost_source": "estimated" if known else "unknown", "duration_s": 0.0,
            "route": None, "redactions": 0, "cached": False,
            "task_id": _text(self.data.get("task_id")) or "",
            "reason": "the process that made this call died before recording it; its worst "
                      "case is charged (the tokens are what it sent)",
        }

    def release(self) -> None:
        """Done with it: the journal and its lock file go."""
        _unlink(self.path)
        _unlink(_lock_path(self.path))
        os.close(self.fd)

    def keep(self, data: dict[str, Any]) -> None:
        """Write back what is still to do (the capsule, for its session) and give up the
        claim: the journal stays for the session's next run."""
        try:
            write_atomic(self.path, orjson.dumps(data))
        finally:
            os.close(self.fd)

    def set_aside(self, why: str) -> None:
        """A journal burnless cannot act on: moved out of the way, once, with a warning."""
        _set_aside(self.path, why)
        _unlink(_lock_path(self.path))
        os.close(self.fd)


def any_dead(state_dir: Path, session: str) -> bool:
    """Whether a journal (or lock file) here may have lost its process: a quick look, with
    no lock held, so a run with only live calls beside it does not queue for the budget
    lock to find nothing to do. A journal of ``session`` always counts: the caller holds
    that session's lock, so whoever holds the journal's lock is another run's sweep, which
    the caller must wait for (under the budget lock) to see that journal."""
    d = journal_dir(state_dir)
    try:
        entries = list(os.scandir(d))
    except (FileNotFoundError, NotADirectoryError):
        return False
    for entry in entries:
        run_id, dot, rest = entry.name.partition(".")
        if not (dot and rest in ("json", "lock") and RUN_ID_RE.fullmatch(run_id)):
            continue
        fd = _try_lock(d / f"{run_id}.lock", create=False)
        if fd is not None:
            os.close(fd)
            return True
        if rest != "json":
            continue
        if not os.path.lexists(d / f"{run_id}.lock"):
            return True  # a journal with no lock file: its pid decides, under the lock
        data, _ = _read(Path(entry.path), run_id)
        if data is not None and data["session"] == session:
            return True
    return False


def orphans(state_dir: Path, session: str | None = None) -> Iterator[Orphan]:
    """Claim each journal whose process is dead. The caller holds the budget lock
    (``budget.locked``). ``session`` limits it to one session's journals."""
    d = journal_dir(state_dir)
    try:
        entries = list(os.scandir(d))
    except (FileNotFoundError, NotADirectoryError):
        return
    names = {e.name for e in entries}
    for entry in entries:
        name = entry.name
        run_id, dot, rest = name.partition(".")
        if not RUN_ID_RE.fullmatch(run_id):
            continue
        if dot and rest == "lock" and f"{run_id}.json" not in names:
            _drop_stale_lock(Path(entry.path))  # its call closed all but this: nothing to do
            continue
        if rest != "json" or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        fd = _claim(path)
        if fd is None:
            continue  # its call is still running
        data, why = _read(path, run_id)
        if data is None:
            if why == "gone":  # its call was closed meanwhile
                _unlink(_lock_path(path))
                os.close(fd)
            else:
                Orphan(path, {}, fd).set_aside(why)
            continue
        if session is not None and data["session"] != session:
            os.close(fd)
            continue
        yield Orphan(path, data, fd)


def _claim(path: Path) -> int | None:
    """The lock of a journal whose process is dead, or None."""
    lock = _lock_path(path)
    fd = _try_lock(lock, create=False)
    if fd is not None:
        return fd
    if os.path.lexists(lock):
        return None  # held: its call runs (or another run holds it)
    # No lock file: a journal written by hand or by a build before locks. Its pid decides.
    data, _ = _read(path, path.name[: -len(".json")])
    if data is not None and alive(data.get("pid"), data.get("start")):
        return None
    return _try_lock(lock, create=True)


def _drop_stale_lock(lock: Path) -> None:
    fd = _try_lock(lock, create=False)
    if fd is not None:
        _unlink(lock)
        os.close(fd)


def _read(path: Path, run_id: str) -> tuple[dict[str, Any] | None, str]:
    """The journal's data, or None and why it cannot be used ("gone": it was removed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, "gone"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a plain file"
        if info.st_size > _MAX_BYTES:
            return None, f"{info.st_size:,} bytes, more than a journal ever holds"
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    finally:
        os.close(fd)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, "not valid JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if data.get("run_id") != run_id:
        return None, "it names another call than its file"
    session = data.get("session")
    if not (isinstance(session, str) and 0 < len(session) <= 128 and session[0] != "."
            and set(session) <= _SESSION_RE_CHARS):
        return None, "its session is not a session id"
    return data, ""


def _set_aside(path: Path, why: str) -> None:
    aside = path.with_name(path.name + ".damaged")
    try:
        os.replace(path, aside)
    except OSError:
        aside = path
    log.warning("%s: a call's journal is damaged (%s); moved to %s. If that call was "
                "dispatched it is not in the ledger: burnless cannot tell what it was",
                path, why, aside.name)


def _count(x: object) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**53 else 0


def _text(x: object) -> str | None:
    return x[:200] if isinstance(x, str) else None
