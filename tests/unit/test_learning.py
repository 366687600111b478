"""Examples learned from the ledger (burnless.routing.learning), written with the real writers."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless.accounting.ledger import LedgerRecord, record_call
from burnless.config import load_config_data
from burnless.routing.learning import bound, learned_examples, outcome, store_path
from burnless.routing.router import route
from burnless.runs import now_iso
from burnless.session.capsule import Capsule
from burnless.session.store import Session
from burnless.settings import Config

TIERS = ("bronze", "silver", "gold")
_runs = itertools.count(1)


def config(root: Path, **routing: Any) -> Config:
    data = {"tiers": {t: {"command": "x"} for t in TIERS},
            "routing": {"ladder": list(TIERS), "learn": True, **routing},
            "policy": {"sensitive_patterns": ["(?i)payroll"]}}
    return load_config_data(data, root / ".burnless" / "config.yaml")


def turn(cfg: Config, task: str, tier: str, status: str = "ok", audit: str = "passed",
         exit: int | None = 0, *, session: str = "s", sensitive: bool = False,
         cached: bool = False, role: str = "execution", capsule: bool = True) -> str:
    """One execution call as the pipeline records it: its ledger record, then its capsule."""
    run_id = f"r-{next(_runs):04d}"
    s = Session(cfg.state_dir, session)
    seq = len(s.capsules()) + 1
    record_call(cfg.state_dir, LedgerRecord(
        run_id=run_id, session=session, role=role, tier=tier, model=None,  # type: ignore[arg-type]
        status=status, audit=audit, exit=exit, seq=seq, cached=cached))  # type: ignore[arg-type]
    if capsule:
        s.append(Capsule.make(seq=seq, epoch=1, role="exec", tier=tier, task=task, status=status,
                              audit=audit, run_id=run_id, ts=now_iso(), sensitive=sensitive))
    return run_id


def learned(cfg: Config) -> list[tuple[str, str, str]]:
    return [(e.tier, e.kind, e.text) for e in learned_examples(cfg)]


@pytest.mark.parametrize(("record", "kind"), [
    ({"status": "ok", "audit": "passed", "exit": 0}, "example"),
    ({"status": "ok", "audit": "skipped", "exit": 0}, None),  # nothing was checked
    ({"status": "ok", "audit": "failed", "exit": 0}, "counter"),
    ({"status": "escalate", "audit": "skipped", "exit": 0}, "counter"),
    ({"status": "failed", "audit": "skipped", "exit": 0}, "counter"),
    ({"status": "partial", "audit": "passed", "exit": 0}, "counter"),
    ({"status": "failed", "audit": "skipped", "exit": 1}, None),  # the worker crashed
    ({"status": "failed", "audit": "skipped", "exit": None}, None),  # a timeout
    ({"status": "refused", "audit": "skipped", "exit": None}, None),
    ({"status": "interrupted", "audit": "skipped", "exit": None}, None),
    ({"status": "ok", "audit": "passed", "exit": 0, "cached": True}, None),
    ({"status": "ok", "audit": "passed", "exit": 0, "role": "planning"}, None),
])
def test_what_a_record_teaches(record: dict[str, Any], kind: str | None) -> None:
    assert outcome({"role": "execution", **record}) == kind


def test_audited_successes_and_failures_become_examples_and_counter_examples(
        tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert learned(cfg) == []
    turn(cfg, "write notes.txt hello", "bronze")
    turn(cfg, "answer a question", "bronze", audit="skipped")  # nothing audited: not learned
    turn(cfg, "design the sharding scheme", "bronze", status="escalate", audit="skipped")
    turn(cfg, "design the sharding scheme", "silver", status="ok", audit="failed")
    turn(cfg, "design the sharding scheme", "gold")
    turn(cfg, "run the flaky job", "silver", status="failed", audit="skipped", exit=None)
    assert learned(cfg) == [
        ("bronze", "example", "write notes.txt hello"),
        ("bronze", "counter", "design the sharding scheme"),
        ("silver", "counter", "design the sharding scheme"),
        ("gold", "example", "design the sharding scheme"),
    ]
    d = route(cfg, "design the sharding scheme for orders")
    assert d.tier == "gold" and "(learned r-" in d.reasons[0]


def test_sensitive_work_never_becomes_an_example(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    turn(cfg, "write secrets.txt for the vault", "bronze", sensitive=True)
    turn(cfg, "update the payroll export", "bronze")  # today's policy finds it sensitive
    turn(cfg, "set the key sk-ant-api03-" + "A" * 90 + " in config", "bronze")  # not masked
    turn(cfg, "write readme.md intro", "bronze")
    assert learned(cfg) == [("bronze", "example", "write readme.md intro")]
    stored = store_path(cfg).read_text()
    assert "vault" not in stored and "payroll" not in stored and "sk-ant" not in stored


def test_growth_is_bounded_newest_kept_one_per_text(tmp_path: Path) -> None:
    cfg = config(tmp_path, learn_max=3)
    for i in range(10):
        turn(cfg, f"write file{i}.txt content", "bronze")
    turn(cfg, "write file9.txt content", "bronze")  # again: kept once
    for i in range(5):
        turn(cfg, f"hard thing {i}", "bronze", status="escalate")
    got = learned(cfg)
    assert [t for _, k, t in got if k == "example"] == [
        "write file7.txt content", "write file8.txt content", "write file9.txt content"]
    assert [t for _, k, t in got if k == "counter"] == [
        "hard thing 2", "hard thing 3", "hard thing 4"]
    assert len(orjson.loads(store_path(cfg).read_bytes())["learned"]) == 6


def test_bound_keeps_limits_per_tier_and_kind() -> None:
    from burnless.routing.learning import Learned

    xs = [Learned(t, "example", f"task {i}", f"r{i}", "") for i, t in
          enumerate(["bronze", "gold", "bronze", "gold", "bronze", "Bronze"])]
    assert [(x.tier, x.text) for x in bound(xs, 2)] == [
        ("gold", "task 1"), ("bronze", "task 2"), ("gold", "task 3"), ("bronze", "task 4"),
        ("Bronze", "task 5")]


def test_the_ledger_is_read_once_and_the_store_can_be_rebuilt(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    turn(cfg, "write a.txt one", "bronze")
    first = learned(cfg)
    state = orjson.loads(store_path(cfg).read_bytes())
    ledger = cfg.state_dir / "ledger.jsonl"
    assert state["ledger"]["offset"] == ledger.stat().st_size
    turn(cfg, "write b.txt two", "silver")
    assert learned(cfg) == [*first, ("silver", "example", "write b.txt two")]
    store_path(cfg).unlink()
    assert learned(cfg) == [*first, ("silver", "example", "write b.txt two")]
    store_path(cfg).write_text("{damaged")
    assert learned(cfg) == [*first, ("silver", "example", "write b.txt two")]


def test_a_replaced_ledger_is_learned_from_the_start(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    turn(cfg, "write a.txt one", "bronze")
    assert learned(cfg)
    ledger = cfg.state_dir / "ledger.jsonl"
    ledger.rename(tmp_path / "old-ledger.jsonl")
    turn(cfg, "write c.txt three", "gold", session="other")
    assert learned(cfg) == [("gold", "example", "write c.txt three")]


def test_a_record_waits_for_its_capsule(tmp_path: Path) -> None:
    """The ledger record is written just before the capsule: a route in between must not
    lose the example."""
    cfg = config(tmp_path)
    run_id = turn(cfg, "", "bronze", capsule=False)
    assert learned(cfg) == []
    assert orjson.loads(store_path(cfg).read_bytes())["pending"][0]["run_id"] == run_id
    Session(cfg.state_dir, "s").append(Capsule.make(
        seq=1, epoch=1, role="exec", tier="bronze", task="write late.txt at last", status="ok",
        audit="passed", run_id=run_id, ts=now_iso()))
    assert learned(cfg) == [("bronze", "example", "write late.txt at last")]
    assert orjson.loads(store_path(cfg).read_bytes())["pending"] == []


def test_learned_examples_of_a_tier_no_longer_defined_are_ignored(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    turn(cfg, "write a.txt one", "bronze")
    turn(cfg, "write b.txt two", "platinum")
    assert learned(cfg) == [("bronze", "example", "write a.txt one")]


def test_learning_off_reads_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, learn=False)
    turn(cfg, "write a.txt one", "bronze")
    d = route(cfg, "write a.txt one")
    assert d.tier == "silver" and d.min_similarity is None
    assert not store_path(cfg).exists()


def test_a_fifo_planted_as_the_store_does_not_hang(tmp_path: Path) -> None:
    import os

    cfg = config(tmp_path)
    turn(cfg, "write a.txt one", "bronze")
    store_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(store_path(cfg))
    assert learned(cfg) == [("bronze", "example", "write a.txt one")]
