"""`kind: check` tiers: a deterministic check script serves only the rules that name it; it
is never where policy sends sensitive work. Sensitive work with no general local tier is
refused (exit 5), and the refusal and `route --explain` say how to leave a sensitive session."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from burnless.config import load_config_data
from burnless.errors import ConfigError, PolicyRefused
from burnless.routing.router import route
from tests.conftest import Workspace, fake, quoted

CHECK = {"command": "python3 check.py", "kind": "check", "local": True, "format": "text",
         "price": {"input": 0, "output": 0}}
CLOUD = {"command": "claude --model claude-sonnet-4-6"}


def cfg(**extra: object):  # type: ignore[no-untyped-def]
    data = {"tiers": {"checks": CHECK, "silver": CLOUD, "gold": CLOUD},
            "routing": {"rules": [{"keywords": ["page audit"], "tier": "checks"}]}, **extra}
    return load_config_data(data, Path("/tmp/c.yaml"))


def test_a_check_is_not_the_default_executor_even_listed_first() -> None:
    c = load_config_data({"tiers": {"checks": CHECK, "bronze": CLOUD}}, Path("/tmp/c.yaml"))
    assert c.executor == "bronze" and c.routing.ladder == ("bronze",)
    assert c.tiers["checks"].deterministic and not c.tiers["checks"].general


@pytest.mark.parametrize(("extra", "where"), [
    ({"executor": "checks"}, "executor"),
    ({"planner": "checks"}, "planner"),
    ({"compaction": {"tier": "checks"}}, "compaction.tier"),
    ({"routing": {"ladder": ["checks", "silver"]}}, "routing.ladder.0"),
])
def test_a_check_named_as_a_general_role_is_a_config_error(extra: dict[str, object],
                                                            where: str) -> None:
    with pytest.raises(ConfigError, match=rf"{where}: names tier 'checks', which is kind: check"):
        cfg(**extra)


def test_bad_kind_and_only_checks_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"tiers.checks.kind: must be 'worker'"):
        load_config_data({"tiers": {"checks": {**CHECK, "kind": "script"}}}, Path("/tmp/c.yaml"))
    with pytest.raises(ConfigError, match="every tier is kind: check"):
        load_config_data({"tiers": {"checks": CHECK}}, Path("/tmp/c.yaml"))


def test_sensitive_work_never_falls_back_to_a_check() -> None:
    with pytest.raises(PolicyRefused, match="no local tier that does general work") as exc:
        route(cfg(), "summarize the notes", sensitive=["label sensitive"])
    assert "checks: kind check, which serves only the rules that name it" in str(exc.value)
    # a rule that names the (local) check still sends sensitive work to it
    d = route(cfg(), "page audit of secret.html", sensitive=["label sensitive"])
    assert d.tier == "checks" and d.policy == "sensitive (label sensitive): checks is local"


def test_sensitive_work_goes_to_a_general_local_tier_not_a_check_listed_before_it() -> None:
    c = load_config_data({"tiers": {"checks": CHECK, "silver": CLOUD,
                                    "llama": {"command": "ollama run llama3", "local": True}}},
                         Path("/tmp/c.yaml"))
    d = route(c, "summarize the notes", sensitive=["label sensitive"])
    assert d.tier == "llama" and "silver is not local → llama" in (d.policy or "")


# --------------------------------------------------------------------------- the CLI


def test_the_example_config_refuses_sensitive_work_and_says_how_to_leave(
    ws: Workspace, tmp_path: Path
) -> None:
    assert ws.run("init").returncode == 0  # the example: checks is the only local tier
    p = ws.run("run", "summarize the notes", "--label", "sensitive")
    assert p.returncode == 5, p.stdout + p.stderr
    assert p.stderr.startswith("burnless: error: sensitive work (label sensitive)")
    assert "no local tier that does general work" in p.stderr and "checks: kind check" in p.stderr
    assert not (ws.state / "logs").exists() or not any((ws.state / "logs").iterdir())
    (rec,) = ws.ledger()
    assert rec["status"] == "refused" and rec["refused_by"] == "policy"

    # The page audit is the check's own rule: sensitive or not, the script answers it at $0.
    code, res = ws.json("run", "page audit of .burnless/checks/pages/clean.html",
                        "--label", "sensitive")
    assert code == 0 and res["tier"] == "checks", res
    # The session now holds sensitive work: anything else in it is refused, and both the
    # refusal and route --explain say how to leave it.
    leave = "start another session (--session NEW) or remove this one " \
            "(`burnless session rm default`)"
    p = ws.run("run", "refactor the parser")
    assert p.returncode == 5 and leave in p.stderr, p.stderr
    p = ws.run("route", "refactor the parser", "--explain")
    assert p.returncode == 5 and leave in p.stderr, p.stderr
    p = ws.run("route", "page audit of .burnless/checks/pages/clean.html", "--explain")
    assert p.returncode == 0 and "policy: sensitive (the session holds sensitive work" in p.stdout
    assert leave in p.stdout
    assert ws.run("route", "refactor the parser", "--session", "other").stdout.strip() == "silver"
    assert ws.run("session", "rm", "default").returncode == 0
    assert ws.run("route", "refactor the parser").stdout.strip() == "silver"


def test_a_general_local_tier_takes_sensitive_work(ws: Workspace, tmp_path: Path) -> None:
    ws.config("tiers:\n"
              f"  checks: {{command: {quoted(fake('escalate'))}, kind: check, local: true}}\n"
              f"  mine: {{command: {quoted(fake('honest'))}, local: true}}\n"
              f"  silver: {{command: {quoted(fake('honest'))}}}\n"
              "planner: null\n")
    code, res = ws.json("run", "write notes.txt private", "--label", "sensitive")
    assert code == 0 and res["tier"] == "mine", res
    assert orjson.loads(orjson.dumps(res["route"]))["policy"].endswith("silver is not local → mine")
