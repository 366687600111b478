"""The one subprocess runner: workers and verify commands both go through ``run``.

- argv lists only, never a shell; the child runs under a per-call supervisor (``supervisor``)
  in a new session, in a process group of its own;
- stdin written from a thread, stdout and stderr drained by threads, so a large prompt or a
  chatty child cannot deadlock;
- output streamed to the run's log file as it arrives (redacted line by line when asked; a
  very long line in bounded windows, in linear time), stdout spooled to a temporary file that
  stays in memory only while small;
- nothing the child starts outlives the call: when it exits, on timeout and on Ctrl-C the
  supervisor sends SIGTERM to every live descendant (a ``setsid`` daemon included: it is the
  descendants' subreaper) and SIGKILL after a short grace; zombies are reaped, not waited for;
- if burnless dies without cleaning up (SIGKILL, OOM killer), the supervisor sees end-of-file
  on a pipe only burnless holds and does the same, so a worker never goes on spending;
- the pipes are read to end-of-file before they are closed: all the output is logged and
  parsed, however slowly the log is written.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from burnless import supervisor

GRACE_S = supervisor.GRACE_S
_CHUNK = 1 << 16
_SPOOL_IN_MEMORY = 1 << 20
_TAIL = 4096
_POLL_MS = 200  # how often a blocked reader or writer looks whether it was told to stop
# Imported rather than run as a script, so that its cached bytecode is used (a script is
# compiled on every start); its directory is on sys.path only while it is being imported.
_HERE = str(Path(supervisor.__file__).parent)
_SUPERVISE = (
    f"import sys; sys.path.insert(0, {_HERE!r}); import supervisor; del sys.path[0]; "
    "sys.exit(supervisor.main(sys.argv[1:]))"
)


@dataclass(frozen=True)
class ProcessResult:
    """How a worker process ended and what it wrote."""
    exit_code: int | None  # None when the child did not exit on its own (timeout, interrupt)
    stdout: str
    stderr_tail: str
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False
    start_error: str = ""  # the program could not be started at all
    log_error: str = ""  # the run log could not be written (whole): why
    stopped: str = ""  # the watcher stopped the worker: why

    @property
    def halted(self) -> bool:
        return bool(self.stopped)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.interrupted


# A line longer than _WINDOW + _REACH is logged in pieces of about _WINDOW bytes, each redacted
# on its own, so its cost stays linear and its memory bounded. A piece ends at a cut where
# redacting the text around it (_REACH bytes each side) gives the same as redacting each side
# alone: no secret straddles the cut, and none needs context from across it. _REACH is the
# longest secret (with its context) this covers; the longest is a PEM private key block, about
# 1.7 KB for RSA 2048 and 6.5 KB for RSA 8192 with its newlines JSON-escaped.
_WINDOW = 1 << 20
_REACH = 1 << 16
_CUT_TRIES = 8  # cuts tried, _CUT_STEP apart, before waiting for more text
_CUT_STEP = 1 << 12
_SNAP = 512  # a cut moves back to just after a space, tab, quote or comma this close
_SEPARATORS = (b" ", b"\t", b'"', b",")
# Past this, a line with no clean cut anywhere (a wall of secrets) is cut anyway: masked
# pieces, but a secret straddling that one cut may lose its mask there.
_WINDOW_MAX = 1 << 23


class _Pending:
    """What a stream has sent and the log has not written yet."""

    __slots__ = ("buf", "nl", "retry_at")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.nl = -1  # index of the last newline in buf
        self.retry_at = 0  # no clean cut was found: try again once buf is this long


class _Log:
    """Thread-safe writer of the run log, redacting whole lines (long ones in windows)."""

    def __init__(self, path: Path | None, redact: Callable[[str], str] | None) -> None:
        self._f: IO[bytes] | None = open(path, "ab") if path is not None else None
        self._redact = redact
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}  # each touched by its own reader thread only
        self.error: OSError | None = None  # the first write that failed (a full disk)

    def write(self, stream: str, data: bytes) -> None:
        if self._f is None:
            return
        if self._redact is None:
            self._write(data)
            return
        st = self._pending.setdefault(stream, _Pending())
        buf = st.buf
        start = len(buf)
        buf += data
        nl = buf.rfind(b"\n", start)  # only the new bytes: the rest was searched before
        if nl >= 0:
            st.nl = nl
        if st.nl >= 0:
            self._take(st, _hold_back(buf, st.nl + 1))
        while len(buf) >= max(_WINDOW + _REACH, st.retry_at):
            cut = self._cut(buf)
            if not cut:
                st.retry_at = len(buf) + _WINDOW // 4
                break
            self._take(st, cut)

    def _take(self, st: _Pending, cut: int) -> None:
        if cut <= 0:
            return
        self._emit(st.buf[:cut])
        del st.buf[:cut]  # bytearray: dropping a prefix is cheap, no quadratic copying
        st.nl = st.nl - cut if st.nl >= cut else -1
        st.retry_at = 0

    def _cut(self, buf: bytearray) -> int:
        """Where to end the next piece of an unfinished line, or 0 to wait for more text."""
        target = len(buf) - _REACH
        for i in range(_CUT_TRIES):
            at = _snap(buf, target - i * _CUT_STEP)
            if at > _REACH and self._clean_cut(buf, at):
                return at
        return _snap(buf, target) if len(buf) >= _WINDOW_MAX else 0

    def _clean_cut(self, buf: bytearray, at: int) -> bool:
        assert self._redact is not None
        left = buf[at - _REACH : at].decode("utf-8", errors="replace")
        right = buf[at : at + _REACH].decode("utf-8", errors="replace")
        both = left + right
        masked = self._redact(both)
        if masked == both:
            return True  # nothing to mask anywhere near the cut
        return masked == self._redact(left) + self._redact(right)

    def _emit(self, data: bytes | bytearray) -> None:
        assert self._redact is not None
        self._write(self._redact(data.decode("utf-8", errors="replace")).encode("utf-8"))

    def _write(self, data: bytes) -> None:
        """Append to the log. A failed write (ENOSPC, EIO) is kept and the log given up: the
        readers go on draining the worker's pipes, so the call is not stalled by its log."""
        with self._lock:
            if self._f is None or self.error is not None:
                return
            try:
                self._f.write(data)
                self._f.flush()
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        if self._f is None:
            return
        if self._redact is not None:
            for st in self._pending.values():
                if st.buf:
                    self._emit(st.buf)
        try:
            self._f.close()
        except OSError as exc:
            self.error = self.error or exc
        self._f = None


