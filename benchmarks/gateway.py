#!/usr/bin/env python3
"""What the gateway (`burnless serve`) adds, side by side in one run against the same loopback
upstream: direct calls, through the gateway, and (``--with-litellm``) through LiteLLM's proxy.

    python benchmarks/gateway.py [--with-litellm] [--quick]

Processes (each its own; on a 2-core machine the proxy under test gets CPU 1 to itself, and the
fake upstream and the load generator share CPU 0; ``--no-pin`` leaves scheduling to the OS):

    fake upstream   an aiohttp server in this file (``_fake``): Anthropic Messages and OpenAI
                    Chat Completions, JSON and SSE, precomputed answers. Measured alone first
                    ("direct"): that is the floor every proxy adds to.
    gateway         ``python -m burnless serve`` on a config whose two tiers point at the fake
                    (an ``api: anthropic`` and an ``api: openai`` tier; every request metered
                    in the ledger, as in real use).
    LiteLLM         ``litellm --config`` from its own virtual environment (created by this
                    script on first use, ``litellm[proxy]`` from PyPI; never a dependency of
                    burnless), one model entry per protocol pointing at the same fake,
                    telemetry off, no database.
    load generator  an asyncio/aiohttp client in a separate process (``_load``), reporting its
                    own CPU time, so one can see it is not the bottleneck.

Measured, for each target: the median latency of a small non-streamed request and the time to
first byte of a small streamed one (one kept-alive connection, rounds interleaved between the
targets), throughput at 64 concurrent clients, 200 concurrent streams (each ~1 s long; every
one must arrive whole), and for the gateway its memory (RSS) over one 100 MB stream. Targets
are printed as PASS/FAIL lines. Figures vary from run to run on a shared machine: compare the
ratios of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
ANTHROPIC_MODEL = "claude-haiku-4-5"
OPENAI_MODEL = "gpt-5-mini"
ANSWER = "Hello! How can I help you today?"
CONCURRENCY = 64
STREAMS = 200
BIG_STREAM = 100 * 1000 * 1000  # bytes of answer text in the memory test
DEFAULT_LITELLM_VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
    "burnless-bench/litellm-venv")

# =========================================================================== the fake upstream
#
# The text of the last user message steers the answer, so the same request body works through
# every proxy (LiteLLM does not forward unknown headers): "deltas=N gap=S size=B" streams N
# deltas of B characters, S seconds apart; anything else gets the small fixed answer.

_STEER = re.compile(r"deltas=(\d+) gap=([\d.]+) size=(\d+)")


def _sse(event: str | None, data: dict[str, Any]) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


def _anthropic_parts(model: str, text_deltas: list[str]) -> tuple[bytes, list[bytes], bytes]:
    start = _sse("message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}})
    start += _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})
    deltas = [_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": d}})
              for d in text_deltas]
    out_tokens = max(1, sum(len(d) for d in text_deltas) // 4)
    end = _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    end += _sse("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": out_tokens}})
    end += _sse("message_stop", {"type": "message_stop"})
    return start, deltas, end


def _openai_parts(model: str, text_deltas: list[str], usage: bool
                  ) -> tuple[bytes, list[bytes], bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model}
    start = _sse(None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                   "content": ""},
                                             "finish_reason": None}]})
    deltas = [_sse(None, {**base, "choices": [{"index": 0, "delta": {"content": d},
                                               "finish_reason": None}]})
              for d in text_deltas]
    out_tokens = max(1, sum(len(d) for d in text_deltas) // 4)
    end = _sse(None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        end += _sse(None, {**base, "choices": [], "usage": {
            "prompt_tokens": 12, "completion_tokens": out_tokens, "total_tokens": 12 + out_tokens,
            "prompt_tokens_details": {"cached_tokens": 0}}})
    end += b"data: [DONE]\n\n"
    return start, deltas, end


def _anthropic_json(model: str) -> bytes:
    return json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 9,
                                         "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 0}}).encode()


def _openai_json(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
        "model": model, "choices": [{"index": 0, "message": {"role": "assistant",
                                                             "content": ANSWER},
                                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}).encode()


def _last_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return ""
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


def fake_main(argv: list[str]) -> None:
    """``gateway.py _fake``: serve on 127.0.0.1 and print the port."""
    from aiohttp import web

    small_words = [w + " " for w in ANSWER.split()]
    cache: dict[tuple[str, str, str], bytes] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        model = str(body.get("model") or "unknown")
        stream = bool(body.get("stream"))
        anthropic = request.path.endswith("/messages")
        steer = _STEER.search(_last_text(body))
        if not stream:
            key = ("a" if anthropic else "o", model, "json")
            data = cache.get(key)
            if data is None:
                data = cache[key] = _anthropic_json(model) if anthropic else _openai_json(model)
            return web.Response(body=data, content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream",
                                           "cache-control": "no-cache"})
        await resp.prepare(request)
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if steer is None:
            key = ("a" if anthropic else "o", model, f"sse usage={usage}")
            data = cache.get(key)
            if data is None:
                parts = (_anthropic_parts(model, small_words) if anthropic
                         else _openai_parts(model, small_words, usage))
                data = cache[key] = parts[0] + b"".join(parts[1]) + parts[2]
            await resp.write(data)
        else:
            n, gap, size = int(steer.group(1)), float(steer.group(2)), int(steer.group(3))
            chunk = ("x" * (size - 1)) + " "
            start, (delta,), end = (_anthropic_parts(model, [chunk]) if anthropic
                                    else _openai_parts(model, [chunk], usage))
            await resp.write(start)
            batch = 1 if gap else max(1, (256 * 1024) // len(delta))  # fewer, larger writes
            sent = 0
            while sent < n:
                k = min(batch, n - sent)
                await resp.write(delta * k)
                sent += k
                if gap:
                    await asyncio.sleep(gap)
            await resp.write(end)
        await resp.write_eof()
        return resp

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/messages", answer)
        app.router.add_post("/v1/chat/completions", answer)
        app.router.add_route("*", "/", root)
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", int(argv[0]) if argv else 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"port {port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# =========================================================================== the load generator


@dataclass(frozen=True)
class Call:
    """One kind of request: its protocol, streamed or not, and the steering text."""

    api: str  # anthropic | openai
    stream: bool
    text: str = "say hi"

    def path(self) -> str:
        return "/v1/messages" if self.api == "anthropic" else "/v1/chat/completions"

    def body(self) -> bytes:
        msgs = [{"role": "user", "content": self.text}]
        if self.api == "anthropic":
            b: dict[str, Any] = {"model": ANTHROPIC_MODEL, "max_tokens": 64, "messages": msgs}
        else:
            b = {"model": OPENAI_MODEL, "max_tokens": 64, "messages": msgs}
        if self.stream:
            b["stream"] = True
        return json.dumps(b).encode()

    def headers(self) -> dict[str, str]:
        if self.api == "anthropic":
            return {"content-type": "application/json", "x-api-key": "sk-bench-client",
                    "anthropic-version": "2023-06-01"}
        return {"content-type": "application/json", "authorization": "Bearer sk-bench-client"}


def _complete(call: Call, data: bytes) -> bool:
    """Did the whole answer arrive (a stream up to its last event)?"""
    if not call.stream:
        return b'"usage"' in data
    if call.api == "anthropic":
        return data.rstrip().endswith(b'{"type":"message_stop"}') or b"message_stop" in data[-200:]
    return data.rstrip().endswith(b"data: [DONE]")


async def _one(session: Any, url: str, call: Call, body: bytes, headers: dict[str, str]
               ) -> tuple[float, float, int, bool]:
    """(time to first body byte, total time, bytes, whole) of one request."""
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        first = await resp.content.readany()
        t1 = time.perf_counter()
        if call.stream and len(first) < 1 << 16:
            rest = await resp.read()
            data = first + rest
        else:
            data = first + await resp.read()
        t2 = time.perf_counter()
        ok = resp.status == 200 and _complete(call, data)
    return t1 - t0, t2 - t0, len(data), ok


async def load_latency(base: str, call: Call, n: int) -> dict[str, Any]:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn) as s:
        url, body, headers = base + call.path(), call.body(), call.headers()
        for _ in range(20):  # warm-up: connection, caches
            await _one(s, url, call, body, headers)
        ttfb, total, errors = [], [], 0
        for _ in range(n):
            a, b, _, ok = await _one(s, url, call, body, headers)
            ttfb.append(a)
            total.append(b)
            errors += not ok
    return {"ttfb": ttfb, "total": total, "errors": errors}


async def load_throughput(base: str, call: Call, clients: int, seconds: float,
                          warmup: float, pids: dict[str, int]) -> dict[str, Any]:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=clients, force_close=False)
    url, body, headers = base + call.path(), call.body(), call.headers()
    done, errors = 0, 0
    lat: list[float] = []
    counting = False
    stop = False

    async def client() -> None:
        nonlocal done, errors
        while not stop:
            try:
                _, total, _, ok = await _one(s, url, call, body, headers)
            except Exception:
                ok, total = False, 0.0
            if counting:
                done += ok
                errors += not ok
                lat.append(total)

    async with aiohttp.ClientSession(connector=conn) as s:
        tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
        await asyncio.sleep(warmup)
        cpu0 = os.times()
        procs0 = {name: _cpu_s(pid) for name, pid in pids.items()}
        counting = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        counting = False
        elapsed = time.perf_counter() - t0
        cpu1 = os.times()
        procs1 = {name: _cpu_s(pid) for name, pid in pids.items()}
        stop = True
        await asyncio.gather(*tasks)
    lat.sort()
    return {"rps": done / elapsed, "errors": errors, "p50": _pct(lat, 50), "p99": _pct(lat, 99),
            "client_cpu": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed,
            "cpu": {name: (procs1[name] - procs0[name]) / elapsed for name in pids},
            "slow": sum(x > 0.5 for x in lat)}


async def load_streams(base: str, call: Call, n: int) -> dict[str, Any]:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=0)
    url, body, headers = base + call.path(), call.body(), call.headers()
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(60)) as s:
        await _one(s, url, Call(call.api, True), Call(call.api, True).body(), headers)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_one(s, url, call, body, headers) for _ in range(n)),
                                       return_exceptions=True)
        wall = time.perf_counter() - t0
    ok = [r for r in results if isinstance(r, tuple) and r[3]]
    errors = [repr(r)[:200] for r in results if not (isinstance(r, tuple) and r[3])]
    ttfb = sorted(r[0] for r in ok)
    return {"ok": len(ok), "errors": len(errors), "first_errors": errors[:3], "wall": wall,
            "ttfb_p50": _pct(ttfb, 50), "ttfb_p99": _pct(ttfb, 99)}


async def load_big(base: str, call: Call) -> dict[str, Any]:
    import aiohttp

    url, body, headers = base + call.path(), call.body(), call.headers()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(600)) as s:
        t0 = time.perf_counter()
        n = 0
        tail = b""
        async with s.post(url, data=body, headers=headers) as resp:
            status = resp.status
            async for chunk in resp.content.iter_any():
                n += len(chunk)
                tail = (tail + chunk)[-256:]
        wall = time.perf_counter() - t0
    return {"bytes": n, "status": status, "whole": _complete(call, tail), "wall": wall}


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def load_main(argv: list[str]) -> None:
    """``gateway.py _load JSON``: one measurement, its result as JSON on stdout."""
    spec = json.loads(argv[0])
    call = Call(**spec["call"])
    kind = spec["kind"]
    if kind == "latency":
        out = asyncio.run(load_latency(spec["base"], call, spec["n"]))
    elif kind == "throughput":
        out = asyncio.run(load_throughput(spec["base"], call, spec["clients"], spec["seconds"],
                                          spec["warmup"], spec["pids"]))
    elif kind == "streams":
        out = asyncio.run(load_streams(spec["base"], call, spec["n"]))
    else:
        out = asyncio.run(load_big(spec["base"], call))
    print(json.dumps(out))


# =========================================================================== processes


@dataclass
class Pinning:
    """Which CPUs each process may run on (None: any)."""

    proxy: set[int] | None
    rest: set[int] | None

    def describe(self) -> str:
        if self.proxy is None:
            return "not pinned (the OS schedules client, upstream and proxy on any CPU)"
        return (f"proxy under test on CPU {sorted(self.proxy)}; fake upstream and load "
                f"generator on CPU {sorted(self.rest or set())}")


def _preexec(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited ({proc.returncode}):\n"
                             f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:g}s:\n"
                     f"{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Proc:
    name: str
    base: str
    proc: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        return _rss_kb(self.proc.pid) / 1024


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (LiteLLM's workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + _children(pid)
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for k in kids:
        out.append(int(k))
        out.extend(_children(int(k)))
    return out


@contextmanager
def started(name: str, argv: list[str], env: dict[str, str], cwd: Path, health: str,
            cpus: set[int] | None, log: Path, base: str, timeout: float = 60
            ) -> Iterator[Proc]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_preexec(cpus), start_new_session=True)
    try:
        wait_http(health, proc, timeout, log)
        yield Proc(name, base, proc)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)  # its own session: LiteLLM's workers go too
        except ProcessLookupError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@contextmanager
def fake_upstream(cpus: set[int] | None) -> Iterator[Proc]:
    proc = subprocess.Popen([sys.executable, str(HERE), "_fake"], stdout=subprocess.PIPE,
                            preexec_fn=_preexec(cpus))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        m = re.match(r"port (\d+)", line)
        if not m:
            raise SystemExit(f"the fake upstream did not start: {line!r}")
        yield Proc("direct", f"http://127.0.0.1:{m.group(1)}", proc)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BURNLESS_", "ANTHROPIC_", "OPENAI_", "LITELLM_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), BURNLESS_HOME=str(home / ".burnless-home"),
               ANTHROPIC_API_KEY="sk-ant-bench-upstream-key-0000",
               OPENAI_API_KEY="sk-bench-upstream-key-0000", NO_PROXY="*", no_proxy="*")
    return env


@contextmanager
def gateway(fake: str, tmp: Path, cpus: set[int] | None, rev: str | None = None
            ) -> Iterator[Proc]:
    """``burnless serve`` of this checkout, or (``rev``) of a git revision of it."""
    name = "gateway" if rev is None else f"gw@{rev}"[:10]
    code = ROOT
    if rev is not None:
        code = tmp / f"code-{rev}"
        code.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "burnless"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    ws = tmp / name
    (ws / ".burnless").mkdir(parents=True)
    (ws / ".burnless" / "config.yaml").write_text(
        "tiers:\n"
        f"  haiku: {{api: anthropic, model: {ANTHROPIC_MODEL}, base_url: '{fake}'}}\n"
        f"  mini: {{api: openai, model: {OPENAI_MODEL}, base_url: '{fake}/v1'}}\n"
        "planner: null\nexecutor: haiku\n")
    port = free_port()
    env = clean_env(tmp / f"home-{name}")
    env["PYTHONPATH"] = str(code)
    base = f"http://127.0.0.1:{port}"
    with started(name, [sys.executable, "-m", "burnless", "serve", "--port", str(port)],
                 env, ws, base + "/healthz", cpus, tmp / f"{name}.log", base) as p:
        yield p


LITELLM_CONFIG = """\
model_list:
  - model_name: {anthropic_model}
    litellm_params:
      model: anthropic/{anthropic_model}
      api_base: {fake}
      api_key: sk-ant-bench-upstream-key-0000
  - model_name: {openai_model}
    litellm_params:
      model: openai/{openai_model}
      api_base: {fake}/v1
      api_key: sk-bench-upstream-key-0000
