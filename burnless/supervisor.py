"""The per-call process supervisor: the worker's parent, and the reaper of what it leaves behind.

``process.run`` starts it as ``python -I -S`` with ``CTL STATUS ARGV...``, in a new session, and
sends the worker's environment on CTL. The supervisor

- makes itself a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``): whatever the worker
  starts and then orphans (a daemon that forked and called ``setsid``) is re-parented to it
  rather than to init, so it stays findable, and it is reaped as soon as it exits (a zombie
  never keeps a call looking alive);
- spawns the worker (``ARGV``, in a process group of its own) and writes ``pid N`` on STATUS;
- when the worker exits, or when CTL reaches end-of-file (burnless asks it to stop on timeout
  or Ctrl-C by closing it, and the kernel closes it if burnless dies, even by SIGKILL), sends
  SIGTERM to every live descendant, SIGKILL to what is left after ``GRACE_S``, reaps them,
  writes ``done`` and exits with the worker's own status (a death by signal is re-raised).

Why a process of its own rather than the flag on burnless: in the Python API, burnless runs
inside someone else's process, often several calls at once. A subreaper there would collect the
orphans of every program that process ever starts (zombies nobody reaps) and could not tell
which call an orphan came from. Here the supervisor's descendants are exactly the worker's.

It runs isolated (``-I -S``: no PYTHONPATH, no workspace module shadowing a standard one) and
imports built-in modules only (plus ctypes, for prctl): it is on the path of every call and must
start fast. ``process`` imports it too, for its ``/proc`` readers and the environment encoding.
"""

from __future__ import annotations

import os
import select
import sys
import time

# The C module, not ``signal``: that one imports enum, a few ms on every call's path.
_sig = __import__("_signal")

GRACE_S = 2.0
_PR_SET_CHILD_SUBREAPER = 36
_POLL_MS = 10  # while waiting for descendants that are not our children (no SIGCHLD for those)
# After SIGKILL, what still runs cannot be killed (uninterruptible sleep: it dies when its
# system call returns) or forks faster than it dies: give up after this, and say so.
GIVE_UP_S = 3.0


class Proc:
    """One process as ``/proc`` shows it (a plain class: importing typing costs ~9 ms)."""

    __slots__ = ("pid", "ppid", "pgid", "state", "start")

    def __init__(self, pid: int, ppid: int, pgid: int, state: str, start: int) -> None:
        self.pid, self.ppid, self.pgid = pid, ppid, pgid
        self.state = state  # one letter: R, S, D, T, Z...
        self.start = start  # clock ticks since boot: with the pid, it names one process


