#!/usr/bin/env python3
"""What a shared Redis backend costs a call, against the local files it replaces.

    python benchmarks/shared_state.py [--calls 300] [--runs 11]   # needs redis-server

Three figures, each measured in the same run as its baseline:

1. What a budgeted `burnless run` imports with `state.backend: redis://...` (the `redis` client
   and `burnless.state` on top), against the same run with the local backend (`python -X
   importtime`, the sum of every module's own time; medians of interleaved runs).
2. One budget reservation and its settlement (reserve, append the ledger record, release), in
   process, with the local backend (file locks, the ledger index) and with a redis-server on
   loopback: calls per second and the ratio.
3. The same with 8 threads at once: with Redis, what serializes is a script on the server; with
   files, the workspace's budget lock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from burnless.config import load_config  # noqa: E402


def import_ms(root: Path) -> float:
    """Every module a `burnless run` in ``root`` imports (the sum of their own times)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", "run", "hi"],
                         cwd=root, capture_output=True, text=True).stderr
    total = 0
    for line in err.splitlines():
        own = line.split("|")[0].removeprefix("import time:").strip()
        if line.startswith("import time:") and own.isdigit():
            total += int(own)
    return total / 1000


def run_workspace(root: Path, backend: str) -> Path:
    import shlex

    worker = Path(__file__).resolve().parents[1] / "tests" / "fakes" / "worker.py"
    command = " ".join(shlex.quote(a) for a in (sys.executable, str(worker), "--mode", "honest"))
    (root / ".burnless").mkdir(parents=True)
    (root / ".burnless" / "config.yaml").write_text(
        f"tiers:\n  silver: {{command: '{command}', model: claude-haiku-4-5}}\n"
        "budget: {max_cost_per_day: 1000000}\n"
        f"state: {{backend: '{backend}', namespace: bench-run}}\n")
    return root


def workspace(root: Path, backend: str) -> Path:
    (root / ".burnless").mkdir(parents=True)
    (root / ".burnless" / "config.yaml").write_text(
        "tiers:\n  silver: {api: anthropic, model: claude-haiku-4-5, max_output_tokens: 100}\n"
        "budget: {max_cost_per_day: 1000000}\n"
        f"state: {{backend: '{backend}', namespace: bench}}\n")
    return root


def calls_per_s(root: Path, calls: int, threads: int) -> float:
    from burnless.accounting import ledger
    from burnless.accounting.budget import Guard
    from burnless.accounting.ledger import LedgerRecord

    cfg = load_config(cwd=root)
    guard = Guard(cfg)
    tier = cfg.tiers["silver"]

    def work(n: int, i: int) -> None:
        for k in range(n):
            res = guard.reserve(session=f"s{i}", tier=tier, prompt_tokens=100, task_spent=0.0)
            rec = LedgerRecord(run_id=f"r-{i}-{k}-{os.urandom(4).hex()}", session=f"s{i}",
                               role="execution", tier="silver", model="claude-haiku-4-5",
                               status="ok", cost_usd=0.0001, cost_source="reported")
            ledger.record_call(cfg.state_dir, rec, guard.settling(res, 0.0001))

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(calls // threads, i)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (calls // threads * threads) / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args()
    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            local_ws = run_workspace(Path(tmp) / "run-local", "local")
            shared_ws = run_workspace(Path(tmp) / "run-redis", server.url)
            local_ms, shared_ms = [], []
            for _ in range(args.runs):
                local_ms.append(import_ms(local_ws))
                shared_ms.append(import_ms(shared_ws))
        finally:
            server.stop()
    a, b = statistics.median(shared_ms), statistics.median(local_ms)
    print(f"imports of a budgeted `burnless run`, median of {args.runs} interleaved runs:")
    print(f"  local backend      {b:7.1f} ms")
    print(f"  redis backend      {a:7.1f} ms  (+{a - b:.1f} ms, {a / b:.2f}x)")

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            for threads in (1, 8):
                local = calls_per_s(workspace(Path(tmp) / f"local{threads}", "local"),
                                    args.calls, threads)
                shared = calls_per_s(workspace(Path(tmp) / f"redis{threads}", server.url),
                                     args.calls, threads)
                print(f"reserve + record + settle, {threads} thread(s), {args.calls} calls:")
                print(f"  local files        {local:8.0f} calls/s")
                print(f"  redis (loopback)   {shared:8.0f} calls/s  ({shared / local:.2f}x local)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
