"""What the end-to-end tests of real agent CLIs share: installing a CLI from the npm registry
once into a cache directory, ``burnless sim serve`` as a real subprocess, a wrapper that
measures a worker's own wall time, and a session of ``burnless run`` turns on such a CLI.

The cache directory is ``BURNLESS_TEST_CACHE`` (default ``$XDG_CACHE_HOME/burnless-tests``,
i.e. ``~/.cache/burnless-tests``); each CLI gets a subdirectory (``claude-code``, ``codex``,
``gemini``) and is installed at most once, under a lock (two CI jobs may share the cache).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Workspace

TIMED = Path(__file__).with_name("timed.py")
DURATION_SLACK_S = 0.3  # burnless's duration_s against the worker's own wall time


def cache_root() -> Path:
    explicit = os.environ.get("BURNLESS_TEST_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "burnless-tests"


def installed_version(binary: Path) -> str | None:
    """``--version`` of the binary, run with a throw-away home: even that writes there (Gemini
    CLI creates ~/.gemini, Codex ~/.codex), and the tests write nothing under $HOME."""
    if not binary.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="burnless-cli-home-") as home:
        env = {**os.environ, "HOME": home, "CODEX_HOME": str(Path(home) / ".codex"),
               "GEMINI_CLI_HOME": home}
        try:
            p = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                               timeout=60, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return None
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def usable(found: str | None, wanted: str) -> bool:
    """An exact version must match one word of ``--version`` ("2.1.197 (Claude Code)",
    "codex-cli 0.171.0", "0.61.0"); a tag such as "latest" takes whatever works."""
    if found is None:
        return False
    return not re.fullmatch(r"\d+(\.\d+)*", wanted) or wanted in found.split()


@dataclass(frozen=True)
class NpmCli:
    package: str  # on the npm registry
    version: str  # the version docs/simulator.md was checked against
    directory: str  # under cache_root()
    binary: str  # in node_modules/.bin
    version_env: str  # the variable that picks another version ("latest" tries the newest)


CLAUDE_CODE = NpmCli("@anthropic-ai/claude-code", "2.1.197", "claude-code", "claude",
                     "BURNLESS_CLAUDE_CODE_VERSION")
CODEX = NpmCli("@openai/codex", "0.171.0", "codex", "codex", "BURNLESS_CODEX_VERSION")
GEMINI_CLI = NpmCli("@google/gemini-cli", "0.61.0", "gemini", "gemini",
                    "BURNLESS_GEMINI_CLI_VERSION")


def npm_install(cli: NpmCli) -> Path:
    """The CLI's binary, installed once into the test cache and reused. Pinned versions, so
    that a new release cannot turn CI red overnight."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not on PATH: cannot install {cli.package} (needs Node.js >= 20)")
    wanted = os.environ.get(cli.version_env) or cli.version
    prefix = cache_root() / cli.directory
    binary = prefix / "node_modules" / ".bin" / cli.binary
    prefix.mkdir(parents=True, exist_ok=True)
    from burnless.storage.locks import file_lock

    with file_lock(Path(str(prefix) + ".lock"), 900):
        found = installed_version(binary)
        if usable(found, wanted):
            print(f"\n{cli.package}: reusing {found} from {prefix}")
            return binary
        t0 = time.monotonic()
        p = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
             f"{cli.package}@{wanted}"],
            capture_output=True, text=True, timeout=900,
        )
        elapsed = time.monotonic() - t0
        if p.returncode != 0:
            pytest.fail(f"npm install {cli.package}@{wanted} failed (exit {p.returncode}):\n"
                        f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}", pytrace=False)
        found = installed_version(binary)
        if not usable(found, wanted):
            pytest.fail(f"npm installed {cli.package}@{wanted} but `{binary} --version` gives "
                        f"{found!r}; npm said:\n{p.stderr[-4000:]}", pytrace=False)
        print(f"\n{cli.package}: installed {found} into {prefix} in {elapsed:.1f}s")
        return binary


# ---------------------------------------------------------------------- the simulator


@dataclass
class Sim:
    url: str
    log: Path

    def records(self) -> list[dict[str, Any]]:
        """Every request the simulator answered, in order (its ``--log``)."""
        if not self.log.exists():
            return []
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines() if line]

    def requests(self, path_part: str = "/v1/messages") -> list[dict[str, Any]]:
        """The POSTs whose path contains ``path_part`` (count_tokens left out)."""
        return [r for r in self.records() if r["method"] == "POST" and path_part in r["path"]
                and "count_tokens" not in r["path"] and "countTokens" not in r["path"]]


