#!/usr/bin/env python3
"""A 300-turn session against a fake worker: prompt bytes and burnless overhead per turn.

    python benchmarks/session_growth.py [--turns 300] [--window 50]

Each turn is a real `burnless run` subprocess (planner and executor are a tiny shell worker
that answers with an envelope). For each window of turns it prints the median prompt bytes
burnless sent, the median overhead (`run` wall time minus the worker's own wall time, measured
alone on the same prompt), and the bytes a replayed full transcript would send at that turn
(prefix + every earlier task and answer), for comparison. Compaction uses the default
threshold (12,000 tokens of plan + capsules, keep 6).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANSWER = (
    "Looked at the module, adjusted the handler and its test; all checks pass.\n"
    '{"status": "ok", "kind": "thought", "summary": "Adjusted the handler and its test as asked; '
    'the module keeps its public API", "plan": ["read the module", "change the handler", '
    '"run the tests"], "next": "review the next handler"}'
)
WORKER = f"sh -c {shlex.quote('cat >/dev/null; printf %s ' + shlex.quote(ANSWER))}"
PREFIX = "# Project rules\n" + "".join(f"- rule {i}: keep functions small and typed.\n"
                                       for i in range(60))


def task(i: int) -> str:
    return (f"Turn {i}: refactor handler_{i} in inventory/module_{i % 17}.py so that it "
            f"validates its quantity argument and returns a typed result; keep the old "
            f"behaviour for valid input and add a test case for qty={i}.")


def timed(argv: list[str], cwd: Path, stdin: bytes | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True)
    if p.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({p.returncode}): {p.stderr.decode()[-400:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--window", type=int, default=50)
    args = ap.parse_args()
    import compileall

    import burnless as pkg
    from burnless.agent import BurnlessAgent

    compileall.compile_dir(Path(pkg.__file__).parent, quiet=1)  # as an installed package
    # The console script users run (`python -m burnless` would add runpy's own imports).
    script = Path(sys.executable).parent / "burnless"
    burnless = [str(script)] if script.exists() else [sys.executable, "-m", "burnless"]
    worker_argv = shlex.split(WORKER)
    rows: list[tuple[int, int, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / ".burnless").mkdir()
        (ws / ".burnless" / "prefix.md").write_text(PREFIX)
        tier = {"command": WORKER, "format": "text", "price": {"input": 3.0, "output": 15.0}}
        (ws / ".burnless" / "config.yaml").write_text(json.dumps(
            {"tiers": {"gold": tier, "silver": tier}, "planner": "gold", "executor": "silver"}))
        os.environ["BURNLESS_HOME"] = str(ws / "home")
        agent = BurnlessAgent(cwd=ws)
        transcript = len(PREFIX.encode())
        for i in range(1, args.turns + 1):
            prompt = agent.next_prompt("growth", task(i))
            sent = prompt.text.encode()
            wall = timed([*burnless, "run", task(i), "--session", "growth"], ws)
            alone = timed(worker_argv, ws, stdin=sent)
            transcript += len(task(i).encode()) + len(ANSWER.encode())
            rows.append((i, len(sent), wall - alone, transcript))
        caps = [json.loads(line) for line in
                (ws / ".burnless/sessions/growth/capsules.jsonl").read_text().splitlines()]
    compactions = [c["seq"] for c in caps if c["role"] == "compact"]
    print(f"session growth: {args.turns} turns, window {args.window} (medians per window)")
    print(f"{'turns':>9}  {'prompt bytes':>12}  {'overhead ms':>11}  {'full transcript bytes':>21}")

    def line(label: str, chunk: list[tuple[int, int, float, int]]) -> None:
        print(f"{label:>9}  {statistics.median(r[1] for r in chunk):>12,.0f}  "
              f"{statistics.median(r[2] for r in chunk) * 1000:>11.1f}  "
              f"{chunk[-1][3]:>21,}")

    line("1-10", rows[:10])
    for start in range(0, args.turns, args.window):
        chunk = rows[start:start + args.window]
        line(f"{start + 1}-{start + len(chunk)}", chunk)
    early = statistics.median(r[2] for r in rows[:10])
    late = statistics.median(r[2] for r in rows[-10:])
    print(f"compactions at capsule seqs: {compactions}")
    print(f"max prompt bytes after the first compaction: "
          f"{max(r[1] for r in rows if r[0] > (compactions[0] if compactions else 0)):,}")
    print(f"overhead, median of the last 10 turns / first 10 turns: {late / early:.2f}x "
          f"(target <= 1.2x)")


if __name__ == "__main__":
    main()
