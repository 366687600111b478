"""`burnless usage --evals include|exclude|only`: the calls of `burnless eval` jobs, copied into
the project's ledger, counted, left out, or shown alone (issue 16: "every eval call is in the
ledger with the eval's id, so usage can include or exclude it")."""

from __future__ import annotations

import shutil
from typing import Any

import orjson

from burnless.accounting import ledger
from tests.conftest import Workspace


def rec(run_id: str, tier: str, cost: float, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "ts": "2026-12-01T10:00:00.000Z", "run_id": run_id, "session": "s",
            "seq": 1, "role": "execution", "tier": tier, "model": "claude-haiku-4-5",
            "status": "ok", "audit": "passed", "exit": 0, "cost_source": "reported",
            "cost_usd": cost, "duration_s": 1.0, "route": None, "redactions": 0,
            "cached": False, "task_id": "t",
            "tokens": {"input": 100, "output": 10, "cache_read": 0, "cache_write": 0}, **extra}


def test_eval_spend_is_counted_left_out_or_alone(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: x}\n  bronze: {command: y}\n")
    own = [rec("r-own-1", "silver", 1.0), rec("r-own-2", "bronze", 0.5)]
    (ws.state / "ledger.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in own))
    # Two evaluations' jobs: their calls copied as the evaluation runner copies them.
    ledger.record_copies(ws.state, [rec("r-ev-1", "bronze", 0.25)], eval_id="e1", eval_job="j1")
    ledger.record_copies(ws.state, [rec("r-ev-2", "bronze", 0.125),
                                    rec("r-ev-3", "silver", 2.0)], eval_id="e2", eval_job="j1")
    assert (ws.state / "evals" / "e2" / "ledger.jsonl").exists()

    def figures(*args: str) -> dict[str, Any]:
        code, rep = ws.json("usage", "--period", "all", *args)
        assert code == 0, rep
        return {r["tier"]: (r["calls"], r["cost_usd"]) for r in rep["rows"]} | {
            "total": (rep["total"]["calls"], rep["total"]["cost_usd"])}

    assert figures() == {"bronze": (3, 0.875), "silver": (2, 3.0), "total": (5, 3.875)}
    assert figures("--evals", "include") == figures()
    assert figures("--evals", "exclude") == {"bronze": (1, 0.5), "silver": (1, 1.0),
                                             "total": (2, 1.5)}
    assert figures("--evals", "only") == {"bronze": (2, 0.375), "silver": (1, 2.0),
                                          "total": (3, 2.375)}
    # A group made of evaluation calls only disappears when they are left out.
    (ws.state / "ledger.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in own[:1]))
    (ws.state / "cache" / "ledger-index.sqlite").unlink()
    shutil.rmtree(ws.state / "evals")
    ledger.record_copies(ws.state, [rec("r-ev-4", "gold", 4.0)], eval_id="e3", eval_job="j1")
    code, rep = ws.json("usage", "--period", "all", "--evals", "exclude", "--by", "tier")
    assert code == 0 and [r["tier"] for r in rep["rows"]] == ["silver"], rep


def test_bad_evals_values_are_usage_errors(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: x}\n")
    p = ws.run("usage", "--evals", "some")
    assert p.returncode == 2
    assert "--evals 'some': expected one of include, exclude, only" in p.stderr
    p = ws.run("usage", "--evals", "exclude", "--format", "html")
    assert p.returncode == 2 and "--evals applies to the table, json and csv" in p.stderr
