"""`burnless doctor`: exit 0 when every check passes, 1 when one fails; warnings do not fail;
every kind of broken tier and a broken config are reported, never a traceback."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import OK, Workspace, clean, fake, quoted


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


# --------------------------------------------------------------------------- broken tiers, configs


def test_doctor_with_every_kind_of_broken_tier(ws: Workspace) -> None:
    (ws.root / "script.sh").write_text("#!/bin/sh\necho hi\n")  # not executable
    (ws.root / "adir").mkdir()
    ws.config(
        "tiers:\n"
        "  missing: {command: 'not-an-agent -p'}\n"
        "  noexec: {command: ./script.sh}\n"
        "  isdir: {command: ./adir}\n"
        "  abspath: {command: /nonexistent/bin/agent}\n"
        "  nokey: {api: anthropic, model: claude-sonnet-4-5}\n"
        f"  good: {{command: {quoted(fake('honest'))}}}\n"
    )
    code, js = ws.json("doctor", env={"ANTHROPIC_API_KEY": ""})
    assert code == 1 and js["ok"] is False
    detail = {c["name"]: (c["status"], c["detail"]) for c in js["checks"]}
    assert detail["tier missing"][0] == "fail" and "'not-an-agent' not found" in (
        detail["tier missing"][1])
    assert detail["tier noexec"][0] == "fail" and "is not executable" in detail["tier noexec"][1]
    assert detail["tier isdir"][0] == "fail" and "is a directory" in detail["tier isdir"][1]
    assert detail["tier abspath"][0] == "fail" and "not found" in detail["tier abspath"][1]
    assert detail["tier nokey"][0] == "fail" and "ANTHROPIC_API_KEY" in detail["tier nokey"][1]
    assert detail["tier good"][0] == "ok"


@pytest.mark.parametrize(
    "text",
    ["", "- a list\n", "tiers:\n\tbad\n", "tiers:\n  silver: {command: 'x {foo}'}\n",
     "a: &a [*a]\n" + OK],
)
def test_doctor_with_a_broken_config(ws: Workspace, text: str) -> None:
    ws.config(text)
    p = ws.run("doctor", "--json")
    clean(p)
    assert p.returncode == 1
    (check,) = orjson.loads(p.stdout)["checks"]
    assert check["name"] == "config" and check["status"] == "fail" and "config.yaml" in (
        check["detail"])
