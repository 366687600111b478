"""The gateway's load points (issue 12): 200 concurrent streams without an error, and memory
that stays flat over a 100 MB stream (the 1,000 idle connections are in test_gateway.py).
The figures against LiteLLM are ``benchmarks/gateway.py``'s."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import Workspace, records
from tests.fakes.upstream import FakeUpstream
from tests.unit.test_gateway import (  # noqa: F401  (fixtures)
    Start,
    gateway,
    tiers_on,
)

HEADERS = {"content-type": "application/json", "x-api-key": "client-dummy",
           "anthropic-version": "2023-06-01"}


def body(text: str, stream: bool = True) -> bytes:
    return orjson.dumps({"model": "silver", "max_tokens": 100, "stream": stream,
                         "messages": [{"role": "user", "content": text}]})


async def stream_once(s: aiohttp.ClientSession, url: str, text: str) -> bytes:
    async with s.post(url + "/v1/messages", data=body(text), headers=HEADERS) as r:
        assert r.status == 200, await r.text()
        return await r.read()


def answer_text(data: bytes) -> str:
    """The text of an Anthropic event stream's deltas."""
    out = []
    for line in data.splitlines():
        if line.startswith(b"data: "):
            event = orjson.loads(line[6:])
            if event.get("type") == "content_block_delta":
                out.append(event["delta"]["text"])
    return "".join(out)


def test_two_hundred_concurrent_streams(ws: Workspace, gateway: Start,  # noqa: F811
                                        fakes: Any) -> None:  # noqa: F811
    """200 streams open at once (each 20 deltas 20 ms apart, so all overlap): every one
    arrives whole, in its own words, and is one ledger record."""
    fake = fakes("drip", drip=0.02, drips=20)
    srv = gateway(tiers_on(fake))

    async def main() -> list[bytes | BaseException]:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn,
                                         timeout=aiohttp.ClientTimeout(60)) as s:
            return await asyncio.gather(*(stream_once(s, srv.url, f"stream {i}")
                                          for i in range(200)), return_exceptions=True)

    t0 = time.monotonic()
    got = asyncio.run(main())
    elapsed = time.monotonic() - t0
    errors = [g for g in got if isinstance(g, BaseException)]
    assert errors == []
    for i, data in enumerate(got):
        assert isinstance(data, bytes)
        assert data.rstrip().endswith(b'data: {"type":"message_stop"}'), data[-200:]
        assert answer_text(data).endswith(f"echo: stream {i}")  # its own, not another's
    assert len(fake.requests) == 200
    assert elapsed < 20  # they ran side by side (one after another: 200 x 0.4 s = 80 s)
    recs = records(ws, 200)
    assert {r["status"] for r in recs} == {"ok"}


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    assert m
    return int(m.group(1)) / 1024


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_memory_stays_flat_over_a_100_mb_stream(ws: Workspace, tmp_path: Path) -> None:
    """``burnless serve`` as its own process relays one 100 MB stream (64 KB deltas): its
    resident memory grows by less than 20 MB meanwhile (nothing buffers the answer)."""
    text = "x" * 65536
    with FakeUpstream("drip", drip=0.0, drips=1600, chunk=65536) as fake:
        ws.config(tiers_on(fake))
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-api03-memtest-0123456789abcdef"}
        proc = subprocess.Popen([sys.executable, "-m", "burnless", "serve", "--port", "0"],
                                cwd=ws.root, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            m = re.search(r"serving (http://127\.0\.0\.1:\d+)/metrics", line)
            assert m, line
            url = m.group(1)

            async def main() -> tuple[int, bytes]:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(300)) as s:
                    # A first small answer: imports, pools and buffers are warm before `before`.
                    async with s.post(url + "/v1/messages", data=body("warm", stream=False),
                                      headers=HEADERS) as r:
                        assert r.status == 200
                    samples.append(_rss_mb(proc.pid))
                    n, tail = 0, b""
                    async with s.post(url + "/v1/messages", data=body(text),
                                      headers=HEADERS) as r:
                        assert r.status == 200
                        async for chunk in r.content.iter_any():
                            n += len(chunk)
                            tail = (tail + chunk)[-200:]
                    return n, tail

            samples: list[float] = []
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.05):
                    if samples:
                        samples.append(_rss_mb(proc.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                n, tail = asyncio.run(main())
            finally:
                done.set()
                sampler.join()
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stderr is not None:
                proc.stderr.close()
    assert n > 100_000_000 and tail.rstrip().endswith(b'data: {"type":"message_stop"}')
    growth = max(samples) - samples[0]
    print(f"\ngateway RSS over a {n / 1e6:.0f} MB stream: {samples[0]:.1f} MB before, "
          f"{max(samples):.1f} MB peak ({len(samples)} samples)")
    assert growth < 20, (samples[0], max(samples))
