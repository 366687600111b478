#!/usr/bin/env python3
"""How much time burnless adds: `--help`, and `run`, side by side with the floor.

    python benchmarks/overhead.py [--runs 21]

Medians over interleaved runs on this machine (noisy: compare figures from one run only). The
floor is `benchmarks/floor_dispatcher.py`: a minimal Python dispatcher that reads the same YAML
config, spawns the same worker and appends one JSONL line under a lock — what any Python tool
doing burnless's job pays at the least. Targets (issue 15): `run` <= 1.6x the floor, `--help`
<= 1.2x the floor. `run` is timed twice: through the resident process (`burnless daemon
start`; the target applies to it, and the script checks from the daemon's log that every one of
those runs went through it), and without one (`BURNLESS_NO_DAEMON=1`: the interpreter imports
burnless for every run; printed on its own line, no target). The worker is a tiny shell
command (it reads the prompt and prints an envelope), also timed alone with the same stdin,
so `run` overhead = median(burnless run) - median(worker alone). Also checks with
`python -X importtime` that the run path imports no module it does not use (the anthropic SDK
above all).
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

ENVELOPE = '{"status": "ok", "kind": "thought", "summary": "done"}'
WORKER = f"sh -c {shlex.quote('cat >/dev/null; printf %s ' + shlex.quote(ENVELOPE))}"
CONFIG = f"""\
tiers:
  silver: {{command: {json.dumps(WORKER)}, format: text}}
planner: null
"""


def timed(argv: list[str], cwd: Path, stdin: bytes | None = None,
          env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, env=env)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{argv} failed: {p.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    # The console script users run (`python -m burnless` would add runpy's own imports).
    script = Path(sys.executable).parent / "burnless"
    burnless = [str(script)] if script.exists() else [sys.executable, "-m", "burnless"]
    # pip compiles bytecode when it installs a package; an editable checkout under
    # PYTHONDONTWRITEBYTECODE never gets any, and would time the compiler instead of burnless.
    import compileall

    import burnless as pkg

    compileall.compile_dir(Path(pkg.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / ".burnless").mkdir()
        (ws / ".burnless" / "config.yaml").write_text(CONFIG)
        os.environ["BURNLESS_HOME"] = str(ws / "home")
        # The runs without a resident process say so, in case the user's own one is running.
        cold = {**os.environ, "BURNLESS_NO_DAEMON": "1"}
        subprocess.run([*burnless, "daemon", "start", "--idle", "600"], cwd=ws, check=True,
                       capture_output=True)
        # Warm up (pyc files, page cache).
        for _ in range(2):
            timed([*burnless, "--help"], ws)
            timed([*burnless, "run", "warm up", "--session", "warm"], ws, env=cold)
            timed([*burnless, "run", "warm up", "--session", "warm"], ws)
        prompt_path = ws / "prompt.txt"
        help_t, run_t, resident_t, worker_t, floor_t = [], [], [], [], []
        floor = [sys.executable, str(Path(__file__).with_name("floor_dispatcher.py"))]
        worker_argv = shlex.split(WORKER)
        for i in range(args.runs):
            floor_t.append(timed([*floor, f"task number {i}"], ws))
            help_t.append(timed([*burnless, "--help"], ws))
            run_t.append(timed([*burnless, "run", f"task number {i}", "--session", "bench"], ws,
                               env=cold))
            resident_t.append(timed([*burnless, "run", f"task number {i}", "--session",
                                     "resident"], ws))
            # The worker alone, fed the prompt burnless would send next.
            prompt = subprocess.run([*burnless, "session", "prompt", "bench", "--task",
                                     f"task number {i}"], cwd=ws, capture_output=True).stdout
            prompt_path.write_bytes(prompt)
            worker_t.append(timed(worker_argv, ws, stdin=prompt))
        imports = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "burnless", "run", "import check",
             "--session", "imports"], cwd=ws, capture_output=True, text=True, env=cold,
        ).stderr
        subprocess.run([*burnless, "daemon", "stop"], cwd=ws, check=True, capture_output=True)
        # Every resident run went through the daemon: one child each, as its log says.
        log = (ws / "home" / "daemon.log").read_text()
        children = log.count(" ended: exit 0")
        if children != 2 + args.runs:
            raise SystemExit(f"the daemon ran {children} commands, not {2 + args.runs}:\n{log}")
    heavy = [ln for ln in imports.splitlines() if "anthropic" in ln or "rich" in ln
             or "prometheus" in ln or "burnless.sim" in ln or "typer" in ln
             or ln.rstrip().endswith(("| aiohttp", "| redis", "| tempfile"))]
    med = statistics.median
    overhead = med(run_t) - med(worker_t)
    base = med(floor_t)
    print(f"burnless overhead benchmark ({args.runs} interleaved runs, medians)")
    print(f"  floor dispatcher (wall)    {base * 1000:7.1f} ms")
    print(f"  burnless --help            {med(help_t) * 1000:7.1f} ms   "
          f"{med(help_t) / base:5.2f}x the floor (target <= 1.2x)")
    print(f"  burnless run, resident     {med(resident_t) * 1000:7.1f} ms   "
          f"{med(resident_t) / base:5.2f}x the floor (target <= 1.6x; `burnless daemon start`)")
    print(f"  burnless run, no daemon    {med(run_t) * 1000:7.1f} ms   "
          f"{med(run_t) / base:5.2f}x the floor (no target: imports burnless each time)")
    print(f"  worker alone (wall)        {med(worker_t) * 1000:7.1f} ms")
    print(f"  run overhead, resident     {(med(resident_t) - med(worker_t)) * 1000:7.1f} ms")
    print(f"  run overhead, no daemon    {overhead * 1000:7.1f} ms")
    for name, ratio, target in (("--help", med(help_t) / base, 1.2),
                                ("run (resident)", med(resident_t) / base, 1.6)):
        print(f"  {'PASS' if ratio <= target else 'FAIL'}  {name} / floor: {ratio:.2f} "
              f"(target <= {target})")
    print(f"  unused heavy imports on the run path: {len(heavy)}"
          + ("" if not heavy else "\n    " + "\n    ".join(heavy[:10])))


if __name__ == "__main__":
    main()
