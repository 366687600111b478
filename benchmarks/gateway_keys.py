#!/usr/bin/env python3
"""What virtual keys cost the gateway per request.

    python benchmarks/gateway_keys.py [--requests 300]

1. The key check alone (``Keyring.reload`` — one ``stat`` of keys.json — then ``check``: parse,
   look up the id, SHA-256 of salt and secret, constant-time compare), for a valid key, a wrong
   secret and a malformed key, in microseconds per call, beside a hashed scrypt check of the
   same key (n=2**14, r=8: what a password hash would have cost each request instead).
2. Two gateways in this process, one with a key configured and one without, the simulator as
   their upstream: small non-streamed ``POST /v1/messages`` over one keep-alive connection
   each, taking turns request by request. Printed: the median and 90th percentile of each,
   and the difference (what keys add), as a ratio of the keyless median too.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BODY = json.dumps({"model": "silver", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "say hi"}]}).encode()
UPSTREAM_KEY = "sk-ant-api03-benchmark-KEY-0123456789abcdef"


def micro(ws: Path) -> None:
    from burnless.config import load_config
    from burnless.gateway import keys

    cfg = load_config(cwd=ws)
    key, _ = keys.create(cfg, "bench")
    ring = keys.Keyring(cfg)
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    n = 20000
    print("1. the key check, per request (reload = one stat of keys.json, then check):")
    for label, value in (("valid key", key), ("wrong secret", wrong), ("malformed", "sk-xyz")):
        t = timeit.timeit(lambda v=value: (ring.reload(), ring.check(v)), number=n) / n  # type: ignore[misc]
        print(f"   {label:<13} {t * 1e6:7.2f} µs")
    salt = os.urandom(16)
    t = timeit.timeit(lambda: hashlib.scrypt(key.encode(), salt=salt, n=2**14, r=8, p=1),
                      number=5) / 5
    print(f"   (scrypt n=2**14 instead: {t * 1e3:.1f} ms a request)")


def serve(ws: Path, upstream: str, with_key: bool) -> tuple[object, str | None]:
    from burnless.config import load_config
    from burnless.gateway import keys
    from burnless.gateway.app import Server

    (ws / ".burnless").mkdir(parents=True, exist_ok=True)
    (ws / ".burnless" / "config.yaml").write_text(
        f"tiers:\n  silver: {{api: anthropic, model: claude-haiku-4-5, base_url: '{upstream}'}}\n")
    cfg = load_config(cwd=ws)
    key = keys.create(cfg, "bench")[0] if with_key else None
    return Server(cfg, environ={"ANTHROPIC_API_KEY": UPSTREAM_KEY}).start(), key


def post(conn: http.client.HTTPConnection, key: str | None) -> float:
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01",
               "x-api-key": key or "client"}
    t0 = time.perf_counter()
    conn.request("POST", "/v1/messages", BODY, headers)
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise SystemExit(f"gateway answered {resp.status}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    from burnless.sim.server import SimServer

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BURNLESS_HOME"] = str(Path(tmp) / "home")
        micro_ws = Path(tmp) / "micro"
        (micro_ws / ".burnless").mkdir(parents=True)
        (micro_ws / ".burnless" / "config.yaml").write_text(
            "tiers:\n  silver: {api: anthropic, model: claude-haiku-4-5}\n")
        micro(micro_ws)
        with SimServer(api_key=UPSTREAM_KEY) as sim:
            plain, _ = serve(Path(tmp) / "plain", sim.url, with_key=False)
            keyed, key = serve(Path(tmp) / "keyed", sim.url, with_key=True)
            try:
                conns = {name: http.client.HTTPConnection(*srv.bound)  # type: ignore[attr-defined]
                         for name, srv in (("without keys", plain), ("with a key", keyed))}
                times: dict[str, list[float]] = {name: [] for name in conns}
                for i in range(args.requests + 20):
                    for name, conn in conns.items():
                        t = post(conn, key if name == "with a key" else None)
                        if i >= 20:  # warm-up
                            times[name].append(t)
                for c in conns.values():
                    c.close()
            finally:
                plain.close()  # type: ignore[attr-defined]
                keyed.close()  # type: ignore[attr-defined]
    print(f"2. POST /v1/messages through the gateway, {args.requests} each, taking turns:")
    med = {}
    for name, ts in times.items():
        ts.sort()
        med[name] = statistics.median(ts)
        print(f"   {name:<13} median {med[name] * 1e3:6.2f} ms   p90 "
              f"{ts[int(len(ts) * 0.9)] * 1e3:6.2f} ms")
    added = med["with a key"] - med["without keys"]
    print(f"   keys add {added * 1e3:+.3f} ms to the median "
          f"({med['with a key'] / med['without keys']:.3f}x the keyless median)")


if __name__ == "__main__":
    main()
