"""A real ``redis-server`` for tests: its own process on a free loopback port, in a temporary
directory, killed at the end. Tests that need one skip only when redis-server is not installed
(``.ci/run`` installs it, so they run there)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

REDIS = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1; ``persist`` keeps its data across ``restart`` (an
    append-only file in its directory), else nothing is written to disk."""

    def __init__(self, directory: Path, *, persist: bool = False) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.persist = persist
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if REDIS is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        for _ in range(5):  # a free port can be taken between finding it and binding it
            self.port = self.port or free_port()
            args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "yes" if self.persist else "no", "--dir", str(self.dir),
                    "--logfile", str(self.dir / "redis.log"), "--daemonize", "no",
                    "--protected-mode", "no"]
            if self.persist:
                args += ["--appendfsync", "always"]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.ping():
                    return self
                time.sleep(0.02)
            self.stop()
            self.port = 0
        raise RuntimeError(f"redis-server did not start; see {self.dir / 'redis.log'}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (the append-only file is complete)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()  # the same port: clients reconnect to it

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)

    def keys(self, pattern: str = "*") -> list[str]:
        with self.client() as c:
            return sorted(k.decode() for k in c.keys(pattern))
