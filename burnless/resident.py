"""``burnless run`` through a resident process: the client side, imported before anything heavy.

``burnless daemon start`` keeps one Python process with burnless already imported
(``burnless.daemon``). When it runs, ``burnless run`` does not import burnless itself: it hands
the daemon its command line, working directory, environment, umask and its own standard input,
output and error (the file descriptors, passed over a Unix socket), and the daemon forks a
child that runs the command exactly as this process would have, writing straight to this
process's terminal or pipes. This process waits, passes Ctrl-C, SIGTERM and SIGHUP on, and
exits with the child's exit code. Start-up is then the interpreter plus this module, instead of
the interpreter plus about 75 ms of imports.

Without a daemon (no socket, or ``BURNLESS_NO_DAEMON`` set) this costs one ``stat``. A daemon
that refuses the request (started from other code, another interpreter or ``sys.path``, or from
files changed since) has started nothing, so the command runs in this process as usual.

The protocol, on a stream socket at ``$BURNLESS_HOME/daemon.sock`` (created 0600, and the
daemon serves only its own user): the request is a 4-byte big-endian length, then NUL-separated
fields (UTF-8 with surrogate escapes); the file descriptors (standard input, output, error and
the working directory) ride on its first bytes. Replies are
lines: ``started PID``, ``exit CODE`` (from the child), ``signal N`` (from the daemon, when the
child died of a signal), ``refused REASON``, ``pong PID VERSION SOCKET``, ``stopping``. The client
sends ``INT``, ``TERM`` or ``HUP`` lines to pass a signal on; the child treats the socket's
end (this process killed) as SIGTERM.
"""

from __future__ import annotations

import os
import sys

from burnless import __version__

TYPE_CHECKING = False  # not typing's: it costs this start-up path a few milliseconds
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

SOCKET_NAME = "daemon.sock"
NO_DAEMON_ENV = "BURNLESS_NO_DAEMON"
MAGIC = "burnless-daemon-1"
# How long the client waits for the daemon's first answer. A daemon that answers later may
# still start the command, so the client then fails instead of running it a second time.
ANSWER_TIMEOUT = 10.0
_FORWARDED = ("INT", "TERM", "HUP")
_RLIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
            "RLIMIT_MEMLOCK", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_STACK")
# True in the daemon's child, which runs the command itself.
SERVING = False


def home_dir() -> str:
    """The user's burnless folder: ``$BURNLESS_HOME``, else ``$XDG_CONFIG_HOME/burnless``
    (where the user's config and ledger live too: ``config.global_config_path`` asks here,
    so that this start-up path need not import the configuration to find it)."""
    home = os.environ.get("BURNLESS_HOME")
    if home:
        return home
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(xdg, "burnless")


def socket_path() -> str:
    return os.path.join(home_dir(), SOCKET_NAME)


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def identity() -> list[str]:
    """What must match between client and daemon: burnless's version and files, the
    interpreter, and where imports come from (``sys.path`` without its first entry, the
    script's folder or the current one, which the child replaces)."""
    return [__version__, sys.version, repr(sys.flags), repr(sys.warnoptions),
            repr(sorted(sys._xoptions.items())), package_dir(),
            sys.executable, *sys.path[1:]]


def delegates(argv: Sequence[str]) -> bool:
    """Whether this command line goes to a running daemon: ``run`` commands only."""
    head = list(argv[:3])
    return ("run" in head and "serve" not in head and not SERVING
            and not os.environ.get(NO_DAEMON_ENV))


def delegate(argv: Sequence[str]) -> int | None:
    """Run ``burnless`` ``argv`` in the daemon's child: its exit code, or None when no daemon
    took it (nothing started; run it here)."""
    path = socket_path()
    if not os.path.exists(path):
        return None
    # _socket, not socket: socket.py imports enum and selectors, about 5 ms of this path.
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    here = -1
    try:
        try:
            sock.connect(path)
            # The working directory goes as a descriptor too: the child enters this very
            # folder, even where its path names another one (a renamed folder, a container).
            here = os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, here))
            request = _request("RUN", argv)
            sent = sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            if sent < len(request):  # (an empty send to a daemon that answered and closed
                sock.sendall(request[sent:])  # would fail, and lose its answer)
        except OSError:
            return None  # no daemon answers (gone without removing its socket), or it refused
            # the request before reading it: nothing started
        return _follow(sock)
    finally:
        sock.close()
        if here >= 0:
            os.close(here)


