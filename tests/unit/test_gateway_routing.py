"""The gateway routes `burnless/auto` with the same engine as `run`: rules, then examples."""

from __future__ import annotations

from burnless.config import load_config
from burnless.gateway.routing import choose
from tests.conftest import Workspace

CONFIG = """\
tiers:
  gold: {api: anthropic, model: claude-opus-4-8}
  silver: {api: anthropic, model: claude-sonnet-4-6}
  bronze: {api: anthropic, model: claude-haiku-4-5}
planner: null
routing:
  rules: [{keywords: [architecture], tier: gold}]
  examples:
    bronze: ["fix the typo in the readme", "fix a typo in the changelog",
             "rename the variable in utils", "bump the version number"]
"""


def test_burnless_auto_follows_the_rules_then_the_examples(ws: Workspace) -> None:
    ws.config(CONFIG)
    cfg = load_config(cwd=ws.root)

    def plan(text: str) -> tuple[str, tuple[str, ...]]:
        p = choose(cfg, "anthropic", "burnless/auto", text=text, labels=(), session=False,
                   state=None, transcript=1, sensitive=())
        return p.tier, p.reasons

    tier, reasons = plan("review the architecture of the queue")
    assert tier == "gold" and any("rule 1" in r for r in reasons)
    tier, reasons = plan("fix the typo in the readme please")
    assert tier == "bronze" and any(r.startswith("examples → bronze") for r in reasons), reasons
    tier, _ = plan("implement payment retries using idempotency keys")
    assert tier == "silver"  # nothing near it: the executor
