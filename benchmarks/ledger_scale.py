"""How burnless usage and the metrics server scale with a large ledger.

    python benchmarks/ledger_scale.py [--records 1000000] [--runs 3]

Generates a realistic ledger (120 days, three tiers, planning/execution/compaction calls,
failures, refusals, unknown costs) in a temporary workspace, then measures with real
processes: ``burnless usage --period last30d`` cold (no checkpoint) and warm (checkpoint, one
new record), and one ``/metrics`` scrape right after one new record is appended while the
server is up and caught up. Prints medians next to the targets (usage <= 3 s, scrape <= 50 ms).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

from burnless.accounting import ledger
from burnless.accounting.ledger import LedgerRecord, Route
from burnless.accounting.tokens import Tokens

TIERS = (("bronze", "claude-haiku-4-5", 1.0, 5.0), ("silver", "claude-sonnet-4-6", 3.0, 15.0),
         ("gold", "claude-opus-4-8", 5.0, 25.0))
CONFIG = """tiers:
  gold:   {command: "claude --model opus-4.8"}
  silver: {command: "claude --model sonnet-4.6"}
  bronze: {command: "claude --model haiku-4.5"}
"""


def generate(path: Path, n: int, seed: int = 7) -> None:
    """Write ``n`` records in time order over the last 120 days (about 1 M records / 10 s)."""
    rnd = random.Random(seed)
    end = time.time()
    t = end - 120 * 86400
    step = (end - t) / n
    day_cache: dict[int, str] = {}
    statuses = ["ok"] * 90 + ["failed"] * 4 + ["partial"] * 2 + ["escalate"] + ["refused"] * 3
    with open(path, "wb", buffering=1 << 22) as f:
        buf: list[bytes] = []
        for i in range(n):
            t += step * rnd.random() * 2
            sec = int(t)
            day = sec // 86400
            if day not in day_cache:
                day_cache[day] = time.strftime("%Y-%m-%d", time.gmtime(sec))
            rest = sec % 86400
            ts = (f"{day_cache[day]}T{rest // 3600:02d}:{rest % 3600 // 60:02d}:"
                  f"{rest % 60:02d}.{int(t % 1 * 1000):03d}Z")
            session = f"s{sec // 14400}-{rnd.randrange(8)}"  # ~7,000 sessions of ~140 calls
            r = rnd.random()
            role = "planning" if r < 0.08 else ("compaction" if r < 0.10 else "execution")
            tier, model, pin, pout = TIERS[2] if role == "planning" else TIERS[rnd.randrange(2)]
            status = statuses[rnd.randrange(100)]
            if status == "refused":
                rec = {"v": 1, "ts": ts, "run_id": f"r-x-{i:06x}", "session": session,
                       "seq": None, "role": role, "tier": tier, "model": model,
                       "status": "refused", "audit": "skipped", "exit": None,
                       "tokens": {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0},
                       "cost_usd": 0.0, "cost_source": "priced", "duration_s": 0.0,
                       "route": {"tier": tier, "reasons": ["pinned"]}, "redactions": 0,
                       "cached": False, "task_id": f"t-{i:012x}",
                       "reason": "budget.max_cost_per_day = $5.0000: day has spent $5.0012",
                       "refused_by": "budget"}
            else:
                inp, out = rnd.randrange(200, 3000), rnd.randrange(50, 2000)
                cr, cw = rnd.randrange(0, 40000), rnd.randrange(0, 2000)
                unknown = rnd.random() < 0.02
                cost = None if unknown else (inp * pin + out * pout + cr * pin * 0.1
                                             + cw * pin * 1.25) / 1e6
                rec = {"v": 1, "ts": ts, "run_id": f"r-x-{i:06x}", "session": session,
                       "seq": i % 500, "role": role, "tier": tier, "model": model,
                       "status": status, "exit": 0 if status == "ok" else 1,
                       "audit": ("failed" if rnd.random() < 0.03 else "passed")
                       if role == "execution" else "skipped",
                       "tokens": {"input": inp, "output": out, "cache_read": cr,
                                  "cache_write": cw},
                       "cost_usd": cost, "cost_source": "unknown" if unknown else "reported",
                       "duration_s": round(rnd.random() * 30, 3),
                       "route": {"tier": tier, "reasons": ["pinned", "rule 2: keywords"]},
                       "redactions": 0, "cached": False, "task_id": f"t-{i:012x}"}
            buf.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS))
            if len(buf) == 10000:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")


def one_record(state: Path) -> None:
    ledger.record_call(state, LedgerRecord(
        run_id=ledger.new_run_id(), session="bench", role="execution", tier="silver",
        model="claude-sonnet-4-6", status="ok", tokens=Tokens(812, 240, 10240, 96),
        cost_usd=0.0076, cost_source="reported", audit="passed", route=Route("silver"),
    ))


def timed_usage(root: Path) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "burnless", "usage", "--period", "last30d"],
                       cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"burnless usage failed: {p.stderr}")
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        r.read()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="burnless-bench-"))
    try:
        state = root / ".burnless"
        state.mkdir()
        (state / "config.yaml").write_text(CONFIG)
        t0 = time.perf_counter()
        generate(state / "ledger.jsonl", args.records)
        gen_s = time.perf_counter() - t0
        size = (state / "ledger.jsonl").stat().st_size
        cache = state / "cache"

        cold = []
        for _ in range(args.runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(timed_usage(root))
        timed_usage(root)  # leaves a checkpoint
        warm = []
        for _ in range(args.runs):
            one_record(state)
            warm.append(timed_usage(root))
        ckpt = (cache / "ledger-index.json").stat().st_size

        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(
            [sys.executable, "-m", "burnless", "serve", "--port", str(port)], cwd=root, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            start = time.perf_counter()
            while True:
                try:
                    scrape(url + "/healthz")
                    break
                except OSError:
                    if server.poll() is not None or time.perf_counter() - start > 120:
                        raise SystemExit(f"server did not start: {server.stderr.read()}") from None
                    time.sleep(0.05)
            startup = time.perf_counter() - start
            scrape(url + "/metrics")  # caught up
            scrapes = []
            for _ in range(max(args.runs, 5)):
                one_record(state)
                scrapes.append(scrape(url + "/metrics"))
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    print(f"ledger: {args.records:,} records, {size / 1e6:,.0f} MB, generated in {gen_s:.1f} s;"
          f" checkpoint {ckpt / 1e6:.1f} MB; {os.cpu_count()} CPUs")
    rows = [
        ("usage --period last30d, cold (no checkpoint)", med(cold), cold, 3.0),
        ("usage --period last30d, warm (+1 record)", med(warm), warm, 3.0),
        ("serve: start until /healthz (from checkpoint)", startup, [startup], None),
        ("/metrics scrape after 1 new record", med(scrapes), scrapes, 0.050),
    ]
    print(f"{'measure':<48} {'median':>9} {'target':>8}  runs")
    for name, value, runs, target in rows:
        tgt = "-" if target is None else (f"{target * 1000:.0f} ms" if target < 1
                                          else f"{target:.0f} s")
        fmt = (lambda v: f"{v * 1000:.1f} ms") if value < 1 else (lambda v: f"{v:.2f} s")
        flag = "" if target is None or value <= target else "  MISSED"
        print(f"{name:<48} {fmt(value):>9} {tgt:>8}  {', '.join(fmt(v) for v in runs)}{flag}")


if __name__ == "__main__":
    main()
