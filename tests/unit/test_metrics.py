"""Prometheus metrics: the exposition text (checked with prometheus_client's parser), and the
real server scraped over loopback HTTP; `metrics` agrees with `usage` over the same records and
the live counters follow a truncated, regrown ledger."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from burnless.accounting import ledger
from burnless.accounting.index import scan
from burnless.accounting.metrics import Family, Live, MetricsView, Sample, exposition
from tests.cli.conftest import serving
from tests.conftest import Samples, Workspace, get, parse_metrics, rec, sample, seed
from tests.unit.conftest import (
    TOKEN_FIELDS,
    recount_of,
    usage_report,
    varied,
    write,
)

parse = parse_metrics


def test_metrics_prints_valid_exposition_with_the_ledger_figures(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    seed(ws)
    p = ws.run("metrics")
    assert p.returncode == 0, p.stderr
    s = parse(p.stdout)
    ex = "burnless_tier_execution_tokens_total"
    silver = {"tier": "silver", "model": "claude-sonnet-4-6"}
    assert sample(s, ex, **silver, type="input") == 101
    assert sample(s, ex, **silver, type="output") == 12
    assert sample(s, ex, **silver, type="cache_read") == 1003
    assert sample(s, ex, **silver, type="cache_write") == 54
    gold = {"tier": "gold", "model": "claude-opus-4-8"}
    assert sample(s, "burnless_tier_planning_tokens_total", **gold, type="input") == 2000
    assert sample(s, "burnless_tier_compaction_tokens_total", tier="bronze", model="",
                  type="output") == 5
    assert sample(s, "burnless_cost_usd_total", **silver) == pytest.approx(0.02)
    assert sample(s, "burnless_cost_usd_total", **gold) == 0.25
    assert sample(s, "burnless_unknown_cost_calls_total", tier="bronze", model="") == 1
    assert sample(s, "burnless_unknown_cost_calls_total", **silver) == 0
    assert sample(s, "burnless_calls_total", tier="silver", status="ok") == 1
    assert sample(s, "burnless_calls_total", tier="silver", status="failed") == 1
    assert ("burnless_calls_total", frozenset({"tier": "silver", "status": "refused"}.items())
            ) not in s
    assert sample(s, "burnless_audit_failures_total", tier="silver") == 1
    assert sample(s, "burnless_audit_failures_total", tier="gold") == 0
    assert sample(s, "burnless_budget_refusals_total") == 1
    assert sample(s, "burnless_refusals_total", tier="silver", refused_by="policy") == 1
    assert sample(s, "burnless_cached_responses_total", tier="silver") == 1
    assert sample(s, "burnless_ledger_records_total") == 7
    # HELP and TYPE precede every family.
    for name in ("burnless_tier_planning_tokens_total", "burnless_budget_refusals_total"):
        assert f"# HELP {name} " in p.stdout and f"# TYPE {name} counter" in p.stdout


def test_empty_ledger_still_says_zero_budget_refusals(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    p = ws.run("metrics")
    assert p.returncode == 0, p.stderr
    s = parse(p.stdout)
    assert sample(s, "burnless_budget_refusals_total") == 0
    assert sample(s, "burnless_ledger_records_total") == 0


def test_label_values_are_escaped() -> None:
    weird = 'a"b\\c\nd'
    text = exposition([Family("x_total", "help with \\ and\nnewline",
                              (Sample((("model", weird),), 1.5),))])
    assert text.splitlines()[0] == "# HELP x_total help with \\\\ and\\nnewline"
    assert 'model="a\\"b\\\\c\\nd"' in text
    (family,) = text_string_to_metric_families(text)
    assert family.samples[0].labels == {"model": weird} and family.samples[0].value == 1.5


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_endpoints_live_updates_and_restart(ws: Workspace) -> None:
    ws.tiers(gold="claude-json", silver="claude-json")
    seed(ws)
    port = free_port()
    with serving(ws, port=port) as srv:
        base = srv.base
        status, ctype, body = get(base + "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        before = parse(body)
        assert sample(before, "burnless_calls_total", tier="silver", status="ok") == 1
        # What `curl -s .../metrics | grep -E "tier_(planning|execution)_tokens"` shows.
        shown = [line for line in body.splitlines()
                 if re.search(r"tier_(planning|execution)_tokens", line)
                 and not line.startswith("#")]
        assert any(line.startswith('burnless_tier_planning_tokens_total{tier="gold"')
                   for line in shown)
        assert any(line.startswith('burnless_tier_execution_tokens_total{tier="silver"')
                   for line in shown)

        status, ctype, body = get(base + "/stats")
        assert status == 200 and ctype.startswith("application/json")
        stats = orjson.loads(body)
        calls = stats["metrics"]["burnless_calls_total"]["samples"]
        assert {"labels": {"tier": "silver", "status": "ok"}, "value": 1} in calls
        assert stats["metrics"]["burnless_budget_refusals_total"]["samples"] == [
            {"labels": {}, "value": 1}]

        assert get(base + "/healthz")[:1] == (200,) and get(base + "/healthz")[2] == "ok\n"
        assert get(base + "/nope")[0] == 404

        # A real run while the server is up: a planning call on gold, an execution on silver.
        code, res = ws.json("run", "write m.txt live", "--session", "live")
        assert code == 0, res
        after = parse(get(base + "/metrics")[2])
        assert sample(after, "burnless_calls_total", tier="silver", status="ok") == 2
        assert sample(after, "burnless_calls_total", tier="gold", status="ok") == 2
        plan = next(r for r in ws.ledger() if r["session"] == "live" and r["role"] == "planning")
        assert sample(after, "burnless_tier_planning_tokens_total", tier="gold",
                      model=plan["model"] or "", type="input") == plan["tokens"]["input"] > 0
        assert sample(after, "burnless_tier_execution_tokens_total", tier="silver",
                      model="claude-haiku-4-5", type="cache_read") == 8000
        # A record appended straight to the ledger shows up too.
        ledger.record_call(ws.state, rec(tier="bronze", model="m"))
        third = parse(get(base + "/metrics")[2])
        assert sample(third, "burnless_calls_total", tier="bronze", status="ok") == 2
        assert sample(third, "burnless_ledger_records_total") == sample(
            after, "burnless_ledger_records_total") + 1

    with serving(ws, port=port) as srv:  # restarted: the figures come from the ledger
        base = srv.base
        assert parse(get(base + "/metrics")[2]) == third


def test_serve_on_a_busy_port_is_a_usage_error(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = ws.run("serve", "--port", str(port), timeout=20)
    assert p.returncode == 2 and f"127.0.0.1:{port}" in p.stderr
    assert "--port" in p.stderr


# --------------------------------------------------------------------------- metrics against usage



def summed(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_metrics_agree_with_usage_over_the_same_records(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    write(ws.state, *varied(60, seed=12))
    p = ws.run("metrics")
    assert p.returncode == 0, p.stderr
    m = parse(p.stdout)
    families = ("burnless_tier_planning_tokens_total", "burnless_tier_execution_tokens_total",
                "burnless_tier_compaction_tokens_total")
    for by in ("tier", "model"):
        for row in usage_report(ws, "--period", "all", "--by", by)["rows"]:
            label = {by: row[by] or ""}
            for typ in TOKEN_FIELDS:
                assert sum(summed(m, f, **label, type=typ) for f in families) == row[typ]
            assert summed(m, "burnless_cost_usd_total", **label) == pytest.approx(
                row["cost_usd"] or 0.0)
            assert summed(m, "burnless_unknown_cost_calls_total", **label) == (
                row["unknown_cost_calls"])
            if by == "tier":  # these are by tier only
                assert summed(m, "burnless_calls_total", **label) == row["calls"]
                assert summed(m, "burnless_refusals_total", **label) == row["refusals"]
                assert summed(m, "burnless_audit_failures_total", **label) == (
                    row["audit_failures"])
                assert summed(m, "burnless_cached_responses_total", **label) == (
                    row["cached_hits"])
    (want,) = recount_of(ws.ledger()).values()
    budget = sum(1 for r in ws.ledger() if r.get("refused_by") == "budget")
    assert summed(m, "burnless_budget_refusals_total") == budget
    assert summed(m, "burnless_ledger_records_total") == len(ws.ledger())
    assert summed(m, "burnless_calls_total") == want["calls"]


def test_the_live_metrics_follow_truncation_and_growth(state: Path) -> None:
    write(state, *varied(30, seed=13))
    live = Live(state)
    live.families()
    path = ledger.ledger_path(state)
    data = path.read_bytes()
    with open(path, "r+b") as f:  # two records removed in place, then more appended
        f.truncate(data[:data[:-1].rfind(b"\n")].rfind(b"\n") + 1)
    write(state, *varied(6, seed=14))
    assert path.stat().st_size > len(data)
    view = MetricsView()
    view.apply(scan(path, 0, path.stat().st_size)[0].cells)
    assert parse(exposition(live.families())) == pytest.approx(parse(exposition(
        view.families())))
