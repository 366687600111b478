"""The resident process behind ``burnless daemon start``: burnless imported once, a child forked
per ``burnless run``.

``burnless.resident`` is the client side and describes the protocol. The daemon imports what a
run imports, then waits on its socket. For each request it checks who is asking (the same
user, by the socket's peer credentials), that the client runs the same burnless from the same
files with the same interpreter and ``sys.path``, and that none of the files it imported
changed since; anything else is refused, and the client runs the command itself. Then it
forks. The child takes the client's standard streams, working directory (both as file
descriptors), environment, umask, resource limits,
``sys.argv`` and ``sys.path``, and runs ``burnless.entry.main`` exactly as the client's own
process would have; it reports its exit code on the socket. The daemon reports a child that
died of a signal. It forks from one thread only, keeps no copy of a client's file descriptors,
and stops after ``idle`` seconds without a command, on ``burnless daemon stop`` or on
SIGTERM; a command running then finishes first. When its code changed on disk it refuses the
command, finishes those it runs, and starts again from the new code (``exec``, same pid).

Nothing about a command is logged except its child's pid and exit status: its command line
and environment may hold secrets.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import io
import locale
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

from burnless import __version__, resident

# What ``burnless run`` imports, at start-up and during a turn (``python -X importtime``).
_PRELOAD = (
    "burnless.entry", "burnless.cli.fast", "burnless.cli.runturn", "burnless.cli.progress",
    "burnless.agent", "burnless.audit", "burnless.calls", "burnless.recovery",
    "burnless.workers", "burnless.workers.claude_code", "burnless.workers.kinds",
    "burnless.formats.claude", "burnless.formats.codex", "burnless.formats.gemini",
    "burnless.formats.detect", "burnless.formats.text", "burnless.session.compaction",
    "burnless.session.context", "burnless.routing.ladder", "burnless.routing.breaker",
    "burnless.safety.environment", "burnless.safety.nesting", "burnless.safety.policy",
    "burnless.safety.sensitivity", "burnless.workers.command",
)
_MAX_REQUEST = 8 << 20


class Daemon:
    """One resident process serving one socket."""

    def __init__(self, path: str, idle: float, log: Any = None) -> None:
        self.path = path
        self.idle = idle
        self.log = log or sys.stderr
        self.children: dict[int, socket.socket] = {}
        self.stopping = False
        self.restart = False  # its files changed: start again, from them, once stopped
        self.watched: dict[str, int] = {}
        self.listener: socket.socket | None = None
        self.inode: tuple[int, int] | None = None
        self.wake: tuple[int, int] = (-1, -1)  # the pipe signals wake the loop through

    # ------------------------------------------------------------------ set-up

    def preload(self) -> None:
        for name in _PRELOAD:
            importlib.import_module(name)
        pkg = resident.package_dir() + os.sep
        for mod in list(sys.modules.values()):
            f = getattr(mod, "__file__", None)
            if f and f.startswith(pkg):
                self.watched[f] = os.stat(f).st_mtime_ns
        gc.collect()
        gc.freeze()  # children then share these pages instead of copying them at the first GC

    def bind(self) -> None:
        """Listen at ``path`` (0600, in a folder made 0700), replacing a socket no daemon
        answers on; RuntimeError when one does."""
        folder = os.path.dirname(self.path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if os.path.exists(self.path):
            if resident.ask(self.path, "PING", timeout=2.0):
                raise RuntimeError(f"a daemon is already running on {self.path}")
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mask = os.umask(0o177)
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            hint = ("; a Unix socket's path takes at most 107 bytes: set BURNLESS_HOME to a "
                    "shorter folder" if len(os.fsencode(self.path)) > 107 else "")
            raise RuntimeError(f"cannot listen at {self.path}: {exc.strerror or exc}{hint}"
                               ) from None
        finally:
            os.umask(mask)
        sock.listen(64)
        st = os.stat(self.path)
        self.inode = (st.st_dev, st.st_ino)
        self.listener = sock

    # ------------------------------------------------------------------ the loop

    def serve(self) -> None:
        assert self.listener is not None
        wake_r, wake_w = self.wake = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._stop_on_signal)
        self._say(f"serving {self.path} (pid {os.getpid()}, burnless {__version__}, "
                  f"idle {self.idle:g} s)")
        last = time.monotonic()
        try:
            while not (self.stopping and not self.children):
                if self.stopping and self.listener is not None:
                    # New callers find no socket and run the command themselves at once,
                    # instead of waiting for the commands still running here.
                    self.close()
                timeout = None
                if not self.children and not self.stopping and self.idle > 0:
                    timeout = last + self.idle - time.monotonic()
                    if timeout <= 0:
                        self._say("idle: stopping")
                        break
                watch: list[Any] = [wake_r] if self.listener is None else [wake_r, self.listener]
                try:
                    ready, _, _ = select.select(watch, [], [], timeout)
                except InterruptedError:
                    ready = []
                if wake_r in ready:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                if self._reap():
                    last = time.monotonic()
                if self.listener is not None and self.listener in ready:
                    try:
                        conn, _ = self.listener.accept()
                    except OSError:
                        continue
                    self._handle(conn)
                    last = time.monotonic()
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
            self.close()

    def close(self) -> None:
        """Stop listening and remove the socket, if it is still this daemon's."""
        if self.listener is None:
            return
        self.listener.close()
        self.listener = None
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self.inode:
                os.unlink(self.path)
        except OSError:
            pass

    def _stop_on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self.log.write(f"{stamp} burnless daemon: {text}\n")
            self.log.flush()
        except (OSError, ValueError):
            pass

    def _reap(self) -> bool:
        reaped = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped = True
            conn = self.children.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            self._say(f"child {pid} ended: " + (f"signal {-code}" if code < 0 else f"exit {code}"))
            if conn is None:
                continue
            if code < 0:  # a child that exited sent its own code before it did
                try:
                    conn.sendall(f"signal {-code}\n".encode())
                except OSError:
                    pass
            conn.close()
        return reaped

    # ------------------------------------------------------------------ one request

    def _handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            # Linux says who connected; elsewhere the socket's mode (0600) alone keeps others out.
            peercred = getattr(socket, "SO_PEERCRED", None)
            uid = os.getuid()
            if peercred is not None:
                creds = conn.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
                _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.getuid():
                self._say(f"refused a connection from uid {uid}")
                conn.close()
                return
            conn.settimeout(5.0)
            data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 4)
            if len(data) < 4:
                raise ValueError("a truncated request")
            size = int.from_bytes(data[:4], "big")
            if size > _MAX_REQUEST:
                raise ValueError("a request over 8 MiB")
            body = bytearray(data[4:])
            while len(body) < size:
                chunk = conn.recv(min(1 << 20, size - len(body)))
                if not chunk:
                    raise ValueError("a truncated request")
                body += chunk
            req = resident.parse_request(bytes(body[:size]))
        except (OSError, ValueError) as exc:
            self._say(f"refused a request: {exc}")
            _close_all(fds)
            _reply(conn, f"refused malformed: {exc}")
            conn.close()
            return
        kind = req["kind"]
        if kind == "PING":
            _reply(conn, f"pong {os.getpid()} {__version__} {self.path}")
        elif kind == "STOP":
            self.stopping = True
            _reply(conn, "stopping")
            self._say("asked to stop")
        elif kind != "RUN":
            _reply(conn, "refused unknown")
        else:
            why = self._refusal(req, fds)
            if why:
                self._say(f"refused a command: {why}")
                _reply(conn, f"refused {why}")
                if why == "stale":
                    self.stopping = self.restart = True
            else:
                pid = self._fork(conn, req, fds)
                self.children[pid] = conn
                self._say(f"child {pid} started")
                _close_all(fds)
                return
        _close_all(fds)
        conn.close()

    def _refusal(self, req: dict[str, Any], fds: list[int]) -> str | None:
        if len(fds) != 4:
            return "malformed: expected the client's standard streams and folder"
        if req["identity"] != resident.identity():
            return "mismatch"
        for name, (_soft, hard) in req["limits"].items():
            # The child takes on the client's limits; it can lower a hard limit, not raise it.
            own = resource.getrlimit(getattr(resource, name))[1]
            if os.geteuid() != 0 and own != resource.RLIM_INFINITY and (
                    hard == resource.RLIM_INFINITY or hard > own):
                return "limits"
        for path, mtime in self.watched.items():
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return "stale"
            except OSError:
                return "stale"
        return None

    def _fork(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 70
        try:
            signal.set_wakeup_fd(-1)
            for fd in self.wake:
                os.close(fd)
            if self.listener is not None:
                self.listener.close()
            for other in self.children.values():
                other.close()
            code = _child(conn, req, fds)
        finally:
            os._exit(code)


def _child(conn: socket.socket, req: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: become the client's process, run the command, report its code."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    into_place(fds)
    enc = req["streams"]
    sys.stdin = _stream(0, "rb", enc[0], enc[1] or "strict", False)
    sys.stdout = _stream(1, "wb", enc[2], enc[3] or "strict", os.isatty(1))
    sys.stderr = _stream(2, "wb", enc[4], enc[5] or "backslashreplace", True)
    for name in ("stdin", "stdout", "stderr"):  # the originals, which code may fall back to
        setattr(sys, f"__{name}__", getattr(sys, name))
    os.environ.clear()
    os.environ.update(req["env"])
    os.umask(req["umask"])
    for name, pair in req["limits"].items():
        resource.setrlimit(getattr(resource, name), pair)
    try:
        locale.setlocale(locale.LC_CTYPE, "")  # as the interpreter does at start, from the env
    except locale.Error:
        pass
    resident.SERVING = True  # this process is the daemon's child: never delegate again
    sys.argv = list(req["argv"])
    sys.path[:] = req["path"]
    conn.settimeout(None)
    try:
        conn.sendall(f"started {os.getpid()}\n".encode())
    except OSError:
        return 0  # the client is gone before anything started: run nothing
    threading.Thread(target=_relay_signals, args=(conn,), daemon=True,
                     name="burnless-daemon-signals").start()
    code = _run_entry()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the client, gone once it has the code, is no signal
    try:
        conn.sendall(f"exit {code}\n".encode())
    except OSError:
        pass
    return code


def into_place(fds: list[int]) -> None:
    """Make the client's descriptors (stdin, stdout, stderr, folder) this process's 0, 1, 2
    and working directory, closing the received copies. One received as 0, 1 or 2 (a daemon
    started with a standard stream closed) is moved out of the way first, so that no move
    overwrites a descriptor before its own turn."""
    fds[:] = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3) if fd < 3 else fd for fd in fds]
    os.fchdir(fds[3])
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    _close_all(fds)