litellm_settings:
  telemetry: false
  drop_params: true
  set_verbose: false
general_settings:
  # No master key: LiteLLM checks none, as the gateway on loopback checks none.
  dangerously_permit_weak_or_unset_master_key: true
"""


def litellm_venv(path: Path) -> Path:
    """The ``litellm`` console script of its own venv, created (``litellm[proxy]``) on first use."""
    script = path / "bin" / "litellm"
    if script.exists():
        return script
    print(f"creating {path} with litellm[proxy] (a few minutes, once)...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    subprocess.run([str(path / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
                   check=True)
    if not script.exists():
        raise SystemExit(f"pip installed litellm[proxy] into {path} but {script} is missing")
    return script


def litellm_version(path: Path) -> str:
    p = subprocess.run([str(path / "bin" / "python"), "-c",
                        "import importlib.metadata as m; print(m.version('litellm'))"],
                       capture_output=True, text=True)
    return p.stdout.strip() or "?"


@contextmanager
def litellm(script: Path, fake: str, tmp: Path, cpus: set[int] | None) -> Iterator[Proc]:
    cfg = tmp / "litellm.yaml"
    cfg.write_text(LITELLM_CONFIG.format(anthropic_model=ANTHROPIC_MODEL,
                                         openai_model=OPENAI_MODEL, fake=fake))
    port = free_port()
    env = clean_env(tmp / "home-litellm")
    # No network: the bundled price map, no telemetry, no database, quiet logs.
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
               LITELLM_LOG="ERROR", DISABLE_ADMIN_UI="True", DISABLE_SCHEMA_UPDATE="True")
    env.pop("DATABASE_URL", None)
    base = f"http://127.0.0.1:{port}"
    argv = [str(script), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    with started("LiteLLM", argv, env, tmp, base + "/health/liveliness", cpus,
                 tmp / "litellm.log", base, timeout=180) as p:
        yield p


def load(spec: dict[str, Any], cpus: set[int] | None) -> dict[str, Any]:
    p = subprocess.run([sys.executable, str(HERE), "_load", json.dumps(spec)],
                       capture_output=True, text=True, preexec_fn=_preexec(cpus), timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"the load generator failed: {p.stderr[-3000:]}")
    return dict(json.loads(p.stdout))


# =========================================================================== the measurements

CALLS = {
    "anthropic JSON": Call("anthropic", False),
    "anthropic SSE": Call("anthropic", True),
    "openai JSON": Call("openai", False),
    "openai SSE": Call("openai", True),
}


@dataclass
class Results:
    latency: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # target -> case
    errors: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    big: dict[str, Any] = field(default_factory=dict)


def measure_latency(targets: list[Proc], rounds: int, n: int, cpus: set[int] | None,
                    res: Results) -> None:
    """Rounds interleaved between the targets, so drift on the machine hits all alike."""
    for _ in range(rounds):
        for case, call in CALLS.items():
            for t in targets:
                out = load({"kind": "latency", "base": t.base, "call": vars(call), "n": n}, cpus)
                figures = res.latency.setdefault(t.name, {})
                # A non-streamed answer's latency is its total time; a stream's is its TTFB.
                figures.setdefault(case, []).extend(out["total"] if not call.stream
                                                    else out["ttfb"])
                res.errors[t.name] = res.errors.get(t.name, 0) + out["errors"]


def measure_throughput(targets: list[Proc], seconds: float, cpus: set[int] | None,
                       res: Results) -> None:
    for t in targets:
        for case in ("anthropic JSON", "openai JSON"):
            call = CALLS[case]
            res.throughput[f"{t.name}|{case}"] = load({
                "kind": "throughput", "base": t.base, "call": vars(call), "clients": CONCURRENCY,
                "seconds": seconds, "warmup": 1.0, "pids": {p.name: p.proc.pid for p in targets}},
                cpus)


def measure_streams(targets: list[Proc], cpus: set[int] | None, res: Results) -> None:
    # 50 deltas 20 ms apart: each stream lasts about a second, so all 200 are open at once.
    call = Call("anthropic", True, "deltas=50 gap=0.02 size=20")
    ocall = Call("openai", True, "deltas=50 gap=0.02 size=20")
    for t in targets:
        for label, c in (("anthropic", call), ("openai", ocall)):
            res.streams[f"{t.name}|{label}"] = load(
                {"kind": "streams", "base": t.base, "call": vars(c), "n": STREAMS}, cpus)


def measure_big(gw: Proc, nbytes: int, cpus: set[int] | None, res: Results) -> None:
    """One stream of ``nbytes`` of text in 1 KB deltas; the gateway's RSS sampled meanwhile."""
    size = 1024
    call = Call("anthropic", True, f"deltas={nbytes // size} gap=0 size={size}")
    # Warm up the path (and the allocator) with a 5 MB stream first.
    load({"kind": "big", "base": gw.base,
          "call": vars(Call("anthropic", True, f"deltas={5_000_000 // size} gap=0 size={size}"))},
         cpus)
    before = gw.rss_mb()
    peak = [before]
    import threading

    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak.append(gw.rss_mb())

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out = load({"kind": "big", "base": gw.base, "call": vars(call)}, cpus)
    finally:
        stop.set()
        th.join()
    out.update(before=before, peak=max(peak), after=gw.rss_mb())
    res.big = out