def ask(path: str, kind: str, timeout: float = ANSWER_TIMEOUT) -> str | None:
    """Send the daemon a request without a command (``PING``, ``STOP``): its answer line, or
    None when no daemon answers at ``path``."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(_request(kind, []))
            return _line(sock, b"")[0] or None
    except OSError:
        return None


def pong(answer: str | None) -> tuple[int, str, str] | None:
    """A daemon's answer to ``PING`` read: its pid, burnless version and socket; None when it
    is no such answer (no daemon, or one speaking another protocol)."""
    fields = (answer or "").split(" ", 3)
    if len(fields) != 4 or fields[0] != "pong" or not fields[1].isdigit():
        return None
    return int(fields[1]), fields[2], fields[3]


def _request(kind: str, argv: Sequence[str]) -> bytes:
    if kind != "RUN":  # a question for the daemon itself: nothing about this process
        body = f"{MAGIC}\0{kind}".encode()
        return len(body).to_bytes(4, "big") + body
    mask = os.umask(0)
    os.umask(mask)
    streams = [getattr(s, a, None) or "" for s in (sys.stdin, sys.stdout, sys.stderr)
               for a in ("encoding", "errors")]
    ident = identity()
    fields = [MAGIC, kind, *streams, str(mask), limits(), str(len(argv)), *argv,
              str(len(sys.path)), *sys.path, str(len(ident)), *ident,
              *(f"{k}={v}" for k, v in os.environ.items())]
    body = "\0".join(fields).encode("utf-8", "surrogateescape")
    return len(body).to_bytes(4, "big") + body


def limits() -> str:
    """This process's resource limits (``ulimit``), which the daemon's child takes on:
    ``NAME=soft,hard`` separated by ``;`` (-1: unlimited)."""
    import resource

    return ";".join(f"{n}={','.join(map(str, resource.getrlimit(getattr(resource, n))))}"
                    for n in _RLIMITS if hasattr(resource, n))


def parse_limits(text: str) -> dict[str, tuple[int, int]]:
    out = {}
    for item in filter(None, text.split(";")):
        name, _, pair = item.partition("=")
        soft, _, hard = pair.partition(",")
        if name not in _RLIMITS:
            raise ValueError(f"an unknown resource limit {name!r}")
        out[name] = (int(soft), int(hard))
    return out


def parse_request(body: bytes) -> dict[str, Any]:
    """The daemon's reading of a request body (after its length): ValueError if malformed."""
    fields = body.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) < 2 or fields[0] != MAGIC:
        raise ValueError("not a burnless daemon request (another version?)")
    kind = fields[1]
    if kind != "RUN":
        return {"kind": kind}
    it = iter(fields[2:])

    def take(n: int) -> list[str]:
        return [next(it) for _ in range(n)]

    try:
        streams = take(6)
        mask, lims = take(2)
        argv = take(int(next(it)))
        path = take(int(next(it)))
        ident = take(int(next(it)))
    except (StopIteration, ValueError):
        raise ValueError("a truncated request") from None
    env = {}
    for item in it:
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError("a malformed environment entry")
        env[k] = v
    return {"kind": kind, "streams": streams, "umask": int(mask, 10),
            "limits": parse_limits(lims), "argv": argv, "path": path, "identity": ident,
            "env": env}


def _line(sock: Any, buf: bytes) -> tuple[str, bytes]:
    """The next reply line ("" at the end of the stream) and what was read after it."""
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return "", b""
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line.decode("ascii", "replace"), rest


def _follow(sock: Any) -> int | None:
    """Wait for the daemon's answer, then for the child's exit, passing signals on."""
    import _signal  # type: ignore[import-not-found,unused-ignore] # not signal: its enums cost
    # this path a millisecond and more

    sock.settimeout(ANSWER_TIMEOUT)
    try:
        first, buf = _line(sock, b"")
    except TimeoutError:
        sys.stderr.write(
            f"burnless: error: the resident process ({socket_path()}) did not answer in "
            f"{ANSWER_TIMEOUT:g} s; stop it (burnless daemon stop) or set {NO_DAEMON_ENV}=1\n")
        return 1
    except OSError:
        return None
    if first.startswith("refused "):
        if first == "refused stale":
            sys.stderr.write("burnless: note: the resident process ran older burnless code; "
                             "it is starting again from the current code, and this command runs "
                             "without it\n")
        return None
    if not first.startswith("started "):
        return None  # ended before starting the command (the stream closed): nothing ran
    sock.settimeout(None)

    names = {getattr(_signal, f"SIG{name}"): name for name in _FORWARDED}

    def forward(signum: int, frame: object) -> None:
        try:
            sock.sendall(names[signum].encode() + b"\n")
        except OSError:
            pass  # the child is gone: its status is on its way

    previous = {sig: _signal.signal(sig, forward) for sig in names}
    try:
        while True:
            line, buf = _line(sock, buf)
            if line.startswith("exit "):
                return int(line[5:]) & 0xFF
            if line.startswith("signal "):
                signum = int(line[7:])
                _die_of(signum)
                return 128 + signum
            if not line:
                sys.stderr.write("burnless: error: the resident process ended without the "
                                 "command's exit status\n")
                return 1
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)


def _die_of(signum: int) -> None:
    """End this process as the child ended: killed by ``signum`` (a shell then reports the
    same thing it would have without the daemon)."""
    import _signal  # type: ignore[import-not-found,unused-ignore]

    sys.stdout.flush()
    try:
        if signum != _signal.SIGKILL:  # whose action cannot be changed (and is to end)
            _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    except (OSError, ValueError):
        return
