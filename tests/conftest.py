"""Shared fixtures: an isolated home, a workspace with a config, and the real CLI."""

from __future__ import annotations

import base64
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, settings

from burnless.accounting import ledger
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from tests.redis_server import RedisServer

# Hypothesis's per-example deadline is wall time: under a parallel run (pytest-xdist) another
# worker can take the CPU mid-example. Examples are still bounded by max_examples.
settings.register_profile("burnless", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("burnless")

FAKES = Path(__file__).parent / "fakes"
WORKER = FAKES / "worker.py"


def quoted(text: str) -> str:
    """``text`` as a YAML (JSON) string scalar."""
    return orjson.dumps(text).decode()


def fake(mode: str = "honest", *extra: str) -> str:
    """A tier command running the fake worker in a mode."""
    return " ".join(shlex.quote(a) for a in (sys.executable, str(WORKER), "--mode", mode, *extra))


def tier_line(name: str, cmd: str, extra: str = "") -> str:
    """One line of a ``tiers:`` block: ``name`` runs ``cmd``, with ``extra`` tier options."""
    return f"  {name}: {{command: {orjson.dumps(cmd).decode()}{', ' + extra if extra else ''}}}\n"


def record(cost: float | None, session: str = "s", **kw: Any) -> LedgerRecord:
    """A ledger record of one priced execution call costing ``cost``."""
    base: dict[str, Any] = dict(run_id="r-20261128T120000-abcdef", session=session,
                                role="execution", tier="silver", model="m", status="ok",
                                tokens=Tokens(1, 1), cost_usd=cost, cost_source="priced")
    base.update(kw)
    return LedgerRecord(**base)


def today() -> str:
    """Today's UTC day, as the ledger names days."""
    return time.strftime("%Y-%m-%d", time.gmtime())


def filler(n: int, alphabet: str = "Fake0Key1Not2Real3") -> str:
    """An obviously fake, random-enough run of ``n`` characters."""
    return (alphabet * (n // len(alphabet) + 1))[:n]


PEM_LINES = (filler(64, "FakePemLineOne0+/"), filler(64, "FakePemLineTwo1+/"))
PEM = ("-----BEGIN RSA " + "PRIVATE KEY-----\n" + "\n".join(PEM_LINES)
       + "\n-----END RSA " + "PRIVATE KEY-----")
BASIC_PASSWORD = "Fake0Basic1Pass"

# Fake secrets of every kind burnless masks, built at run time so that nothing in the tests looks
# like a live key. kind -> (text as it would appear, the secret value that must never survive)
FAKE_SECRETS: dict[str, tuple[str, str]] = {
    "anthropic": ("sk-ant-" + "api03-" + filler(93) + "AA",) * 2,
    "openai": ("sk-" + "proj-" + filler(48),) * 2,
    "github": ("gh" + "p_" + filler(36),) * 2,
    "aws-id": ("AK" + "IA" + "FAKEKEY0NOTREAL1",) * 2,
    "aws-secret": ("aws_secret_access_key = " + filler(40, "Fake/Key+Not0Real"),
                   filler(40, "Fake/Key+Not0Real")),
    "slack": ("xo" + "xb-" + "1234567890-" + filler(24),) * 2,
    "stripe": ("sk" + "_live_" + filler(24),) * 2,
    "google": ("AI" + "za" + filler(35),) * 2,
    "jwt": ("ey" + "J" + filler(20) + ".eyJ" + filler(30) + "." + filler(40),) * 2,
    "url-password": ("postgres://app:" + "Fake0Url1Pass" + "@db:5432/app", "Fake0Url1Pass"),
    "bearer": ("Authorization: Bearer " + filler(32), filler(32)),
    "basic": ("Authorization: Basic " + base64.b64encode(
        f"admin:{BASIC_PASSWORD}".encode()).decode(), BASIC_PASSWORD),
    "password": ("password=" + "Fake0Hunter2", "Fake0Hunter2"),
}


# The smallest valid configuration.
OK = "tiers:\n  silver: {command: x}\n"


def clean(p: subprocess.CompletedProcess[str]) -> None:
    """No traceback on either stream: every error is a clear one."""
    assert "Traceback" not in p.stderr + p.stdout, p.stderr


def honest_argv() -> list[str]:
    """The command line of ``burnless`` itself."""
    return [sys.executable, "-m", "burnless"]


def limited(script: str, limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with files capped at ``limit`` bytes: writes past it fail (EFBIG),
    the way a full disk fails them."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-c", script, *args], preexec_fn=cap,
                          capture_output=True, text=True, timeout=30)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one and a half workers per CPU. Many tests wait on subprocesses, sleeps
    and timeouts, so a third worker fills the idle time: on 2 CPUs the default suite takes
    about 124 s with 3 workers against 154 s with 2."""
    return max(2, (os.cpu_count() or 1) * 3 // 2)


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
             monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real home, config or an outer burnless session."""
    monkeypatch.setenv("BURNLESS_HOME", str(tmp_path / "_burnless_home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "_xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    for var in ("BURNLESS_CONFIG", "BURNLESS_WORKSPACE", "BURNLESS_SESSION", "BURNLESS_DEPTH",
                "BURNLESS_ACTIVE_SESSIONS", "BURNLESS_PARENT_RUN", "BURNLESS_ROOT_RUN",
                "BURNLESS_TREE", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    # A test that forgets to say where its workspace is must not write into the checkout.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def start_daemon(home: Path, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.Popen[bytes]:
    """`burnless daemon start --foreground ARGS` on ``home`` (its log in
    ``home/test-daemon.log``), returned once it serves."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "test-daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "burnless", "daemon", "start", "--foreground", *args],
            stdout=out, stderr=out,
            env={**os.environ, "BURNLESS_HOME": str(home), **(env or {})})
    deadline = time.monotonic() + 20
    while b"serving" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    return proc


@pytest.fixture(autouse=True)
def _resident(_isolate: None, tmp_path: Path, request: pytest.FixtureRequest
              ) -> Iterator[None]:
    """``BURNLESS_TEST_RESIDENT=1 pytest tests/cli``: every test with a `burnless daemon` on
    its $BURNLESS_HOME, so that each `burnless run` it makes goes through one (a check that
    the daemon runs commands exactly as they run without it; too slow for the default run)."""
    if not os.environ.get("BURNLESS_TEST_RESIDENT") or request.node.get_closest_marker(
            "in_process"):
        yield
        return
    proc = start_daemon(tmp_path / "_burnless_home", "--idle", "0")
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / ".burnless"
        self.state.mkdir(parents=True, exist_ok=True)

    def config(self, text: str) -> Workspace:
        (self.state / "config.yaml").write_text(text, encoding="utf-8")
        return self

    def tiers(self, extra: str = "", **modes: str) -> Workspace:
        """A config whose tiers run the fake worker: tiers(silver="honest", gold="honest")."""
        lines = ["tiers:"]
        for name, mode in modes.items():
            lines.append(f"  {name}: {{command: {orjson.dumps(fake(mode)).decode()}}}")
        return self.config("\n".join(lines) + "\n" + extra)

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "burnless", *args], cwd=cwd or self.root, env=full_env,
            input=input, capture_output=True, text=True, timeout=timeout,
        )

    def json(self, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        p = self.run(*args, "--json", **kw)
        assert p.stdout.strip(), f"no JSON on stdout; stderr: {p.stderr}"
        return p.returncode, orjson.loads(p.stdout)

    def ledger(self) -> list[dict[str, Any]]:
        path = self.state / "ledger.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

    def capsules(self, session: str = "default") -> list[dict[str, Any]]:
        path = self.state / "sessions" / session / "capsules.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def kill_while_writing(script: str, *args: str, after: float) -> None:
    """Run a Python writer (``python -c script ARGS``) that prints ``ready`` once it starts
    writing, and SIGKILL it ``after`` seconds later."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(after)
    proc.kill()
    proc.wait()
    proc.stdout.close()


def records(ws: Workspace, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The ledger once it holds ``n`` records (a gateway's record lands right after its
    answer): exactly ``n``, or the test fails."""
    deadline = time.monotonic() + timeout
    while True:
        got = ws.ledger()
        if len(got) >= n or time.monotonic() > deadline:
            assert len(got) == n, got
            return got
        time.sleep(0.02)


def user(text: str) -> list[dict[str, Any]]:
    """One user message, as the SDKs take it."""
    return [{"role": "user", "content": text}]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Prometheus text parsed by prometheus_client: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of the test's own (skipped when it is not installed)."""
    pytest.importorskip("redis")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def sample(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample: a metric's name and its exact labels."""
    return samples[(name, frozenset(labels.items()))]


def rec(**kw: Any) -> LedgerRecord:
    """A ledger record of a reported-cost execution call (the metrics and serve tests)."""
    base: dict[str, Any] = dict(
        run_id="r-20261128T120000-abcdef", session="s", role="execution", tier="silver",
        model="claude-sonnet-4-6", status="ok", tokens=Tokens(100, 10, 1000, 50),
        cost_usd=0.01, cost_source="reported", audit="passed",
    )
    base.update(kw)
    return LedgerRecord(**base)


def seed(ws: Workspace) -> None:
    """A ledger of every kind of record the metrics count: failures, refusals, a cache hit."""
    for r in (
        rec(),
        rec(status="failed", audit="failed", tokens=Tokens(1, 2, 3, 4)),
        rec(role="planning", tier="gold", model="claude-opus-4-8", tokens=Tokens(2000, 300, 0, 0),
            cost_usd=0.25),
        rec(role="compaction", tier="bronze", model=None, cost_usd=None,
            cost_source="unknown", tokens=Tokens(40, 5, 0, 0)),
        rec(status="refused", refused_by="budget", tokens=Tokens(), cost_usd=0.0),
        rec(status="refused", refused_by="policy", tokens=Tokens(), cost_usd=0.0),
        rec(cached=True, tokens=Tokens(100, 10, 1000, 50), cost_usd=0.0),
    ):
        ledger.record_call(ws.state, r)


def get(url: str) -> tuple[int, str, str]:
    """GET ``url``: status, content type and body, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def concurrently(n: int, attempt: Callable[[int], str | list[str]],
                 timeout: float = 60) -> list[str]:
    """``attempt(i)`` on ``n`` threads released together; the outcomes they return (one, or
    one per request), in no particular order. An exception a thread raised (a failed
    assertion on what a client got) is raised here, not lost with its thread."""
    outcomes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            go.wait()
            got = attempt(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            with lock:
                errors.append(exc)
            return
        with lock:
            outcomes.extend([got] if isinstance(got, str) else got)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if errors:
        raise errors[0]
    return outcomes
