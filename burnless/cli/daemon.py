"""burnless daemon start | stop | status: the resident process that makes ``run`` start fast."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated

import typer

from burnless.cli import console, epilog
from burnless.cli.options import JsonOpt

app = typer.Typer(
    help="A resident process for burnless run: it keeps burnless imported, so each run starts "
    "in about a third of the time. Runs go through it while it runs; nothing else changes.",
    no_args_is_help=True, rich_markup_mode=None, epilog=epilog([
        "burnless daemon start              # in the background; stops after 30 idle minutes",
        "burnless daemon status --json",
        "burnless daemon stop               # waits for the runs it is running",
        "BURNLESS_NO_DAEMON=1 burnless run 'task'   # one run without it",
    ]))

IdleOpt = Annotated[float, typer.Option(
    "--idle", help="Stop after this many seconds without a command (0: never).")]


@app.command()
def start(
    idle: IdleOpt = 1800.0,
    foreground: Annotated[bool, typer.Option(
        "--foreground", help="Serve in this process, logging to stderr, until stopped "
        "(for a service manager).")] = False,
) -> None:
    """Start the resident process for this user ($BURNLESS_HOME/daemon.sock)."""
    from burnless import resident
    from burnless.errors import UsageError

    if not idle >= 0:
        raise UsageError(f"--idle must be 0 or more seconds, not {idle:g}")
    if not hasattr(os, "fork"):
        raise UsageError("burnless daemon needs fork() and Unix sockets, which this system "
                         "lacks; burnless run works without it")
    path = resident.socket_path()
    if foreground:
        from burnless import daemon

        try:
            daemon.run(path, idle)
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        return
    from burnless import __version__

    answer = resident.ask(path, "PING", timeout=2.0)
    if answer:
        console.out(f"burnless daemon: already running ({_describe(answer)})")
        running = resident.pong(answer)
        if running is None or running[1] != __version__:
            console.err(f"burnless: warning: it is not burnless {__version__}, so this "
                        "burnless's runs do not go through it; `burnless daemon stop` first")
        return
    os.makedirs(resident.home_dir(), mode=0o700, exist_ok=True)
    log_path = os.path.join(resident.home_dir(), "daemon.log")
    try:  # two lines per command: keep the last MiB or two
        if os.path.getsize(log_path) > 1 << 20:
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass
    with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
        # From "/": the daemon's own imports must not find modules in the caller's folder.
        proc = subprocess.Popen(
            [sys.executable, "-m", "burnless", "daemon", "start", "--foreground",
             "--idle", repr(idle)],
            stdin=null, stdout=log, stderr=log, cwd="/", start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answer = resident.ask(path, "PING", timeout=2.0)
        if answer:
            console.out(f"burnless daemon: started ({_describe(answer)}); log: {log_path}")
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise UsageError(f"the daemon did not start; see {log_path}")


@app.command()
def stop() -> None:
    """Stop the resident process (after the runs it is running end)."""
    from burnless import resident

    path = resident.socket_path()
    running = resident.pong(resident.ask(path, "PING", timeout=2.0))
    if running is None or resident.ask(path, "STOP") is None:
        console.out("burnless daemon: not running")
        return
    from burnless.runs import alive

    pid = running[0]
    deadline = time.monotonic() + 600
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    console.out("burnless daemon: stopped")


@app.command()
def status(json_: JsonOpt = False) -> None:
    """Whether the resident process runs, and where."""
    from burnless import resident

    path = resident.socket_path()
    answer = resident.ask(path, "PING", timeout=2.0)
    running = resident.pong(answer)
    if json_:
        console.emit_json({"running": running is not None, "socket": path,
                           "pid": running[0] if running else None,
                           "version": running[1] if running else None})
        return
    console.out(f"burnless daemon: running ({_describe(answer)})" if running
                else f"burnless daemon: not running ({path})")


def _describe(answer: str | None) -> str:
    from burnless import resident

    running = resident.pong(answer)
    if running is None:
        return answer or ""
    pid, version, where = running
    return f"pid {pid}, burnless {version}, socket {where}"