def _stream(fd: int, mode: str, encoding: str, errors: str, line_buffering: bool
            ) -> io.TextIOWrapper:
    """A standard stream over ``fd``, as the interpreter makes them (the client's encoding)."""
    raw = io.open(fd, mode, closefd=False)  # noqa: UP020 - buffered bytes, as the interpreter
    return io.TextIOWrapper(raw, encoding=encoding or None, errors=errors, newline="\n",
                            line_buffering=line_buffering, write_through=fd == 2)


def _run_entry() -> int:
    """``burnless.entry.main()`` as the interpreter would run it: its exit code."""
    import atexit
    import traceback

    from burnless import entry

    code: int
    try:
        entry.main()
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            _write_err(f"{exc.code}\n")
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 130
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught error
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _write_err(text: str) -> None:
    try:
        sys.stderr.write(text)
    except (OSError, ValueError):
        pass


def _relay_signals(conn: socket.socket) -> None:
    """The client's signals, raised in this process; the client gone counts as SIGTERM."""
    buf = b""
    names = {b"INT": signal.SIGINT, b"TERM": signal.SIGTERM, b"HUP": signal.SIGHUP}
    while True:
        try:
            chunk = conn.recv(256)
        except OSError:
            chunk = b""
        if not chunk:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        buf += chunk
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            sig = names.get(line.strip())
            if sig is not None:
                os.kill(os.getpid(), sig)


def _reply(conn: socket.socket, line: str) -> None:
    try:
        conn.sendall(line.encode("utf-8", "replace") + b"\n")
    except OSError:
        pass


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def run(path: str, idle: float, log: Any = None) -> None:
    """Serve ``path`` in this process until stopped (``burnless daemon start --foreground``).
    When its files changed on disk (burnless upgraded or edited), it finishes the commands it
    runs, then starts again in the same process from the files as they are now."""
    d = Daemon(path, idle, log)
    d.preload()
    d.bind()
    d.serve()
    if d.restart:
        d._say("its files changed: starting again from them")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "burnless", "daemon", "start",
                                  "--foreground", "--idle", repr(idle)])