def read_proc(pid: int) -> Proc | None:
    """The process ``pid`` from ``/proc`` (Linux), or None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ... starttime": comm may hold spaces and parentheses
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return Proc(pid, int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[19]))
    except (IndexError, ValueError):
        return None


def all_procs() -> list[Proc]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [p for p in (read_proc(int(n)) for n in names if n.isdigit()) if p is not None]


def descendants(root: int) -> list[Proc]:
    """Every process below ``root`` (children, their children...), zombies included."""
    children: dict[int, list[Proc]] = {}
    for p in all_procs():
        children.setdefault(p.ppid, []).append(p)
    out: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child.pid)
    return out


def signal_process(p: Proc, sig: int) -> None:
    """Send ``sig`` to ``p`` unless its pid now names another process (checked on a pidfd,
    so the check and the signal are about the same process)."""
    try:
        fd = os.pidfd_open(p.pid)
    except (AttributeError, OSError):  # gone (ESRCH), or no pidfd on this system
        fd = -1
    try:
        now = read_proc(p.pid)
        if now is None or now.start != p.start:
            return
        if fd >= 0:
            _sig.pidfd_send_signal(fd, sig)
        else:
            os.kill(p.pid, sig)
    except OSError:  # it exited meanwhile
        pass
    finally:
        if fd >= 0:
            os.close(fd)


def become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class _Supervisor:
    def __init__(self, ctl: int, status: int) -> None:
        self.ctl, self.status = ctl, status
        self.worker = 0
        self.worker_status: int | None = None
        self.stop = False
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        _sig.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        _sig.signal(_sig.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD wakes us
        _sig.signal(_sig.SIGTERM, self._on_term)
        _sig.signal(_sig.SIGHUP, self._on_term)
        _sig.signal(_sig.SIGINT, self._on_term)

    def _on_term(self, *_: object) -> None:
        self.stop = True

    def say(self, line: str) -> None:
        try:
            os.write(self.status, line.encode("utf-8", "replace") + b"\n")
        except OSError:  # burnless is gone: nobody to tell
            pass

    def reap(self) -> bool:
        """Collect every child that exited; False once we have no child at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.worker:
                self.worker_status = status

    def sleep(self, timeout_ms: int | None) -> None:
        """Wait for a child's exit, a word from burnless, or ``timeout_ms``."""
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        if not self.stop:
            poller.register(self.ctl, select.POLLIN)
        for fd, _ in poller.poll(timeout_ms):
            if fd == self.wake_r:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            elif fd == self.ctl:
                try:
                    data = os.read(self.ctl, 512)
                except OSError:
                    data = b""
                if not data:  # end-of-file: burnless asked us to stop, or died
                    self.stop = True

    def spawn(self, argv: list[str]) -> bool:
        try:
            self.worker = os.posix_spawnp(
                argv[0],
                argv,
                os.environ,
                setpgroup=0,
                # Python ignores SIGPIPE and SIGXFSZ; the worker gets the defaults back
                setsigdef=(_sig.SIGPIPE, _sig.SIGXFSZ),
                setsigmask=(),
            )
        except OSError as exc:
            self.say(f"error {exc.errno or 0} {exc.strerror or exc}")
            return False
        self.say(f"pid {self.worker}")
        # Let go of the worker's pipes: once its processes are gone, burnless reads end-of-file.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        return True

    def wait_worker(self) -> None:
        while self.worker_status is None and not self.stop:
            self.reap()
            if self.worker_status is None and not self.stop:
                self.sleep(None)

    def clear(self) -> None:
        """TERM every live descendant (and CONT, so a stopped one can act on it), KILL what is
        left after the grace period, until none is left. Zombies are not waited for: they
        cannot run, and once their parent is gone they are ours to reap."""
        deadline = time.monotonic() + GRACE_S
        termed: set[tuple[int, int]] = set()
        has_proc = os.path.isdir("/proc/self")
        while time.monotonic() < deadline + GIVE_UP_S:
            self.reap()
            late = time.monotonic() >= deadline
            if not has_proc:  # no /proc (not Linux): the worker's process group is all we know
                sig = _sig.SIGKILL if late else 0 if termed else _sig.SIGTERM
                termed.add((0, 0))
                if not self._signal_group(sig):
                    break
            else:
                live = [p for p in descendants(os.getpid()) if p.state not in "ZX"]
                if not live:
                    break
                for p in live:
                    if late:
                        signal_process(p, _sig.SIGKILL)
                    elif (p.pid, p.start) not in termed:
                        termed.add((p.pid, p.start))
                        signal_process(p, _sig.SIGTERM)
                        signal_process(p, _sig.SIGCONT)
            self.sleep(_POLL_MS)
        else:
            self.say("warning: descendants still alive after SIGKILL")
        self.reap()  # only zombies are left: collect those that are ours

    def _signal_group(self, sig: int) -> bool:
        try:
            os.killpg(self.worker, sig)
        except OSError:
            return False
        return True

    def exit_code(self) -> int:
        if self.worker_status is None:
            return 125  # never seen: cannot happen once the worker is reaped
        code = os.waitstatus_to_exitcode(self.worker_status)
        if code >= 0:
            return code
        # Die of the same signal, so that burnless sees what the worker saw.
        import resource

        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of ours
            _sig.signal(-code, _sig.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP keep their action anyway
            pass
        os.kill(os.getpid(), -code)
        return 128 - code


def read_env(fd: int) -> dict[str, str]:
    """The worker's environment, sent by burnless on CTL: a length, then NUL-separated
    ``NAME=value`` entries. (Not in argv, which any user can read in ``ps``.)"""
    data = b""
    while len(data) < 8 or len(data) < 8 + int(data[:8]):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise SystemExit(126)  # burnless went away before saying what to run
        data += chunk
    entries = data[8 : 8 + int(data[:8])].split(b"\0")
    return dict(os.fsdecode(e).partition("=")[::2] for e in entries if e)


def encode_env(env: dict[str, str]) -> bytes:
    body = b"\0".join(os.fsencode(f"{k}={v}") for k, v in env.items())
    return b"%08d" % len(body) + body


def main(args: list[str]) -> int:
    ctl, status, *argv = args
    sup = _Supervisor(int(ctl), int(status))
    for fd in (sup.ctl, sup.status):
        os.set_inheritable(fd, False)  # the worker must not hold them
    # We run under burnless's own environment (the interpreter is known to work there); the
    # worker gets its own, which also gives the PATH its program is looked up in.
    env = read_env(sup.ctl)
    os.environ.clear()
    os.environ.update(env)
    become_subreaper()
    if not argv or not sup.spawn(argv):
        return 127
    sup.wait_worker()
    sup.clear()
    sup.say("done")
    return sup.exit_code()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
