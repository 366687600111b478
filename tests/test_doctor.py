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
