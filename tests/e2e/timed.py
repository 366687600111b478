"""Run a command and append its own wall time, in seconds, as one line to a file.

``python timed.py TIMES -- PROGRAM ARGS...``: stdin, stdout and stderr are the command's; the
exit status is the command's. Only the command itself is waited for, not what it leaves behind
(a zombie child in its process group), which is the point: this is what a worker took.
"""

from __future__ import annotations

import subprocess
import sys
import time


def main() -> int:
    times, sep, *argv = sys.argv[1:]
    assert sep == "--" and argv, "usage: timed.py TIMES -- PROGRAM ARGS..."
    t0 = time.monotonic()
    code = subprocess.call(argv)
    wall = time.monotonic() - t0
    with open(times, "a", encoding="ascii") as f:
        f.write(f"{wall:.4f}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
