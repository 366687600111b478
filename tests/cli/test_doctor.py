"""`burnless doctor`: exit 0 when every check passes, 1 when one fails; warnings do not fail."""

from __future__ import annotations

import orjson

from tests.conftest import Workspace, fake, quoted


def test_all_good_with_a_cache_warning(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, model: claude-haiku-4-5}}\n")
    code, js = ws.json("doctor")
    assert code == 0 and js["ok"] is True
    status = {c["name"]: c["status"] for c in js["checks"]}
    assert status["config"] == "ok" and status["tier silver"] == "ok"
    assert status["state dir"] == "ok"
    # A short stable prefix can never be cached by Haiku 4.5 (4,096-token minimum): a warning.
    assert status["cache silver"] == "warn"


def test_missing_program_and_missing_api_key_fail(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: 'not-an-agent -p'}\n"
              "  api: {api: anthropic, model: claude-sonnet-4-5, pass_env: [ANTHROPIC_API_KEY]}\n")
    p = ws.run("doctor", env={"ANTHROPIC_API_KEY": ""})
    assert p.returncode == 1
    assert "FAIL tier silver" in p.stdout and "not-an-agent" in p.stdout
    assert "FAIL tier api" in p.stdout and "ANTHROPIC_API_KEY" in p.stdout


def test_bad_config_is_a_failed_check(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {comand: x}\n")
    p = ws.run("doctor", "--json")
    assert p.returncode == 1
    (check,) = orjson.loads(p.stdout)["checks"]
    assert check["status"] == "fail" and "did you mean 'command'" in check["detail"]


def test_cache_report_comes_from_the_usage_of_the_last_calls(ws: Workspace) -> None:
    # The fake answers as Claude Code does, reporting 8,000 cache-read and 2,000 cache-write
    # tokens per call; doctor reports them instead of estimating burnless's prefix alone.
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('claude-json'))}, "
              "model: claude-haiku-4-5}\n  idle: {command: 'claude -p', model: claude-haiku-4-5}\n")
    for i in range(6):  # one more than the report reads
        assert ws.run("run", f"write f{i}.txt x", "--no-plan").returncode == 0
    code, js = ws.json("doctor")
    checks = {c["name"]: c for c in js["checks"]}
    cache = checks["cache silver"]
    assert cache["status"] == "ok", cache
    assert cache["detail"].startswith("last 5 call(s) on claude-haiku-4-5: 8,000 tokens read "
                                      "from the cache and 2,000 written per call")
    recs = [r["tokens"] for r in ws.ledger()][-5:]
    share = sum(t["cache_read"] for t in recs) / sum(
        t["cache_read"] + t["cache_write"] + t["input"] for t in recs)
    assert f"{share:.0%} of input tokens were cache reads" in cache["detail"]
    # A Claude Code tier with no call yet is not judged by burnless's prefix alone.
    assert checks["cache idle"]["status"] == "ok"
    assert "no call recorded yet" in checks["cache idle"]["detail"]


def test_cache_report_warns_when_nothing_is_read_back(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, model: claude-haiku-4-5}}\n")
    for i in range(2):
        assert ws.run("run", f"write f{i}.txt x", "--no-plan").returncode == 0
    code, js = ws.json("doctor")
    cache = {c["name"]: c for c in js["checks"]}["cache silver"]
    assert code == 0 and cache["status"] == "warn"
    assert "last 2 call(s)" in cache["detail"] and "nothing was read back" in cache["detail"]
