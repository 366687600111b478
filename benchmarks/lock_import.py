#!/usr/bin/env python3
"""What the `filelock` package would add to every burnless invocation, against the lock module
burnless ships instead (`burnless/storage/locks.py`).

    pip install filelock   # not a dependency of burnless; only this measurement needs it
    python benchmarks/lock_import.py [--runs 21]

Each figure is the cumulative `python -X importtime` time of the module imported after what
`burnless run` imports anyway (the CLI, typer, logging, typing...), so only what the lock
module itself adds counts. Medians over interleaved runs; the same run measures both.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

# Already imported on the run path before a lock is taken: not charged to either lock.
PRELUDE = "import burnless.cli, burnless.config, logging, typing, threading, time"


def added_ms(module: str) -> float:
    code = f"{PRELUDE}; import {module}"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True).stderr
    # The last line naming the module at the top level is its own cumulative time.
    for line in reversed(err.splitlines()):
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1]) / 1000
    raise SystemExit(f"{module}: not in the importtime output")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    try:
        import filelock  # noqa: F401
    except ImportError:
        raise SystemExit("pip install filelock first: it is the baseline measured") from None
    theirs: list[float] = []
    ours: list[float] = []
    for _ in range(args.runs):
        theirs.append(added_ms("filelock"))
        ours.append(added_ms("burnless.storage.locks"))
    a, b = statistics.median(theirs), statistics.median(ours)
    print(f"import added to a burnless invocation, median of {args.runs} interleaved runs:")
    print(f"  filelock                 {a:6.1f} ms")
    print(f"  burnless.storage.locks   {b:6.1f} ms")
    print(f"  filelock / locks.py      {a / b:6.1f}x  (difference {a - b:.1f} ms)")


if __name__ == "__main__":
    main()
