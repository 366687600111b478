"""`burnless serve` as the gateway, driven as a subprocess: binding rules, the keys it reads from
its environment, config errors of the gateway's settings, and what the other commands import;
then hostile HTTP clients, the exposition format, /stats against `burnless usage`, shutdown, and
a ledger that appears, grows or is replaced while the server runs.

The server is aiohttp's since the gateway (issue 12): HTTP it cannot parse (a request line or a
header over 8 KB, too many headers, an unknown method) is a 400 from aiohttp's parser, and a
client has ``gateway.request_timeout`` seconds for a request's headers (then as long again for
its body), not a per-read timeout: a slow client cannot hold a connection past it, and there
are no handler slots for slow clients to fill."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anthropic
import orjson
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex
from burnless.accounting.tokens import Tokens
from burnless.sim.server import SimServer
from tests.cli.conftest import Served, serving
from tests.conftest import Workspace, get, rec, sample, seed
from tests.conftest import parse_metrics as parse
from tests.fakes.upstream import FakeUpstream

KEY = "sk-ant-api03-cli-gateway-KEY-0123456789abcdef"


def test_beyond_loopback_needs_insecure_no_auth(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    for host in ("0.0.0.0", "192.0.2.1", "example.com", "::"):
        p = ws.run("serve", "--host", host, "--port", "0", timeout=30)
        assert p.returncode == 2, (host, p.stderr)
        assert f"refusing to listen on {host}" in p.stderr and "--insecure-no-auth" in p.stderr
        assert "Traceback" not in p.stderr
    with serving(ws, "--host", "0.0.0.0", "--insecure-no-auth") as srv:
        assert srv.host == "0.0.0.0"
        assert srv.proc.stderr is not None
    # serving() checked: exit 0 on Ctrl-C; the warning was on the first line it read.


def test_localhost_is_loopback(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    with serving(ws, "--host", "localhost") as srv:
        assert srv.port > 0


def test_the_gateway_reads_the_tiers_keys_from_its_environment(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "sim.jsonl"
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # where `burnless serve` is started
    with SimServer(log=log) as sim:
        ws.config("tiers:\n"
                  f"  silver: {{api: anthropic, model: claude-haiku-4-5, base_url: '{sim.url}'}}\n")
        with serving(ws) as srv:
            with anthropic.Anthropic(base_url=srv.base, api_key="dummy",
                                     max_retries=0) as client:
                m = client.messages.create(model="silver", max_tokens=100,
                                           messages=[{"role": "user", "content": "hello"}],
                                           extra_headers={"x-model-affinity": "cli"})
            assert m.model == "claude-haiku-4-5"
    (rec,) = ws.ledger()
    assert rec["session"] == "cli" and rec["status"] == "ok" and rec["tier"] == "silver"
    (req,) = [r for r in map(orjson.loads, log.read_bytes().splitlines()) if r["method"] == "POST"]
    assert req["status"] == 200  # the sim demands a key: the gateway sent the tier's


def test_an_https_upstream_is_verified_with_the_systems_certificates(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp is imported without its own certificate loads (burnless.aio); the gateway's
    upstream connections still verify, against the certificates OpenSSL is pointed at."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    up = FakeUpstream(tls=server).start()
    try:
        ws.config("tiers:\n"
                  f"  silver: {{api: anthropic, model: claude-haiku-4-5, base_url: '{up.url}'}}\n")

        def ask(srv: Served) -> str:
            with anthropic.Anthropic(base_url=srv.base, api_key="dummy", max_retries=0) as c:
                m = c.messages.create(model="silver", max_tokens=10,
                                      messages=[{"role": "user", "content": "over tls"}])
            return m.content[0].text  # type: ignore[union-attr]

        with serving(ws) as srv, pytest.raises(anthropic.APIStatusError):
            ask(srv)  # a certificate nobody vouches for: refused, nothing sent
        assert up.requests == []
        (failed,) = ws.ledger()
        assert failed["status"] == "failed" and "certificate verify failed" in failed["reason"]

        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        with serving(ws) as srv:
            assert ask(srv) == "echo: over tls"
        assert len(up.requests) == 1
    finally:
        up.close()


@pytest.mark.parametrize("config, message", [
    ("tiers:\n  a: {api: openai, model: m, fallback: [b]}\n",
     "config.yaml:2: tiers.a.fallback.0: names tier 'b', which is not defined"),
    ("tiers:\n  a: {api: openai, model: m, fallback: [a]}\n",
     "tiers.a.fallback.0: names the tier itself"),
    ("tiers:\n  a: {api: openai, model: m, key: mine}\n",
     "tiers.a.key: must be 'env' (the key in api_key_env) or 'client'"),
    ("tiers:\n  a: {command: 'echo', key: client}\n", "tiers.a.key: key: client needs an api tier"),
    ("tiers:\n  a: {api: grpc, model: m}\n", "unknown api 'grpc'; known: anthropic, openai"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {passthrough: a}\n",
     "gateway.passthrough: tier 'a' is a command tier"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {passthroug: a}\n",
     "gateway.passthroug: unknown key; did you mean 'passthrough'?"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {max_sessions: 0}\n",
     "gateway.max_sessions: must be > 0"),
    ("tiers:\n  a: {command: 'echo'}\ngateway: {route_models: ['']}\n",
     "gateway.route_models.0: is empty"),
])
def test_gateway_config_errors(ws: Workspace, config: str, message: str) -> None:
    ws.config(config)
    p = ws.run("route", "a task")
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_api_key_env_defaults_per_kind(ws: Workspace) -> None:
    from burnless.config import load_config

    ws.config("tiers:\n  a: {api: openai, model: gpt-5}\n  b: {api: anthropic, model: x}\n"
              "  c: {api: openai, model: m, api_key_env: MY_KEY}\n  d: {command: echo}\n")
    cfg = load_config(ws.state / "config.yaml")
    assert [t.api_key_env for t in cfg.tiers.values()] == [
        "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_KEY", "ANTHROPIC_API_KEY"]


def imported(ws: Workspace, *args: str) -> set[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", *args],
                       cwd=ws.root, capture_output=True, text=True, timeout=60)
    return {m.group(1).strip() for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$",
                                                     p.stderr, re.M)}


def test_run_route_usage_and_help_never_import_the_gateway(ws: Workspace) -> None:
    from tests.conftest import fake

    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(fake('honest')).decode()}}}\n")
    for args in (["--help"], ["run", "write a.txt hi"], ["route", "a task"],
                 ["usage", "--period", "all"], ["metrics"]):
        mods = imported(ws, *args)
        assert "burnless" in mods, args  # the measurement saw burnless start
        heavy = {m for m in mods if m.split(".")[0] in ("aiohttp", "multidict", "yarl")
                 or m.startswith("burnless.gateway")}
        assert not heavy, (args, sorted(heavy)[:5])


def test_the_readme_gateway_config_loads(ws: Workspace) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Use it with Claude Code / any OpenAI client", 1)[1]
    ws.config(section.split("```yaml", 1)[1].split("```", 1)[0])
    p = ws.run("route", "anything", "--json")
    assert p.returncode == 0, p.stderr
    assert orjson.loads(p.stdout)["tier"] == "silver"


def test_doctor_on_gateway_tiers(ws: Workspace) -> None:
    ws.config("tiers:\n"
              "  qwen: {api: openai, model: qwen3-coder, base_url: 'http://127.0.0.1:9/v1', "
              "local: true, price: 0}\n"
              "  cc: {api: anthropic, model: claude-opus-4-8, key: client}\n")
    p = ws.run("doctor", "--json")
    checks = {c["name"]: c for c in orjson.loads(p.stdout)["checks"]}
    assert checks["tier qwen"]["status"] == "ok"  # a local OpenAI-compatible server: no key
    assert checks["tier cc"]["status"] == "ok" and "key: client" in checks["tier cc"]["detail"]


FAMILIES = (
    "burnless_tier_planning_tokens_total", "burnless_tier_execution_tokens_total",
    "burnless_tier_compaction_tokens_total", "burnless_cost_usd_total",
    "burnless_unknown_cost_calls_total", "burnless_calls_total",
    "burnless_audit_failures_total", "burnless_refusals_total",
    "burnless_budget_refusals_total", "burnless_cached_responses_total",
    "burnless_ledger_records_total",
)


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
