#!/usr/bin/env python3
"""Request latency of `burnless sim serve` over one keep-alive connection.

    python benchmarks/sim_server.py [--requests 200] [--baseline REV]

A client (stdlib ``http.client``, one connection kept alive) sends N small requests in a row
to each server: ``POST /v1/messages`` (JSON), the same streamed (SSE), and ``GET /``. Printed:
the median and 90th percentile per request, and the ratio baseline / current.

The baseline is the simulator's server module as it was at git revision REV (default: the
last commit before the move to aiohttp, when the checkout's history has it), loaded from
``git show`` into a temporary module; without git history only the current server is measured.
Run both in the same process, one after the other, so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The last commit whose burnless/sim/server.py was the stdlib (http.server) one.
DEFAULT_BASELINE = "2c4767e"
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "<task>\nsay hi\n</task>"}],
}


def load_baseline(rev: str) -> ModuleType | None:
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:burnless/sim/server.py"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "sim_server_baseline.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("sim_server_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def measure(url: str, n: int, request: Callable[[http.client.HTTPConnection], None]) -> list[float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
    try:
        for _ in range(5):  # warm-up: connect, caches, first imports
            request(conn)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            request(conn)
            times.append(time.perf_counter() - t0)
        return times
    finally:
        conn.close()


def post(stream: bool) -> Callable[[http.client.HTTPConnection], None]:
    data = json.dumps(dict(BODY, stream=stream)).encode()
    headers = {"content-type": "application/json", "x-api-key": "bench"}

    def go(conn: http.client.HTTPConnection) -> None:
        conn.request("POST", "/v1/messages", body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        if resp.status != 200 or not payload:
            raise SystemExit(f"bad answer {resp.status}: {payload[:200]!r}")

    return go


def get_root(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/")
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise SystemExit(f"bad answer {resp.status}")


CASES: dict[str, Callable[[http.client.HTTPConnection], None]] = {
    "POST /v1/messages (JSON)": post(False),
    "POST /v1/messages (SSE)": post(True),
    "GET /": get_root,
}


def run(module: Any, n: int) -> dict[str, list[float]]:
    server = module.SimServer().start()
    try:
        return {name: measure(server.url, n, case) for name, case in CASES.items()}
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision of the old server")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from burnless.sim import server as current

    baseline = load_baseline(args.baseline) if args.baseline else None
    results = {"current": run(current, args.requests)}
    if baseline is not None:
        results["baseline"] = run(baseline, args.requests)
    else:
        print(f"(no baseline: git revision {args.baseline!r} not available)")
    print(f"{args.requests} requests per case over one keep-alive connection (ms per request)")
    print(f"{'case':28} {'server':9} {'median':>8} {'p90':>8}")
    for name in CASES:
        for label, figures in results.items():
            times = sorted(figures[name])
            median = statistics.median(times) * 1000
            p90 = times[int(len(times) * 0.9)] * 1000
            print(f"{name:28} {label:9} {median:8.2f} {p90:8.2f}")
        if "baseline" in results:
            ratio = statistics.median(results["baseline"][name]) / statistics.median(
                results["current"][name]
            )
            print(f"{name:28} {'ratio':9} {ratio:7.1f}x  (baseline median / current median)")


if __name__ == "__main__":
    main()
