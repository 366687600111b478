#!/usr/bin/env python3
"""One very long output line through `burnless run`: time, peak memory, and the answer kept.

    python benchmarks/long_line.py [--sizes 16 32 100]

For each size, a worker (sh, head and tr: a few MB of memory, so the peak is burnless's) prints
one line of that many MB, then its envelope `{"status": "failed", ...}`. Measured, for
`burnless run --json` with redaction on (the default) and off:

- wall time, CPU time (user + system, burnless and what it waited for) and throughput;
- peak RSS (``ru_maxrss`` from ``wait4``: the largest of burnless and the processes it waited
  for, which is burnless here);
- that the run reports the worker's envelope (status "failed", exit 1) and that the run log
  holds the whole line.

Baselines from the same run: the worker alone (its output piped to /dev/null) and a run whose
worker prints a one-line answer; the ratios are against those. Bound (issue 10): a 100 MB line
in under 15 s and under 300 MB (on a machine whose load exceeds its CPUs, the wall time measures
the other processes: the bound is then checked on CPU time, and the load is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENVELOPE = '{"status": "failed", "kind": "thought", "summary": "tests fail"}'


def worker(mb: int) -> str:
    script = (f"cat >/dev/null; head -c {mb << 20} /dev/zero | tr '\\0' y; echo; "
              f"printf '%s\\n' {shlex.quote(ENVELOPE)}")
    return f"sh -c {shlex.quote(script)}"


def config(mb: int, redact: bool) -> str:
    policy = "" if redact else "policy: {redact_secrets: false}\n"
    return (f"tiers:\n  silver: {{command: {json.dumps(worker(mb))}, model: claude-sonnet-4-6}}\n"
            f"planner: null\n{policy}")


def burnless_run(root: Path, mb: int, redact: bool) -> tuple[float, float, int, dict[str, Any]]:
    """Wall and CPU seconds, peak RSS in KB, and the --json result of one run, in a fresh
    workspace (a failed run would open the tier's circuit breaker for the next one)."""
    ws = Path(tempfile.mkdtemp(dir=root))
    (ws / ".burnless").mkdir()
    (ws / ".burnless" / "config.yaml").write_text(config(mb, redact))
    out = ws / "out.json"
    t0 = time.perf_counter()
    with out.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "burnless", "run", "do it", "--json"],
                                cwd=ws, stdout=f, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    result = json.loads(out.read_bytes())
    result["_exit"] = os.waitstatus_to_exitcode(status)
    result["_log_bytes"] = (ws / result["log"]).stat().st_size
    shutil.rmtree(ws)
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, result


def worker_alone(mb: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(shlex.split(worker(mb)), input=b"prompt", stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 100])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BURNLESS_HOME"] = str(root / "home")
        burnless_run(root, 0, True)  # warm up
        base_t, base_cpu, base_rss, _ = burnless_run(root, 0, True)
        print("long-line benchmark: one line of N MB, then a failed envelope; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"  baseline run (tiny answer): {base_t:6.2f} s wall  {base_cpu:6.2f} s CPU  "
              f"{base_rss / 1024:4.0f} MB peak")
        print(f"  {'size':>6} {'redact':>6} {'wall':>8} {'CPU':>8} {'MB/s':>6} {'x worker':>8} "
              f"{'peak RSS':>9} {'x base':>7}  envelope  log")
        failures = 0
        for mb in args.sizes:
            alone = worker_alone(mb)
            for redact in (True, False):
                wall, cpu, rss, res = burnless_run(root, mb, redact)
                honoured = res["status"] == "failed" and res["_exit"] == 1
                complete = res["_log_bytes"] >= (mb << 20)
                # On a busy machine the wall time measures the others: then CPU time stands in.
                busy = os.getloadavg()[0] > (os.cpu_count() or 1)
                seconds = cpu if busy else wall
                bound = mb < 100 or not redact or (seconds < 15 and rss < 300 * 1024)
                failures += not (honoured and complete and bound)
                print(f"  {mb:>4}MB {'on' if redact else 'off':>6} {wall:7.2f}s {cpu:7.2f}s "
                      f"{mb / wall:6.1f} {wall / alone:8.0f} {rss / 1024:7.0f}MB "
                      f"{rss / base_rss:7.1f}  {'kept' if honoured else 'LOST':8}  "
                      f"{'complete' if complete else 'SHORT'}"
                      + ("" if bound else "  (over the 15 s / 300 MB bound)")
                      + ("  (busy machine: bound checked on CPU time)" if busy and mb >= 100
                         and redact else ""))
            print(f"  {mb:>4}MB worker alone {alone:7.2f}s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
