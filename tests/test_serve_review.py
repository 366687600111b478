"""Adversarial review of `burnless serve`: binding, hostile HTTP clients, the exposition format,
/stats against `burnless usage`, shutdown, and a ledger that appears, grows or is replaced while
the server runs. Every test talks to a real server process over loopback.

The server is aiohttp's since the gateway (issue 12): HTTP it cannot parse (a request line or a
header over 8 KB, too many headers, an unknown method) is a 400 from aiohttp's parser, and a
client has ``gateway.request_timeout`` seconds for a request's headers (then as long again for
its body), not a per-read timeout: a slow client cannot hold a connection past it, and there
are no handler slots for slow clients to fill."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex
from burnless.accounting.tokens import Tokens
from tests.conftest import Workspace
from tests.unit.test_metrics import get, parse, rec, sample, seed

FAMILIES = (
    "burnless_tier_planning_tokens_total", "burnless_tier_execution_tokens_total",
    "burnless_tier_compaction_tokens_total", "burnless_cost_usd_total",
    "burnless_unknown_cost_calls_total", "burnless_calls_total",
    "burnless_audit_failures_total", "burnless_refusals_total",
    "burnless_budget_refusals_total", "burnless_cached_responses_total",
    "burnless_ledger_records_total",
)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def raw(self, data: bytes, *, timeout: float = 5) -> bytes:
        """Send raw bytes, read the whole answer (HTTP/1.0: the server closes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], timeout)
    assert ready, "server said nothing"
    return proc.stderr.readline()