def _snap(buf: bytearray, at: int) -> int:
    """``at`` moved back to just after a separator when one is near, never inside a UTF-8
    character: a cut between words keeps masks and secrets whole more often."""
    best = max(buf.rfind(sep, max(0, at - _SNAP), at) for sep in _SEPARATORS)
    if best >= 0:
        return best + 1
    while at > 0 and buf[at] & 0xC0 == 0x80:
        at -= 1
    return at


_PEM_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(rb"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_HOLD_MAX = 1 << 16


def _hold_back(buf: bytes | bytearray, cut: int) -> int:
    """Where to cut ``buf`` for the log: whole lines, but never inside a private key whose END
    line has not arrived yet (masked line by line, its body would go out in clear). Past
    ``_HOLD_MAX`` bytes it lets go: the truncated-block rule of redaction still masks it."""
    begin = max(_PEM_BEGIN.finditer(buf, 0, cut), key=lambda m: m.start(), default=None)
    if begin is None or _PEM_END.search(buf, begin.end()) or len(buf) - begin.start() > _HOLD_MAX:
        return cut
    return buf.rfind(b"\n", 0, begin.start()) + 1


def _group_alive(pgid: int) -> bool:
    """Whether group ``pgid`` has a member that can still run: zombies cannot."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    return any(p.pgid == pgid and p.state not in "ZX" for p in supervisor.all_procs())


def kill_group(
    pgid: int, grace: float = GRACE_S, reap: Callable[[], object] | None = None
) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds.

    ``reap`` collects our own child once it exits. A group whose only members are zombies is
    finished: waiting for them would wait the whole grace period for nothing.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not _group_alive(pgid):
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class _Status:
    """What the supervisor said: the worker's pid, why it could not start, whether it is done."""

    worker: int = 0
    error: str = ""
    done: bool = False


def _read_status(fd: int) -> _Status:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(fd)
    worker, error, done = 0, "", False
    for line in b"".join(chunks).decode("utf-8", errors="replace").splitlines():
        word, _, rest = line.partition(" ")
        if word == "pid" and rest.isdigit():
            worker = int(rest)
        elif word == "error":
            error = rest.partition(" ")[2] or rest
        elif word == "done":
            done = True
    return _Status(worker, error, done)


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
    watch: Callable[[bytes], str | None] | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion (or timeout / Ctrl-C) and return what happened.

    ``watch`` sees each line of stdout as it arrives (lines up to 1 MiB); when it returns a
    reason, the worker is stopped as on a timeout and the result says why (``stopped``)."""
    started = time.monotonic()
    env = dict(env)
    for name, value in env.items():
        why = ("contains a NUL byte" if "\0" in name + value
               else "is not a valid name" if "=" in name or not name else "")
        if why:
            msg = f"cannot start {argv[0]!r}: environment variable {name!r} {why}"
            return ProcessResult(127, "", msg, time.monotonic() - started, start_error=msg)
    log = _Log(log_path, redact)
    ctl_r, ctl_w = os.pipe()  # we hold the write end: its end-of-file tells the supervisor to stop
    status_r, status_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SUPERVISE, str(ctl_r), str(status_w), *argv],
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            pass_fds=(ctl_r, status_w),
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or the env
        for fd in (ctl_w, status_r):
            os.close(fd)
        log.close()
        msg = f"cannot start {argv[0]!r}: {getattr(exc, 'strerror', None) or exc}"
        return ProcessResult(127, "", msg, time.monotonic() - started, start_error=msg)
    finally:
        os.close(ctl_r)
        os.close(status_w)

    spool = _Spool(_SPOOL_IN_MEMORY)
    tail = bytearray()
    stop = threading.Event()
    halt = _Halt(watch)
    threads = [
        threading.Thread(
            target=_drain, args=(proc.stdout, "out", log, spool, None, on_line, stop, halt)
        ),
        threading.Thread(target=_drain,
                         args=(proc.stderr, "err", log, None, tail, on_line, stop, None)),
    ]
    if stdin is not None:
        threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin, stop)))
    for t in threads:
        t.daemon = True
        t.start()

    timed_out = interrupted = False
    try:
        try:
            _write_all(ctl_w, supervisor.encode_env(env))
        except OSError:  # it died at once: its status (or its absence) says why
            pass
        timed_out = not _await_exit(proc, timeout, halt if watch is not None else None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        os.close(ctl_w)  # if the worker still runs, the supervisor now stops it and its own
        if not _await_exit(proc, GRACE_S + supervisor.GIVE_UP_S + 2, None):
            proc.kill()  # pragma: no cover - a supervisor that hangs
            proc.wait()
        status = _read_status(status_r)
        if status.worker and not status.done:
            # The supervisor died before clearing up (something killed it): the worker's
            # process group is what can still be found from here.
            kill_group(status.worker)
        _join(threads, stop)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        log.close()

    stdout = spool.read_all().decode("utf-8", errors="replace")
    spool.close()
    duration = time.monotonic() - started
    tail_text = bytes(tail).decode("utf-8", errors="replace")
    if not status.worker and not interrupted:  # the program never ran
        msg = f"cannot start {argv[0]!r}: " + (
            status.error or f"the process supervisor failed (exit {proc.returncode}): "
            + tail_text.strip()[-200:]
        )
        return ProcessResult(127, "", msg, duration, start_error=msg)
    return ProcessResult(
        exit_code=None if (timed_out or interrupted) else proc.returncode,
        stdout=stdout,
        stderr_tail=tail_text,
        duration_s=duration,
        timed_out=timed_out,
        interrupted=interrupted,
        log_error=f"{log_path}: {log.error.strerror or log.error}" if log.error else "",
        stopped=halt.why,
    )


class _Halt:
    """Feeds whole stdout lines to a watcher; holds its reason to stop the worker."""

    MAX_LINE = 1 << 20  # a longer line is a tool's output, never a usage event: not watched

    def __init__(self, watch: Callable[[bytes], str | None] | None) -> None:
        self.watch = watch
        self.reason = threading.Event()
        self.why = ""
        self._line = bytearray()
        self._skip = False  # inside a line too long to watch

    def feed(self, chunk: bytes) -> None:
        assert self.watch is not None
        start = 0
        while not self.reason.is_set():
            nl = chunk.find(b"\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl]
            if not self._skip:
                self._line += piece
                if len(self._line) > self.MAX_LINE:
                    self._skip, self._line = True, bytearray()
            if nl < 0:
                return
            if not self._skip and self._line:
                why = self.watch(bytes(self._line))
                if why:
                    self.why = why
                    self.reason.set()
            self._line, self._skip = bytearray(), False
            start = nl + 1


def _await_exit(proc: subprocess.Popen[bytes], timeout: float | None, halt: _Halt | None) -> bool:
    """Wait until ``proc`` exits (True), ``timeout`` passes (False), or ``halt`` asks to stop
    it (True). On Linux a pidfd wakes us the moment it exits: ``Popen.wait(timeout)`` polls with
    growing sleeps, which added up to ~10 ms to every short call."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux, or an old kernel: Popen's own polling
        fd = -1
    try:
        poller = select.poll()
        if fd >= 0:
            poller.register(fd, select.POLLIN)
        while True:
            if proc.poll() is not None:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if halt is not None and halt.reason.is_set():
                return True  # the watcher asked to stop the worker
            step = 0.02 if halt is not None or fd < 0 else left
            wait_ms = None if step is None else max(0, int(min(step, left or step) * 1000))
            if fd >= 0:
                poller.poll(wait_ms)
            elif halt is not None:
                halt.reason.wait(step)
            else:
                try:
                    proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    return False
    finally:
        if fd >= 0:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _join(threads: list[threading.Thread], stop: threading.Event) -> None:
    """Wait for the readers to reach end-of-file. Once the worker's processes are all gone
    that is immediate; one that escaped (outside Linux, or by killing the supervisor) may hold
    a pipe open: after the grace period the readers take what is there and leave. A pipe is
    never closed under a thread still using it."""
    deadline = time.monotonic() + GRACE_S
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    for t in threads:
        t.join()


def _feed(pipe: IO[bytes] | None, data: bytes, stop: threading.Event) -> None:
    if pipe is None:
        return
    fd = pipe.fileno()
    try:
        os.set_blocking(fd, False)
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        view = memoryview(data)
        while view and not stop.is_set():
            if not poller.poll(_POLL_MS):
                continue
            try:
                view = view[os.write(fd, view[:_CHUNK]) :]
            except BlockingIOError:
                continue
    except OSError:
        pass  # the child stopped reading (EPIPE); its exit status tells the rest
    finally:
        try:
            pipe.close()
        except OSError:
            pass


class _Spool:
    """The worker's stdout: in memory up to ``limit`` bytes, then in an anonymous temporary
    file (``tempfile.SpooledTemporaryFile``'s job, without importing tempfile, shutil and the
    compression modules shutil pulls in on every run)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.file: IO[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        if self.file is None and len(self.buf) + len(chunk) <= self.limit:
            self.buf.extend(chunk)
            return
        if self.file is None:
            import tempfile

            self.file = tempfile.TemporaryFile()
            self.file.write(self.buf)
            self.buf = bytearray()
        self.file.write(chunk)

    def read_all(self) -> bytes:
        if self.file is None:
            return bytes(self.buf)
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _drain(
    pipe: IO[bytes] | None,
    stream: str,
    log: _Log,
    spool: _Spool | None,
    tail: bytearray | None,
    on_line: Callable[[str], None] | None,
    stop: threading.Event,
    halt: _Halt | None,
) -> None:
    if pipe is None:
        return
    fd = pipe.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    give_up = 0.0
    while True:
        if stop.is_set():
            # Told to stop: what holds the pipe escaped the clean-up. Take what is there.
            give_up = give_up or time.monotonic() + GRACE_S
            if time.monotonic() > give_up or not poller.poll(0):
                break
        elif not poller.poll(_POLL_MS):
            continue
        try:
            chunk = os.read(fd, _CHUNK)
        except OSError:
            break
        if not chunk:
            break
        log.write(stream, chunk)
        if halt is not None and halt.watch is not None:
            halt.feed(chunk)
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
