"""The one subprocess runner: workers and verify commands both go through ``run``.

- argv lists only, never a shell; a new session (so a new process group) per child;
- stdin written from a thread, stdout and stderr drained by threads, so a large prompt or a
  chatty child cannot deadlock;
- output streamed to the run's log file as it arrives (redacted line by line when asked), stdout
  spooled to a temporary file that stays in memory only while small;
- on timeout, on Ctrl-C and after the child exits, the whole process group gets SIGTERM and,
  after a short grace, SIGKILL: no grandchild is left behind;
- a watchdog (``/bin/sh``, in its own session) holds the read end of a pipe from us: if we die
  without saying "done" (SIGKILL, OOM killer), it sees end-of-file and kills the group itself,
  so a worker never outlives burnless and goes on spending.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

GRACE_S = 2.0
_CHUNK = 1 << 16
_SPOOL_IN_MEMORY = 1 << 20
_TAIL = 4096


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when the child did not exit on its own (timeout, interrupt)
    stdout: str
    stderr_tail: str
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False
    start_error: str = ""  # the program could not be started at all

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.interrupted


class _Log:
    """Thread-safe, line-buffered writer of the run log, redacting each whole line."""

    def __init__(self, path: Path | None, redact: Callable[[str], str] | None) -> None:
        self._f: IO[bytes] | None = open(path, "ab") if path is not None else None
        self._redact = redact
        self._lock = threading.Lock()
        self._pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        if self._f is None:
            return
        if self._redact is None:
            with self._lock:
                self._f.write(data)
                self._f.flush()
            return
        buf = self._pending.get(stream, b"") + data
        cut = _hold_back(buf, buf.rfind(b"\n") + 1)
        self._pending[stream] = buf[cut:]
        if cut:
            self._emit(buf[:cut])

    def _emit(self, data: bytes) -> None:
        assert self._f is not None and self._redact is not None
        text = self._redact(data.decode("utf-8", errors="replace"))
        with self._lock:
            self._f.write(text.encode("utf-8"))
            self._f.flush()

    def close(self) -> None:
        if self._f is None:
            return
        if self._redact is not None:
            for rest in self._pending.values():
                if rest:
                    self._emit(rest)
        self._f.close()
        self._f = None


_PEM_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(rb"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_HOLD_MAX = 1 << 16


def _hold_back(buf: bytes, cut: int) -> int:
    """Where to cut ``buf`` for the log: whole lines, but never inside a private key whose END
    line has not arrived yet (masked line by line, its body would go out in clear). Past
    ``_HOLD_MAX`` bytes it lets go: the truncated-block rule of redaction still masks it."""
    begin = max(_PEM_BEGIN.finditer(buf, 0, cut), key=lambda m: m.start(), default=None)
    if begin is None or _PEM_END.search(buf, begin.end()) or len(buf) - begin.start() > _HOLD_MAX:
        return cut
    return buf.rfind(b"\n", 0, begin.start()) + 1


def kill_group(
    pgid: int, grace: float = GRACE_S, reap: Callable[[], object] | None = None
) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds.

    ``reap`` collects our own child once it exits, so a zombie leader does not keep the
    group looking alive for the whole grace period.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# $1 is the worker's process group. EOF without "done" means burnless died: TERM, then KILL.
_WATCHDOG = """trap '' INT HUP TERM
read -r line
[ "$line" = done ] && exit 0
kill -TERM -"$1" 2>/dev/null || exit 0
i=0
while [ "$i" -lt 20 ]; do
  sleep 0.1
  kill -0 -"$1" 2>/dev/null || exit 0
  i=$((i + 1))
done
kill -KILL -"$1" 2>/dev/null
exit 0
"""


def _start_watchdog(pgid: int) -> subprocess.Popen[bytes] | None:
    """A process that kills group ``pgid`` if we die before calling ``_stop_watchdog``."""
    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "burnless-watchdog", str(pgid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:  # pragma: no cover - no /bin/sh: run unguarded, as before
        return None


def _stop_watchdog(dog: subprocess.Popen[bytes] | None) -> None:
    if dog is None or dog.stdin is None:
        return
    try:
        dog.stdin.write(b"done\n")
        dog.stdin.close()
    except OSError:  # pragma: no cover - it died; nothing to stop
        pass
    try:
        dog.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:  # pragma: no cover
        dog.kill()


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    timeout: float | None = None,
    log_path: Path | None = None,
    redact: Callable[[str], str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion (or timeout / Ctrl-C) and return what happened."""
    log = _Log(log_path, redact)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or the env
        log.close()
        msg = f"cannot start {argv[0]!r}: {getattr(exc, 'strerror', None) or exc}"
        return ProcessResult(127, "", msg, time.monotonic() - started, start_error=msg)
    dog = _start_watchdog(proc.pid)

    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    tail = bytearray()
    threads = [
        threading.Thread(target=_drain, args=(proc.stdout, "out", log, spool, None, on_line)),
        threading.Thread(target=_drain, args=(proc.stderr, "err", log, None, tail, on_line)),
    ]
    if stdin is not None:
        threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin)))
    for t in threads:
        t.daemon = True
        t.start()

    timed_out = interrupted = False
    try:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # Kill the group even after a normal exit: grandchildren must not outlive the call
        # (nor hold our pipes open).
        kill_group(proc.pid, reap=proc.poll)
        try:
            proc.wait(timeout=GRACE_S + 1)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
            pass
        for t in threads:
            t.join(timeout=GRACE_S + 1)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        _stop_watchdog(dog)
        log.close()

    spool.seek(0)
    stdout = spool.read().decode("utf-8", errors="replace")
    spool.close()
    code = proc.returncode
    return ProcessResult(
        exit_code=None if (timed_out or interrupted) else code,
        stdout=stdout,
        stderr_tail=bytes(tail).decode("utf-8", errors="replace"),
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        interrupted=interrupted,
    )


def _feed(pipe: IO[bytes] | None, data: bytes) -> None:
    if pipe is None:
        return
    try:
        pipe.write(data)  # a blocking buffered write: the reader threads keep the child moving
        pipe.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the child stopped reading; its exit status tells the rest
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _drain(
    pipe: IO[bytes] | None,
    stream: str,
    log: _Log,
    spool: IO[bytes] | None,
    tail: bytearray | None,
    on_line: Callable[[str], None] | None,
) -> None:
    if pipe is None:
        return
    fd = pipe.fileno()
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except OSError:
            break
        if not chunk:
            break
        log.write(stream, chunk)
        if spool is not None:
            spool.write(chunk)
        if tail is not None:
            tail.extend(chunk)
            del tail[:-_TAIL]
        if on_line is not None:
            text = chunk.decode("utf-8", errors="replace")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if lines:
                on_line(lines[-1].strip()[:200])