# =========================================================================== the report


def med_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000 if xs else float("nan")


def report(res: Results, targets: list[str], args: argparse.Namespace, pin: Pinning,
           litellm_ver: str | None) -> int:
    print()
    print(f"burnless gateway overhead, {os.cpu_count()} CPUs; {pin.describe()}")
    if litellm_ver:
        print(f"LiteLLM {litellm_ver} (its own venv, 1 worker)")
    n = args.rounds * args.requests
    print(f"\nlatency: median ms over {n} requests per case on one kept-alive connection "
          "(non-streamed: whole answer; streamed: time to first byte)")
    head = f"  {'case':16}" + "".join(f"{t:>10}" for t in targets)
    extra = [t for t in targets if t != "direct"]
    head += "".join(f"{'+' + t:>12}" for t in extra)
    print(head)
    added: dict[tuple[str, str], float] = {}
    for case in CALLS:
        base = med_ms(res.latency["direct"][case])
        row = f"  {case:16}" + "".join(f"{med_ms(res.latency[t][case]):10.2f}" for t in targets)
        for t in extra:
            added[(t, case)] = med_ms(res.latency[t][case]) - base
            row += f"{added[(t, case)]:12.2f}"
        print(row)
    if any(res.errors.values()):
        print(f"  errors: {res.errors}")

    print(f"\nthroughput: {CONCURRENCY} concurrent clients, {args.seconds:g} s each, small "
          "non-streamed requests (CPU: share of one core used by each process meanwhile)")
    print(f"  {'target':10} {'case':16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
          f" {'client':>7} " + " ".join(f"{t:>8}" for t in targets))
    for key, out in res.throughput.items():
        t, case = key.split("|")
        cpu = " ".join(f"{out['cpu'].get(x, 0):8.2f}" for x in targets)
        print(f"  {t:10} {case:16} {out['rps']:8.0f} {out['p50'] * 1000:8.2f} "
              f"{out['p99'] * 1000:8.2f} {out['errors']:7d} {out['client_cpu']:7.2f} {cpu}")

    print(f"\n{STREAMS} concurrent streams (50 deltas 20 ms apart, ~1 s each), all started at once")
    print(f"  {'target':10} {'protocol':10} {'whole':>6} {'errors':>7} {'wall s':>7} "
          f"{'ttfb p50':>9} {'ttfb p99':>9}")
    for key, out in res.streams.items():
        t, proto = key.split("|")
        print(f"  {t:10} {proto:10} {out['ok']:6d} {out['errors']:7d} {out['wall']:7.2f} "
              f"{out['ttfb_p50'] * 1000:9.1f} {out['ttfb_p99'] * 1000:9.1f}"
              + (f"  {out['first_errors']}" if out["errors"] else ""))

    big = res.big
    growth = big["peak"] - big["before"]
    print(f"\ngateway memory over one {big['bytes'] / 1e6:.0f} MB stream "
          f"({big['bytes'] / 1e6 / big['wall']:.0f} MB/s, whole: {big['whole']}): RSS "
          f"{big['before']:.1f} MB before, {big['peak']:.1f} MB peak, {big['after']:.1f} MB "
          f"after: growth {growth:.1f} MB")

    print("\ntargets:")
    fails = 0

    def line(ok: bool, text: str) -> None:
        nonlocal fails
        fails += not ok
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")

    for case in CALLS:
        what = "time to first byte" if CALLS[case].stream else "latency"
        g = added[("gateway", case)]
        line(g <= 2.0, f"gateway added median {what}, {case}: {g:.2f} ms (target <= 2 ms)")
        if "LiteLLM" in targets:
            lt = added[("LiteLLM", case)]
            ratio = g / lt if lt > 0 else float("inf")
            line(ratio <= 1 / 3, f"gateway / LiteLLM added median {what}, {case}: "
                 f"{g:.2f} / {lt:.2f} ms = {ratio:.3f} (target <= 0.333)")
    if "LiteLLM" in targets:
        for case in ("anthropic JSON", "openai JSON"):
            g = res.throughput[f"gateway|{case}"]["rps"]
            lt = res.throughput[f"LiteLLM|{case}"]["rps"]
            line(g >= 3 * lt, f"throughput at {CONCURRENCY} clients, {case}: gateway {g:.0f} / "
                 f"LiteLLM {lt:.0f} req/s = {g / lt:.1f}x (target >= 3x)")
    for proto in ("anthropic", "openai"):
        out = res.streams[f"gateway|{proto}"]
        line(out["errors"] == 0 and out["ok"] == STREAMS,
             f"{STREAMS} concurrent {proto} streams through the gateway: {out['ok']} whole, "
             f"{out['errors']} errors (target: 0 errors)")
    line(growth < 20 and big["whole"], f"gateway RSS growth over a {big['bytes'] / 1e6:.0f} MB "
         f"stream: {growth:.1f} MB (target < 20 MB)")
    return fails


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_fake":
        fake_main(sys.argv[2:])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--with-litellm", action="store_true",
                    help="also measure LiteLLM's proxy (installed into --litellm-venv)")
    ap.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV,
                    help=f"LiteLLM's own virtual environment (default {DEFAULT_LITELLM_VENV})")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--requests", type=int, default=100, help="requests per round and case")
    ap.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    ap.add_argument("--big-mb", type=int, default=BIG_STREAM // 1_000_000)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (the "
                    "gateway's ledger and log, LiteLLM's log)")
    ap.add_argument("--baseline", metavar="REV", help="also measure the gateway of this git "
                    "revision (extracted with git archive), e.g. the one before a change")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.requests, args.seconds = 2, 50, 2.0
    cpus = sorted(os.sched_getaffinity(0))
    pin = Pinning(None, None)
    if not args.no_pin and len(cpus) >= 2:
        pin = Pinning({cpus[-1]}, set(cpus[:-1]))
    script = litellm_venv(args.litellm_venv) if args.with_litellm else None
    version = litellm_version(args.litellm_venv) if script else None
    res = Results()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="burnless-gwbench-") as tmp_s:
        tmp = Path(args.keep or tmp_s)
        tmp.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            fake = stack.enter_context(fake_upstream(pin.rest))
            gw = stack.enter_context(gateway(fake.base, tmp, pin.proxy))
            targets = [fake, gw]
            if args.baseline:
                targets.append(stack.enter_context(
                    gateway(fake.base, tmp, pin.proxy, args.baseline)))
            if script is not None:
                targets.append(stack.enter_context(litellm(script, fake.base, tmp, pin.proxy)))
            for t in targets[1:]:  # first requests: imports, pools
                for call in CALLS.values():
                    load({"kind": "latency", "base": t.base, "call": vars(call), "n": 5},
                         pin.rest)
            print("latency...", flush=True)
            measure_latency(targets, args.rounds, args.requests, pin.rest, res)
            print("throughput...", flush=True)
            measure_throughput(targets, args.seconds, pin.rest, res)
            print("streams...", flush=True)
            measure_streams(targets, pin.rest, res)
            print(f"{args.big_mb} MB stream...", flush=True)
            measure_big(gw, args.big_mb * 1_000_000, pin.rest, res)
        load_after = os.getloadavg()
        ledger = tmp / "gateway" / ".burnless" / "ledger.jsonl"
        records = sum(1 for _ in ledger.open()) if ledger.exists() else 0
        names = [t.name for t in targets]
    fails = report(res, names, args, pin, version)
    print(f"\n(the gateway wrote {records} ledger records: every request through it was metered)")
    print(f"machine load average (1 min) before / after: {load_before[0]:.2f} / "
          f"{load_after[0]:.2f} on {os.cpu_count()} CPUs (other work on the machine shows "
          "here: figures from a busy machine are not comparable)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