@contextmanager
def sim_process(tmp_path: Path, *args: str) -> Iterator[Sim]:
    """``burnless sim serve --port 0 [args]`` as a real subprocess on 127.0.0.1."""
    log = tmp_path / "sim.jsonl"
    err_path = tmp_path / "sim.stderr"
    err = err_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "burnless", "sim", "serve", "--port", "0", "--log", str(log),
         *args],
        stdout=subprocess.PIPE, stderr=err, text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert m, f"sim did not start: {line!r}; stderr: {err_path.read_text()}"
        yield Sim(m.group(1), log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        err.close()


# ---------------------------------------------------------------------- the worker's wall time


def timed(argv: list[str], times: Path) -> list[str]:
    """``argv`` run through ``timed.py``, which appends the worker's own wall time (from just
    before it starts to just after it exits, its grandchildren not waited for) to ``times``."""
    return [sys.executable, str(TIMED), str(times), "--", *argv]


def wall_times(times: Path) -> list[float]:
    if not times.exists():
        return []
    return [float(line) for line in times.read_text().split()]


def check_durations(
    ledger: list[dict[str, Any]], times: Path, tiers: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """Each call's ``duration_s`` against the worker's own wall time (``timed.py`` wrote one
    file per tier, ``times/<tier>``, a line per call in order): the figures, and those more
    than ``DURATION_SLACK_S`` apart."""
    figures: list[str] = []
    off: list[str] = []
    for tier in tiers:
        recorded = [r["duration_s"] for r in ledger if r["tier"] == tier]
        walls = wall_times(times / tier)
        assert len(recorded) == len(walls), (tier, recorded, walls)
        for d, w in zip(recorded, walls, strict=True):
            line = f"{tier}: duration_s {d:.3f} vs the worker's own {w:.3f} ({d - w:+.3f})"
            figures.append(line)
            if abs(d - w) > DURATION_SLACK_S:
                off.append(line)
    return figures, off


def isolate(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    """What conftest's autouse ``_isolate`` does, for a module-scoped session fixture."""
    mp.setenv("BURNLESS_HOME", str(tmp / "_burnless_home"))
    mp.setenv("XDG_CONFIG_HOME", str(tmp / "_xdg"))
    for var in ("BURNLESS_CONFIG", "BURNLESS_SESSION", "BURNLESS_DEPTH",
                "BURNLESS_ACTIVE_SESSIONS", "ANTHROPIC_BASE_URL"):
        mp.delenv(var, raising=False)


@dataclass
class Turn:
    """One ``burnless run --json`` of a session, and the simulator's requests during it."""

    task: str
    exit_code: int
    result: dict[str, Any]
    requests: list[dict[str, Any]]
    wall_s: float


@dataclass
class Session:
    ws: Workspace
    turns: list[Turn]
    times: Path  # the workers' own wall times (``timed``)


SIM_KEY = "sim-e2e-key"  # the only key the simulators of agent sessions accept


@contextmanager
def agent_session(tmp: Path, setup: Callable[[Workspace, Sim, Path], None], tasks: list[str],
                  *, path_part: str, timeout: float) -> Iterator[Session]:
    """A session of ``tasks`` on an agent CLI, isolated in ``tmp`` (its own HOME) against its
    own simulator (``--api-key SIM_KEY``): ``setup(ws, sim, times)`` writes the workspace's
    config, then each task runs as one turn (``run_session``)."""
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, tmp)
        with sim_process(tmp, "--api-key", SIM_KEY) as sim:
            ws = Workspace(tmp / "ws")
            times = tmp / "times"
            times.mkdir()
            setup(ws, sim, times)
            yield run_session(ws, sim, tasks, times, path_part=path_part, timeout=timeout)


def run_session(ws: Workspace, sim: Sim, tasks: list[str], times: Path, *, path_part: str,
                timeout: float) -> Session:
    """Each task as one turn of session ``s1``, in order; each turn keeps the simulator's
    requests (on ``path_part``) made while it ran."""
    turns: list[Turn] = []
    seen = 0
    for task in tasks:
        t0 = time.monotonic()
        code, res = ws.json("run", task, "--session", "s1", timeout=timeout)
        requests = sim.requests(path_part)
        turns.append(Turn(task, code, res, requests[seen:], time.monotonic() - t0))
        seen = len(requests)
    return Session(ws, turns, times)
