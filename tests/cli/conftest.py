"""Helpers of the CLI tests: `burnless serve` started as a real process on a free port."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Workspace, fake, quoted


@dataclass
class Served:
    """A running `burnless serve`: its process and where it listens."""

    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def raw(self, data: bytes, *, timeout: float = 5) -> bytes:
        """Send raw bytes, read the whole answer (HTTP/1.0: the server closes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], timeout)
    assert ready, "server said nothing"
    return proc.stderr.readline()


@contextmanager
def serving(ws: Workspace, *args: str, stop: int = signal.SIGINT, port: int = 0,
            clean_exit: bool = True) -> Iterator[Served]:
    """`burnless serve --port PORT` (0: a free one), ready once it says where it listens;
    stopped with ``stop``: exit 0 and no traceback, unless ``clean_exit`` is false (a test
    that kills it itself)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "burnless", "serve", "--port", str(port), *args], cwd=ws.root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(proc, 15)
        m = re.search(r"http://\[?([^\]/]+?)\]?:(\d+)/metrics", line)
        assert m, (line, proc.poll())
        yield Served(proc, m.group(1), int(m.group(2)))
    finally:
        if proc.poll() is None:
            proc.send_signal(stop)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    if clean_exit:
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "Exception" not in err, err



def run_a_sleeper(ws: Workspace, rec: Path) -> tuple[subprocess.Popen[str], int, int]:
    """`burnless run` on a worker that sleeps (with a grandchild): the run's process and the
    worker's and grandchild's pids, once both are up."""
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('sleeper', '--record', str(rec)))}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "run", "sleep"], cwd=ws.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = rec / "pids"
    deadline = time.monotonic() + 20
    while not (pids.exists() and pids.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child, grandchild = (int(x) for x in pids.read_text().split())
    return proc, child, grandchild
