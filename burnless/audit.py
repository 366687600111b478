"""Filesystem audit: check what a worker claims against the disk (the audit table of the README).

A snapshot before the worker runs records each file's metadata (size, mtime, ctime, inode),
never its content, so a large workspace stays cheap to snapshot. Files modified in the last few
seconds before the snapshot are hashed too ("racy" files, as git calls them): their mtime alone
cannot tell a same-size rewrite within the clock's granularity. After the run, a file counts as
changed when its metadata or (for racy files) its content differs; only claimed or changed files
are hashed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shlex
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from burnless import process
from burnless.envelope import FileClaim
from burnless.storage.atomic import open_regular
from burnless.vocab import Verdict

CHECKS = ("outside", "missing", "size", "hash", "unchanged", "present", "verify", "unclaimed")
RACY_WINDOW_NS = 3_000_000_000
MAX_RACY_HASH_BYTES = 64 << 20  # per snapshot: past it (a fresh checkout), metadata only
# Per audit, for claimed hashes: a worker can make a terabyte sparse file in an instant, or claim
# one big file under many names; past the budget a claimed hash fails unverified.
MAX_CLAIM_HASH_BYTES = 1 << 30


@dataclass(frozen=True)
class Entry:
    """One file as the audit's snapshot saw it (a digest only for files changed within the clock's
    resolution)."""
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    mode: int
    digest: str | None = None  # only for racy files


@dataclass(frozen=True)
class Snapshot:
    """The workspace's files before a call, to compare with after it."""
    root: Path
    entries: dict[str, Entry]
    taken_ns: int  # wall clock (time.time_ns) when the snapshot started


@dataclass(frozen=True)
class Finding:
    """One way the worker's claims and the disk disagree."""
    check: str
    path: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        d = {"check": self.check, "path": self.path}
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass(frozen=True)
class AuditReport:
    """The audit's verdict on a call, its findings, and the changes nobody claimed."""
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    unclaimed: tuple[str, ...] = ()
    changed: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
            "unclaimed": list(self.unclaimed),
        }

    def notes(self) -> list[str]:
        """Short lines for a capsule: what failed."""
        return [f"{f.check} {f.path}".strip() for f in self.findings]


SKIPPED = AuditReport("skipped")


def _ignored(rel: str, name: str, ignore: Sequence[str]) -> bool:
    for pat in ignore:
        if "/" in pat:
            if fnmatch.fnmatchcase(rel, pat) or rel.startswith(pat.rstrip("/") + "/"):
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


def snapshot(root: Path, ignore: Sequence[str]) -> Snapshot:
    """Metadata of every file under ``root`` (symlinks recorded, never followed)."""
    taken = time.time_ns()
    entries: dict[str, Entry] = {}
    racy_budget = MAX_RACY_HASH_BYTES
    stack = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except OSError:
            continue
        with it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                if _ignored(rel, de.name, ignore):
                    continue
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append((rel, de.path))
                    continue
                digest = None
                if (
                    stat.S_ISREG(st.st_mode)
                    and taken - st.st_mtime_ns < RACY_WINDOW_NS
                    and st.st_size <= racy_budget
                ):
                    digest = _hash(de.path, st.st_size)
                    racy_budget -= st.st_size
                entries[rel] = Entry(
                    st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode, digest
                )
    return Snapshot(root, entries, taken)


def _hash(path: str, size: int) -> str | None:
    """sha256 of the regular file at ``path``; None if it cannot be read, is not a regular file
    (a FIFO swapped in after the stat is never waited on) or holds more than ``size`` bytes (it
    grew while being hashed: a writer left running must not keep the audit reading forever)."""
    h = hashlib.sha256()
    left = size + 1
    try:
        with open_regular(path) as f:
            while left > 0 and (chunk := f.read(min(1 << 20, left))):
                h.update(chunk)
                left -= len(chunk)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    return h.hexdigest() if left > 0 else None


def diff(before: Snapshot, after: Snapshot) -> dict[str, str]:
    """Paths changed during the run: path -> created | modified | deleted."""
    out: dict[str, str] = {}
    for path, new in after.entries.items():
        old = before.entries.get(path)
        if old is None:
            out[path] = "created"
        elif _differs(old, new, after.root / path):
            out[path] = "modified"
    for path in before.entries.keys() - after.entries.keys():
        out[path] = "deleted"
    return dict(sorted(out.items()))


def _differs(old: Entry, new: Entry, path: Path) -> bool:
    if (old.size, old.mtime_ns, old.ctime_ns, old.ino, old.mode) != (
        new.size, new.mtime_ns, new.ctime_ns, new.ino, new.mode
    ):
        return True
    if old.digest is not None:  # racy: metadata alone cannot prove it unchanged
        return _hash(str(path), new.size) != old.digest
    return False


def audit(
    before: Snapshot,
    claims: Sequence[FileClaim],
    *,
    ignore: Sequence[str],
    strict: bool = False,
    verify: Sequence[str] = (),
    run_verify: Callable[[str], tuple[int | None, str]] | None = None,
) -> AuditReport:
    """Check every claim against the disk; list unclaimed changes; run verify commands."""
    root = before.root
    after = snapshot(root, ignore)
    changed = diff(before, after)
    findings: list[Finding] = []
    claimed: set[str] = set()
    real_root = root.resolve()
    allowance = _HashAllowance(MAX_CLAIM_HASH_BYTES)
    for claim in claims:
        rel = _check_claim(claim, root, real_root, before, after, changed, findings, allowance)
        if rel is not None:
            claimed.add(rel)
    for cmd in verify:
        if run_verify is None:
            break
        code, tail = run_verify(cmd)
        if code != 0:
            detail = f"exit {code}" if code is not None else "timed out"
            findings.append(Finding("verify", cmd, (detail + (": " + tail if tail else ""))[:300]))
    unclaimed = tuple(p for p in changed if p not in claimed)
    if strict:
        findings.extend(Finding("unclaimed", p, changed[p]) for p in unclaimed)
    if not claims and not verify and not changed:
        return SKIPPED
    return AuditReport("failed" if findings else "passed", tuple(findings), unclaimed,
                       tuple(changed))