@contextmanager
def serving(ws: Workspace, *args: str, stop: int = signal.SIGINT) -> Iterator[Served]:
    """`burnless serve --port 0`; stopped with ``stop``: exit 0 and no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "burnless", "serve", "--port", "0", *args],
                            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = _first_line(proc, 15)
        m = re.search(r"http://\[?([^\]/]+?)\]?:(\d+)/metrics", line)
        assert m, (line, proc.poll())
        yield Served(proc, m.group(1), int(m.group(2)))
    finally:
        if proc.poll() is None:
            proc.send_signal(stop)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception" not in err, err


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


TIMEOUT_S = 2.0  # gateway.request_timeout in the hostile tests
MAX_THREADS = 48  # the server's threads: its loop and a bounded pool for ledger work


# --------------------------------------------------------------------------- binding


def test_binding_loopback_default_port_zero_busy_port_and_bad_host(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    with serving(ws) as srv:  # metrics.host by default: loopback, not every interface
        assert srv.host == "127.0.0.1" and srv.port > 0
        assert get(srv.base + "/healthz")[0] == 200
        # The port is taken now: a second server says so, with no traceback.
        p = ws.run("serve", "--port", str(srv.port), timeout=20)
        assert p.returncode == 2 and f"127.0.0.1:{srv.port}" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
    for args in (["--port", "70000"], ["--port", "-1"], ["--host", "no-such-host.invalid"],
                 ["--host", "192.0.2.1"]):  # TEST-NET: not an address of this machine
        p = ws.run("serve", *args, timeout=20)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.startswith("burnless: error:"), p.stderr
    ws.config((ws.root / ".burnless" / "config.yaml").read_text()
              + "metrics:\n  host: 127.0.0.1\n  port: 123456\n")
    p = ws.run("serve", timeout=20)
    assert p.returncode == 2 and "metrics.port" in p.stderr, p.stderr


def test_ipv6_loopback_host(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return  # no IPv6 here
    with serving(ws, "--host", "::1") as srv:
        assert srv.host == "::1"
        with urllib.request.urlopen(f"http://[::1]:{srv.port}/healthz", timeout=5) as r:
            assert r.read() == b"ok\n"


# --------------------------------------------------------------------------- hostile HTTP


def test_hostile_http_clients(ws: Workspace) -> None:
    ws.tiers(silver="honest", extra=f"gateway: {{request_timeout: {TIMEOUT_S}}}\n")
    seed(ws)
    for i in range(300):  # a /stats body of some size, so a reset lands mid-answer
        ledger.record_call(ws.state, rec(tier=f"tier-{i:03d}", model=f"model-{i:03d}"))
    with serving(ws) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
        opened = time.monotonic()
        # Clients that connect and send nothing do not keep others waiting.
        assert get(srv.base + "/healthz")[0] == 200

        full = srv.raw(b"GET /metrics HTTP/1.0\r\n\r\n")
        head = srv.raw(b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert status_of(head) == 200 and head.endswith(b"\r\n\r\n")  # headers only
        length = re.search(rb"Content-Length: (\d+)", head)
        assert length and int(length.group(1)) == len(full.split(b"\r\n\r\n", 1)[1])
        assert status_of(srv.raw(b"HEAD /nope HTTP/1.0\r\n\r\n")) == 404
        for method in (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"):
            answer = srv.raw(method + b" /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
            assert status_of(answer) == 405 and b"Allow: GET, HEAD" in answer, answer[:200]
        assert status_of(srv.raw(b"BREW /metrics HTTP/1.0\r\n\r\n")) == 400
        assert get(srv.base + "/nope")[0] == 404
        assert get(srv.base + "/metrics/")[0] == 404
        status, ctype, body = get(srv.base + "/metrics?x=1&name[]=2")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert sample(parse(body), "burnless_ledger_records_total") == 307
        assert get(srv.base + "/healthz?")[2] == "ok\n"
        assert status_of(srv.raw(b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n")) == 400
        assert status_of(srv.raw(b"GET /healthz HTTP/1.0\r\nX: " + b"y" * 70000
                                 + b"\r\n\r\n")) == 400
        assert status_of(srv.raw(b"GET /healthz HTTP/1.0\r\n"
                                 + b"".join(b"X-%d: y\r\n" % i for i in range(200))
                                 + b"\r\n")) == 400
        assert srv.raw(b"\x00\xff garbage\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert srv.raw(b"\r\n") == b""  # an empty request line: closed quietly

        # Clients that reset the connection before or while the answer is written.
        for path in (b"/stats", b"/metrics", b"/healthz", b"/stats"):
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", srv.port))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(b"GET " + path + b" HTTP/1.0\r\n\r\n")
                s.close()
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /healthz HTTP/1.0\r\nHost: x")  # half a request, then gone
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

        # 100 concurrent scrapers all get the whole, same answer.
        results: list[tuple[int, str]] = []
        lock = threading.Lock()

        def scrape() -> None:
            status, _, body = get(srv.base + "/metrics")
            with lock:
                results.append((status, body))

        workers = [threading.Thread(target=scrape) for _ in range(100)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(15)
        assert len(results) == 100 and {r[0] for r in results} == {200}
        assert len({r[1] for r in results}) == 1

        # Many silent clients: the server's threads stay bounded, it keeps answering, and the
        # silent ones are dropped once their request_timeout has passed.
        more = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(300)]
        time.sleep(0.3)
        assert srv.threads() <= MAX_THREADS
        assert get(srv.base + "/healthz")[0] == 200
        idle[0].settimeout(TIMEOUT_S + 5)
        assert idle[0].recv(1) == b""
        assert time.monotonic() - opened < TIMEOUT_S + 5
        assert get(srv.base + "/healthz")[0] == 200
        for s in idle + more:
            s.close()
    # (serving() checks: exit 0 on Ctrl-C with clients still connected, no traceback.)


# --------------------------------------------------------------------------- exposition


WEIRD = 'we"ird\\ tier\nnew line'


def test_exposition_escaping_help_type_and_stats_match_usage(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    seed(ws)
    ledger.record_call(ws.state, rec(tier=WEIRD, model='m"\\\n', session='s"\\\n',
                                tokens=Tokens(7, 8, 9, 10), cost_usd=0.125))
    ledger.record_call(ws.state, rec(tier=WEIRD, model='m"\\\n', status="refused",
                                refused_by='pol"icy\n', tokens=Tokens(), cost_usd=0.0))
    with serving(ws) as srv:
        status, _, text = get(srv.base + "/metrics")
        assert status == 200
        s = parse(text)  # prometheus_client's parser reads every line
        ex = "burnless_tier_execution_tokens_total"
        # a model name that is not one (quotes, a newline) is summed under "other": no
        # worker can add series at will (issue 10, finding 10); the tier label is escaped
        assert sample(s, ex, tier=WEIRD, model="other", type="cache_write") == 10
        assert sample(s, "burnless_cost_usd_total", tier=WEIRD, model="other") == 0.125
        assert sample(s, "burnless_refusals_total", tier=WEIRD, refused_by='pol"icy\n') == 1
        lines = text.splitlines()
        for name in FAMILIES:  # HELP then TYPE, once each, before the family's samples
            i = lines.index(next(x for x in lines if x.startswith(f"# HELP {name} ")))
            assert lines[i + 1] == f"# TYPE {name} counter"
            assert sum(x.startswith(f"# TYPE {name} ") for x in lines) == 1
        for family in text_string_to_metric_families(text):
            assert family.type == "counter"
            for smp in family.samples:
                assert smp.value == smp.value and abs(smp.value) != float("inf")
                assert smp.value >= 0
        assert "nan" not in text.lower().replace("planning", "")

        # /stats: the same samples as JSON, and the same figures as `burnless usage`.
        st = orjson.loads(get(srv.base + "/stats")[2])
        assert set(st["metrics"]) == set(FAMILIES)
        for name, fam in st["metrics"].items():
            got = {(name, frozenset(x["labels"].items())): x["value"] for x in fam["samples"]}
            assert got == {k: v for k, v in s.items() if k[0] == name}
        p = ws.run("usage", "--period", "all", "--by", "tier", "--format", "json")
        assert p.returncode == 0, p.stderr
        usage = orjson.loads(p.stdout)
        for row in usage["rows"]:
            tier = row["tier"]
            calls = sum(v for (n, lab), v in s.items()
                        if n == "burnless_calls_total" and ("tier", tier) in lab)
            assert calls == row["calls"], tier
            for typ in ("input", "output", "cache_read", "cache_write"):
                got = sum(v for (n, lab), v in s.items() if n.startswith("burnless_tier_")
                          and ("tier", tier) in lab and ("type", typ) in lab)
                assert got == row[typ], (tier, typ)
            costs = [v for (n, lab), v in s.items()
                     if n == "burnless_cost_usd_total" and ("tier", tier) in lab]
            if row["cost_usd"] is None:  # every call's cost unknown: no sample, never 0
                assert costs == [], tier
            else:
                assert abs(sum(costs) - row["cost_usd"]) < 1e-9, tier
            refused = sum(v for (n, lab), v in s.items()
                          if n == "burnless_refusals_total" and ("tier", tier) in lab)
            assert refused == row["refusals"], tier
            audit = sum(v for (n, lab), v in s.items()
                        if n == "burnless_audit_failures_total" and ("tier", tier) in lab)
            assert audit == row["audit_failures"], tier
        assert sample(s, "burnless_budget_refusals_total") == 1
        # The ledger is named inside the workspace; the machine's layout is not shown.
        assert st["ledger"]["path"] == ".burnless/ledger.jsonl"
        assert str(ws.root) not in get(srv.base + "/stats")[2]


# --------------------------------------------------------------------------- lifecycle


def test_ledger_appears_grows_is_replaced_and_sigterm_stops(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    path = ledger.ledger_path(ws.state)
    assert not path.exists()
    with serving(ws, stop=signal.SIGTERM) as srv:
        s0 = parse(get(srv.base + "/metrics")[2])  # no ledger yet: zeros, not an error
        assert sample(s0, "burnless_ledger_records_total") == 0
        seed(ws)  # the ledger appears
        s1 = parse(get(srv.base + "/metrics")[2])
        assert sample(s1, "burnless_ledger_records_total") == 7
        ledger.record_call(ws.state, rec())
        with path.open("a") as f:  # a line being written: not counted until it is whole
            f.write('{"v": 1, "ts": "2026-11-28T12:00:00Z", "tier": "sil')
        s2 = parse(get(srv.base + "/metrics")[2])
        assert sample(s2, "burnless_ledger_records_total") == 8
        for k, v in s1.items():  # counters never go down while the ledger grows
            assert s2[k] >= v, k
        with path.open("a") as f:
            f.write('ver"}\n')
        s3 = parse(get(srv.base + "/metrics")[2])
        assert sample(s3, "burnless_ledger_records_total") == 9
        # Rotated: the old ledger moved away, a new one started.
        path.rename(path.with_name("ledger.jsonl.1"))
        ledger.record_call(ws.state, rec(tier="bronze", model="m"))
        s4 = parse(get(srv.base + "/metrics")[2])
        assert sample(s4, "burnless_ledger_records_total") == 1
        assert sample(s4, "burnless_calls_total", tier="bronze", status="ok") == 1
        # Truncated in place, then written again.
        path.write_text("")
        s5 = parse(get(srv.base + "/metrics")[2])
        assert sample(s5, "burnless_ledger_records_total") == 0
        ledger.record_call(ws.state, rec(tier="gold", model="g"))
        ledger.record_call(ws.state, rec(tier="gold", model="g"))
        s6 = parse(get(srv.base + "/metrics")[2])
        assert sample(s6, "burnless_calls_total", tier="gold", status="ok") == 2
        assert sample(s6, "burnless_ledger_records_total") == 2
        # Removed altogether: zeros again, still serving.
        path.unlink()
        assert sample(parse(get(srv.base + "/metrics")[2]), "burnless_ledger_records_total") == 0
        ledger.record_call(ws.state, rec(tier="gold", model="g"))
        last = parse(get(srv.base + "/metrics")[2])
    # After SIGTERM (exit 0, no traceback): the index still matches the ledger, and a
    # restarted server and `burnless metrics` show the same figures as the last scrape.
    with LedgerIndex.open(ws.state) as idx:
        assert idx.records == 1 and idx.offset == path.stat().st_size
    p = ws.run("metrics")
    assert p.returncode == 0 and parse(p.stdout) == last
    with serving(ws) as srv:
        assert parse(get(srv.base + "/metrics")[2]) == last


def test_restart_keeps_counters_and_a_stale_index_is_not_trusted(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    seed(ws)
    assert ws.run("metrics").returncode == 0  # writes the index
    with serving(ws) as srv:
        first = parse(get(srv.base + "/metrics")[2])
        ledger.record_call(ws.state, rec())
        grown = parse(get(srv.base + "/metrics")[2])
    for k, v in first.items():
        assert grown[k] >= v, k
    with serving(ws) as srv:  # restarted: from the (now stale) index, caught up
        assert parse(get(srv.base + "/metrics")[2]) == grown
    db = ws.state / "cache" / "ledger-index.sqlite"
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 2] + b"\xff" * (len(data) - len(data) // 2))  # damaged
    with serving(ws) as srv:
        assert parse(get(srv.base + "/metrics")[2]) == grown
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"  # and rebuilt


def test_ctrl_c_while_a_client_is_half_way_through_a_request(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    seed(ws)
    with serving(ws) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /metrics HTTP/1.0\r\n")  # headers never finished
        assert get(srv.base + "/healthz")[0] == 200
        start = time.monotonic()
    assert time.monotonic() - start < 5  # a stuck client does not hold the shutdown up
    s.close()


@pytest.mark.slow
def test_slow_clients_do_not_starve_scrapes(ws: Workspace) -> None:
    """Issue 10, finding 8: 500 clients that each send one header line every second, for
    longer than any per-read timeout, while a scraper keeps asking. Every scrape is answered
    quickly, and the server's threads stay bounded."""
    ws.tiers(silver="honest")
    seed(ws)
    with serving(ws) as srv:
        slow = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(500)]
        for s in slow:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(1.0):
                for s in slow:
                    try:
                        s.sendall(b"X-Slow: y\r\n")
                    except OSError:
                        pass

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            waits = []
            end = time.monotonic() + 7
            while time.monotonic() < end:
                t0 = time.monotonic()
                status, _, body = get(srv.base + "/metrics")
                waits.append(time.monotonic() - t0)
                assert status == 200 and "burnless_ledger_records_total 7" in body
                time.sleep(0.2)
            assert max(waits) < 2, waits
            assert srv.threads() <= MAX_THREADS
        finally:
            stop.set()
            t.join(5)
            for s in slow:
                s.close()
