"""Helpers of the unit tests: for the accounting tests (usage, the ledger index, metrics), ledger
records of every kind burnless writes and the plain recount every report must agree with; for
the API tier and the simulator, simulators on loopback with a clock of the test's own."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting import ledger
from burnless.accounting.index import day_of
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from burnless.sim.server import SimServer
from tests.conftest import Workspace
from tests.fakes.upstream import FakeUpstream

TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write")


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def utc_stamp(day: date, clock: str = "12:00:00.000") -> str:
    return f"{day.isoformat()}T{clock}Z"


def ledger_record(**kw: Any) -> LedgerRecord:
    base: dict[str, Any] = dict(
        run_id="r-20261128T120000-abcdef", session="s", role="execution", tier="silver",
        model="claude-sonnet-4-6", status="ok", tokens=Tokens(100, 10, 1000, 50),
        cost_usd=0.01, cost_source="reported", audit="passed", ts=utc_stamp(utc_today()),
    )
    base.update(kw)
    return LedgerRecord(**base)


def write(state: Path, *records: LedgerRecord) -> None:
    for r in records:
        ledger.record_call(state, r)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / ".burnless"
    d.mkdir()
    return d


def varied(n: int, seed: int = 3, day: date | None = None) -> list[LedgerRecord]:
    """Records of every kind burnless writes: refusals, cache hits, unknown costs, no model."""
    rnd = random.Random(seed)
    day = day or utc_today()
    out = []
    for i in range(n):
        status = rnd.choice(["ok", "ok", "ok", "failed", "partial", "refused", "interrupted",
                             "escalate"])
        cached = status != "refused" and rnd.random() < 0.15
        cost = None if rnd.random() < 0.25 else round(rnd.uniform(0, 0.3), 6)
        model = rnd.choice(["claude-sonnet-4-6", "claude-opus-4-8", None, "local"])
        out.append(ledger_record(
            session=rnd.choice(["a", "b", "c-1", "d.2"]),
            role=rnd.choice(["planning", "execution", "compaction"]),
            tier=rnd.choice(["gold", "silver", "bronze"]), model=model, status=status,
            tokens=Tokens() if status == "refused" else Tokens(
                *(rnd.randint(0, 20_000) for _ in range(4))),
            cost_usd=0.0 if status == "refused" else cost,
            cost_source="unknown" if cost is None else "reported",
            audit=rnd.choice(["passed", "failed", "skipped"]), cached=cached,
            refused_by=rnd.choice(["budget", "policy"]) if status == "refused" else "",
            ts=utc_stamp(day, f"{i % 24:02d}:{i % 60:02d}:00.000"),
        ))
    return out



# --------------------------------------------------------------------------- a plain recount

def recount_of(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any] = lambda r: None
            ) -> dict[Any, dict[str, Any]]:
    """What every report must say, computed the obvious way from the raw records."""
    out: dict[Any, dict[str, Any]] = {}
    for r in records:
        acc = out.setdefault(key(r), {
            "calls": 0, **dict.fromkeys(TOKEN_FIELDS, 0), "cost": 0.0, "unknown": 0,
            "refusals": 0, "cached": 0, "audit_failures": 0, "failures": 0})
        if r["status"] == "refused":
            acc["refusals"] += 1
            continue
        if r["cached"]:
            acc["cached"] += 1
            continue
        acc["calls"] += 1
        for f in TOKEN_FIELDS:
            acc[f] += r["tokens"][f]
        if r["cost_usd"] is None:
            acc["unknown"] += 1
        else:
            acc["cost"] += r["cost_usd"]
        acc["audit_failures"] += r["audit"] == "failed"
        acc["failures"] += r["status"] in ("failed", "partial", "interrupted", "lost")
    return out


def expected_cost(acc: dict[str, Any]) -> float | None:
    return None if acc["calls"] and acc["unknown"] == acc["calls"] else acc["cost"]


def check_stats(got: dict[str, Any], want: dict[str, Any]) -> None:
    """A usage JSON/CSV group (numbers parsed) against the recount of its records."""
    assert int(got["calls"]) == want["calls"]
    for f in TOKEN_FIELDS:
        assert int(got[f]) == want[f], f
    assert int(got["unknown_cost_calls"]) == want["unknown"]
    assert int(got["refusals"]) == want["refusals"]
    assert int(got["cached_hits"]) == want["cached"]
    assert int(got["audit_failures"]) == want["audit_failures"]
    assert int(got["failures"]) == want["failures"]
    cost = expected_cost(want)
    if cost is None:
        assert got["cost_usd"] in (None, ""), got  # unknown, never 0
    else:
        assert float(got["cost_usd"]) == pytest.approx(cost, abs=1e-7)


def usage_report(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    p = ws.run("usage", "--format", "json", *args, env=env)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    doc: dict[str, Any] = orjson.loads(p.stdout)
    return doc


def group_of(by: str) -> Callable[[dict[str, Any]], Any]:
    if by == "day":
        return lambda r: day_of(r["ts"]) or None
    return lambda r: r[by] or None


# --------------------------------------------------------------------------- the simulator

API_KEY = "sk-ant-api03-review-KEY-0123456789abcdef"
MODEL = "claude-sonnet-4-6"  # caches from 1024 tokens
RULES = "Project rules: keep functions small, typed and tested.\n" * 100  # ~1,400 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now




@dataclass
class Sim:
    server: SimServer
    log: Path
    clock: Clock

    @property
    def url(self) -> str:
        return self.server.url

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines()]


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    started: list[SimServer] = []

    def start(fault: str | None = None) -> Sim:
        log = tmp_path / f"sim-{len(started)}.jsonl"
        clock = Clock()
        server = SimServer(log=log, fault=fault, clock=clock).start()
        started.append(server)
        return Sim(server, log, clock)

    yield start
    for s in started:
        s.close()


@pytest.fixture
def sim(sims: Callable[..., Sim]) -> Sim:
    return sims()



@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeUpstream]]:
    """Start fake upstreams (``tests.fakes.upstream``): ``fakes("greedy")``; closed at the end."""
    started: list[FakeUpstream] = []

    def start(mode: str = "ok", **kw: Any) -> FakeUpstream:
        f = FakeUpstream(mode, **kw).start()
        started.append(f)
        return f

    yield start
    for f in started:
        f.close()