@dataclass
class _HashAllowance:
    """How many more bytes the audit may read to check claimed hashes."""
    left: int  # bytes the audit may still read to check claimed hashes


def _check_claim(
    claim: FileClaim,
    root: Path,
    real_root: Path,
    before: Snapshot,
    after: Snapshot,
    changed: dict[str, str],
    findings: list[Finding],
    allowance: _HashAllowance,
) -> str | None:
    """Append the claim's findings; return its normalised relative path (None if outside)."""
    raw = claim.path
    posix = raw.replace("\\", "/")
    if os.path.isabs(posix) or raw.startswith("~"):
        findings.append(
            Finding("outside", raw, "absolute path: claims are relative to the workspace"))
        return None
    rel = _normalise(raw)
    if rel is None:
        findings.append(Finding("outside", raw, "path leaves the workspace"))
        return None
    target = root / rel
    try:
        # The path as written too: 'link/../x' normalises to 'x' but, with 'link' pointing out
        # of the workspace, names a file out there.
        resolved = {target.resolve(), (root / posix).resolve()}
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte, a lone surrogate
        findings.append(Finding("outside", raw, "path cannot be resolved"))
        return None
    if any(p != real_root and real_root not in p.parents for p in resolved):
        findings.append(Finding("outside", raw, "resolves outside the workspace (symlink)"))
        return None
    if any(p.relative_to(real_root).parts[:1] == (".burnless",) for p in resolved) or (
        rel.split("/", 1)[0] == ".burnless"
    ):
        findings.append(Finding("outside", raw, "inside burnless's own state directory"))
        return None
    if claim.action == "deleted":
        if os.path.lexists(target):
            findings.append(Finding("present", rel, "claimed deleted, still on disk"))
        elif not _was_there(rel, target, before):
            findings.append(Finding("unchanged", rel, "claimed deleted, not there before the run"))
        return rel
    try:
        st = os.stat(target)
    except OSError:
        findings.append(Finding("missing", rel, "claimed " + claim.action + ", not on disk"))
        return rel
    if not stat.S_ISREG(st.st_mode):
        findings.append(Finding("missing", rel, "not a regular file"))
        return rel
    if claim.bytes is not None and claim.bytes != st.st_size:
        findings.append(Finding("size", rel, f"claimed {claim.bytes} bytes, disk has {st.st_size}"))
    if claim.sha256 is not None and st.st_size > allowance.left:
        findings.append(Finding("hash", rel, f"not verified: {st.st_size} bytes to read, past "
                                             "the audit's hashing budget"))
    elif claim.sha256 is not None:
        allowance.left -= st.st_size
        digest = _hash(str(target), st.st_size)
        if digest != claim.sha256:
            disk = f"disk has {digest[:12]}…" if digest else "unreadable or changing on disk"
            findings.append(Finding("hash", rel, f"claimed {claim.sha256[:12]}…, {disk}"))
    if not _changed(rel, st, before, after, changed):
        findings.append(
            Finding("unchanged", rel, f"claimed {claim.action}, not changed in the run"))
    return rel


def _changed(
    rel: str, st: os.stat_result, before: Snapshot, after: Snapshot, changed: dict[str, str]
) -> bool:
    if rel in after.entries or rel in before.entries:
        return rel in changed
    # An ignored path (node_modules/...): no before-state, so fall back to the clock. The ctime
    # only: anyone can set an mtime (utime, an archive unpacked with clock skew), even ahead.
    return st.st_ctime_ns >= before.taken_ns


def _was_there(rel: str, target: Path, before: Snapshot) -> bool:
    """Whether a path gone after the run was there before it: a file or a directory the snapshot
    saw; else (an empty directory, an ignored path, one behind a symlinked directory) a removal
    changed the nearest directory left."""
    inside = rel + "/"
    if rel in before.entries or any(p.startswith(inside) for p in before.entries):
        return True
    for parent in target.parents:
        try:
            return os.stat(parent).st_ctime_ns >= before.taken_ns
        except OSError:
            continue
    return False


def _normalise(raw: str) -> str | None:
    """'./a//b/../c' -> 'a/c'; None when the path climbs out of the workspace."""
    parts: list[str] = []
    for part in PurePosixPath(raw.replace("\\", "/")).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) if parts else None


def run_verify(
    cmd: str,
    *,
    workspace: Path,
    env: Mapping[str, str],
    timeout: float,
    log_path: Path,
    mask: Callable[[str], str] | None,
) -> tuple[int | None, str]:
    """Run one verify command as a worker is run (argv, the scrubbed environment, its own
    process group, output to the call's log). Returns its exit code (None on timeout) and the
    last line it printed, masked. Ctrl-C stops the run, not only this command."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        return 2, f"cannot split command: {exc}"
    if not argv:
        return 2, "empty command"
    res = process.run(argv, cwd=workspace, env=env, timeout=timeout, log_path=log_path,
                      redact=mask)
    if res.interrupted:  # its group is already killed
        raise KeyboardInterrupt
    tail = (res.stderr_tail or res.stdout).strip().splitlines()
    last = tail[-1] if tail else res.start_error
    return res.exit_code, (mask(last) if mask is not None else last)[:200]
