"""The router: table-driven rules, precedence, policy, and `route` never dispatching."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import yaml

from burnless.config import load_config_data
from burnless.errors import PolicyRefused
from burnless.routing.router import keyword_hit, route
from tests.conftest import Workspace

BASE = {
    "tiers": {
        "local0": {"command": "x", "local": True},
        "bronze": {"command": "x"},
        "silver": {"command": "x"},
        "gold": {"command": "x"},
    },
    "routing": {"ladder": ["bronze", "silver", "gold"]},
}


def cfg(rules: list[dict] | None = None, **extra: object):  # type: ignore[no-untyped-def]
    data = orjson.loads(orjson.dumps(BASE))
    data["routing"]["rules"] = rules or []
    data.update(extra)
    return load_config_data(data, Path("/tmp/ws/.burnless/config.yaml"))


@pytest.mark.parametrize(
    ("rule", "task", "labels", "matches"),
    [
        ({"keywords": ["test"]}, "write the latest report", (), False),
        ({"keywords": ["test"]}, "add a Test for it", (), True),
        ({"keywords": ["test"]}, "run tests", (), False),
        ({"keywords": ["code"]}, "decode this string", (), False),
        ({"keywords": ["code"]}, "review the code.", (), True),
        ({"keywords": ["threat model"]}, "write a Threat  model", (), False),
        ({"keywords": ["threat model"]}, "write a threat model now", (), True),
        ({"keywords": ["c++"]}, "port it to C++ please", (), True),
        # A keyword inside a file path matches, unless the rule says in_paths: false.
        ({"keywords": ["readme"]}, "fix the link in README.md", (), True),
        ({"keywords": ["architecture"], "in_paths": False},
         "fix the typo in docs/architecture.md", (), False),
        ({"keywords": ["design"], "in_paths": False}, "edit design-notes.txt, then", (), False),
        ({"keywords": ["design"], "in_paths": False}, "move src/design/a into lib", (), False),
        ({"keywords": ["design"], "in_paths": False}, "open ./design and ~/design", (), False),
        ({"keywords": ["design"], "in_paths": False}, r"see C:\design\x", (), False),
        ({"keywords": ["architecture"], "in_paths": False},
         "read docs/architecture.md, then review the architecture.", (), True),
        ({"keywords": ["design"], "in_paths": False}, "a design/architecture review", (), True),
        ({"keywords": ["design"], "in_paths": False}, "(design) it", (), True),
        ({"keywords": ["threat model"], "in_paths": False}, "write a threat model now", (),
         True),
        ({"keywords": ["threat model"], "in_paths": False}, "fix docs/threat model.md", (),
         False),
        ({"regex": r"\bCVE-\d+"}, "fix CVE-2024 now", (), True),
        ({"regex": r"\bCVE-\d+"}, "fix cve-2024 now", (), False),
        ({"regex": r"(?i)\bCVE-\d+"}, "fix cve-2024 now", (), True),
        ({"labels": ["infra", "ops"]}, "anything", ("ops",), True),
        ({"labels": ["infra"]}, "anything", ("ops",), False),
        ({"min_chars": 10}, "short", (), False),
        ({"min_chars": 5}, "short", (), True),
        ({"max_chars": 4}, "short", (), False),
        ({"keywords": ["deploy"], "labels": ["prod"]}, "deploy it", (), False),
        ({"keywords": ["deploy"], "labels": ["prod"]}, "deploy it", ("prod",), True),
        ({"keywords": ["deploy"], "max_chars": 5}, "deploy it", (), False),
    ],
)
def test_rule_conditions(rule: dict, task: str, labels: tuple, matches: bool) -> None:
    c = cfg([{**rule, "tier": "gold"}])
    d = route(c, task, labels=labels)
    assert (d.tier == "gold") is matches, d.reasons


def test_first_matching_rule_wins_and_reasons_name_it() -> None:
    c = cfg([{"keywords": ["auth"], "tier": "gold", "name": "auth"},
             {"keywords": ["auth"], "tier": "bronze"}])
    d = route(c, "fix auth")
    assert d.tier == "gold" and d.natural == "gold"
    assert any("rule 'auth'" in r and "'auth'" in r for r in d.reasons)


def test_precedence_flag_over_rules_over_pin_over_executor() -> None:
    c = cfg([{"keywords": ["design"], "tier": "gold"}], executor="silver")
    assert route(c, "design it", tier="bronze").tier == "bronze"
    assert route(c, "design it", pinned="bronze").tier == "gold"
    d = route(c, "routine work", pinned="bronze")
    assert d.tier == "bronze" and d.pinned == "bronze"
    assert route(c, "routine work").tier == "silver"


def test_policy_sends_sensitive_work_to_a_local_tier_even_against_tier_flag() -> None:
    c = cfg()
    d = route(c, "x", tier="gold", sensitive=["label sensitive"])
    assert d.tier == "local0" and d.natural == "gold" and d.policy and "not local" in d.policy
    data = orjson.loads(orjson.dumps(BASE))
    del data["tiers"]["local0"]
    with pytest.raises(PolicyRefused):
        route(load_config_data(data, Path("/tmp/c.yaml")), "x", sensitive=["label sensitive"])


def test_cascade_ladder() -> None:
    c = cfg([{"keywords": ["audit"], "tier": "local0", "cascade": True}])
    d = route(c, "audit page.html")
    assert d.cascade and d.ladder == ("local0", "bronze", "silver", "gold")
    d = route(c, "other", cascade=True)
    assert d.tier == "bronze" and d.ladder == ("bronze", "silver", "gold")
    d = route(c, "other", cascade=True, tier="silver")
    assert d.ladder == ("silver", "gold")


def test_route_cli_explains_and_never_dispatches(ws: Workspace) -> None:
    ws.config(yaml.safe_dump({
        "tiers": {"silver": {"command": "not-installed-agent"},
                  "gold": {"command": "also-missing"}},
        "routing": {"rules": [{"keywords": ["architecture"], "tier": "gold"}]},
    }))
    p = ws.run("route", "review the architecture", "--explain")
    assert p.returncode == 0, p.stderr
    assert "tier: gold" in p.stdout and "keyword 'architecture'" in p.stdout
    code, js = ws.json("route", "small fix")
    assert code == 0
    assert set(js) >= {"tier", "natural", "pinned", "policy", "reasons"}
    assert js["tier"] == "silver" and js["pinned"] is None
    assert ws.run("route", "small fix").stdout.strip() == "silver"
    assert ws.ledger() == []


def test_init_config_sends_design_work_to_gold_and_a_file_named_architecture_not() -> None:
    example = Path(__file__).parents[2] / "burnless" / "example" / "config.yaml"
    c = load_config_data(yaml.safe_load(example.read_text()), Path("/tmp/ws/.burnless/c.yaml"))
    assert route(c, "Design the plugin architecture and its migration plan").tier == "gold"
    d = route(c, "read files docs/architecture.md, src/orders.py; which functions combine "
                 "the shipment and the schema?")
    assert d.tier == "silver", d.reasons
    # --explain says why the rule did not apply; the reason names no tier, so a cascade still
    # starts at the cheapest rung, as for any task no rule matched.
    assert d.reasons[0] == ("rule 'design' not applied: 'architecture' only inside a file path "
                            "(in_paths: false)")
    plain = route(c, "summarise the orders module", cascade=True)
    assert route(c, "summarise docs/architecture.md", cascade=True).ladder == plain.ladder


def test_keywords_outside_paths_cost_linear_time_on_a_hostile_task() -> None:
    """One long run full of matches is judged once; it used to be walked once per match (26 s
    for this task, hours for a task of the 1 MiB policy.max_task_bytes allows)."""
    task = "see x.md " + "design-" * 8000 + ".md"
    t0 = time.perf_counter()
    assert not keyword_hit("design", task, in_paths=False)
    assert keyword_hit("design", task + " then design it", in_paths=False)
    assert time.perf_counter() - t0 < 1.0
