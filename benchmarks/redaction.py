#!/usr/bin/env python3
"""What secret redaction costs: import, first use (compiling the rules), and 1 MiB windows.

    python benchmarks/redaction.py [--runs 7]

The redactor runs on every prompt and on every window of a worker's output (the log writer
feeds it windows of up to 1 MiB), so its cost per MiB bounds how fast a long line is logged.
Times are the minimum over ``--runs`` (the machine is shared and noisy: the minimum is the
least disturbed run). The baseline, measured in the same run on the same text, is one pass of a
single literal regex (``re.finditer("sk-ant-")``): the floor of any regex scanner; the ratio
says how many such passes redaction costs. Adversarial windows are the shapes that make
backtracking regexes quadratic; each must stay well under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def repeat(unit: str) -> str:
    return (unit * (MIB // len(unit) + 1))[:MIB]


def typical() -> str:
    """Code and prose: burnless's own sources and README, to 1 MiB."""
    parts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "burnless").rglob("*.py"))]
    parts.append((ROOT / "README.md").read_text(encoding="utf-8"))
    return repeat("\n".join(parts))


def stream_json() -> str:
    """A Claude Code stream-json log: tool results (a file read) as JSON-escaped lines."""
    source = (ROOT / "burnless" / "agent.py").read_text(encoding="utf-8")
    event = {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": source}]}}
    return repeat(json.dumps(event) + "\n")


def base64_token() -> str:
    rng = random.Random(10)
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(MIB))


WINDOWS: dict[str, Callable[[], str]] = {
    "typical (code + README)": typical,
    "claude stream-json (tool results)": stream_json,
    "one base64 token": base64_token,
    "= signs": lambda: "=" * MIB,
    "'password ' repeated": lambda: repeat("password "),
    "'the password is ' repeated": lambda: repeat("the password is "),
    "'mysql ' repeated": lambda: repeat("mysql "),
    "'eyJ.' repeated": lambda: repeat("eyJ."),
    "'https://a:b' repeated": lambda: repeat("https://a:b"),
    "dashes": lambda: "-" * MIB,
    # dense candidates: each one is looked at in Python, so these cost the most
    "'password: correct horse ' repeated": lambda: repeat("password: correct horse "),
    "masks and assignments": lambda: repeat("[REDACTED:password:0123abcd] password=x9 "),
}


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


MODULE = "burnless.safety.secrets"


def import_figures() -> tuple[float, float]:
    """Self import time of burnless.safety.secrets (ms, the minimum of 5), and its first
    redaction of a prompt (ms), which compiles the rules it needs. Byte-compiled first: without
    a .pyc (PYTHONDONTWRITEBYTECODE) the import would time the compiler."""
    import compileall

    compileall.compile_file(str(ROOT / "burnless" / "redact.py"), quiet=1)
    self_us = []
    for _ in range(5):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {MODULE}"],
                             capture_output=True, text=True, check=True).stderr
        line = next(ln for ln in err.splitlines() if ln.rstrip().endswith(MODULE))
        self_us.append(int(line.split("|")[0].split(":")[1]))
    # a prompt-sized text: the README's first 6 KB (rules whose literal is absent never compile)
    code = (f"import sys, time; from {MODULE} import Redactor; r = Redactor(b'k' * 32); "
            "text = open(sys.argv[1], encoding='utf-8').read()[:6000]; "
            "t0 = time.perf_counter(); r.redact(text); print(time.perf_counter() - t0)")
    first = min(float(subprocess.run([sys.executable, "-c", code, str(ROOT / "README.md")],
                                     capture_output=True, text=True, check=True).stdout)
                for _ in range(5))
    return min(self_us) / 1000, first * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    from burnless.safety.secrets import Redactor

    imported, first = import_figures()
    print(f"redaction benchmark (minimum of {args.runs} runs per window)")
    print(f"  import burnless.safety.secrets (self)      {imported:6.1f} ms")
    print(f"  first redaction of a 6 KB prompt   {first:6.1f} ms   (compiles the rules it needs)")
    redactor = Redactor(b"k" * 32)
    literal = re.compile("sk-ant-")
    print(f"  {'1 MiB window':38} {'redact':>8} {'baseline':>9} {'ratio':>6} {'masks':>6}")
    for name, make in WINDOWS.items():
        text = make()
        masks = redactor.redact(text).count
        took = best(lambda t=text: redactor.redact(t), args.runs)  # type: ignore[misc]
        base = best(lambda t=text: sum(1 for _ in literal.finditer(t)), args.runs)  # type: ignore[misc]
        print(f"  {name:38} {took * 1000:6.1f}ms {base * 1000:7.2f}ms {took / base:6.0f} "
              f"{masks:6d}")


if __name__ == "__main__":
    main()
