"""``burnless demo``: a real multi-turn session against the built-in simulator, offline.

Everything is real but the model: a temporary workspace, the simulator as an HTTP server on
loopback, tiers that are subprocesses (``python -m burnless.sim.agent``, a stand-in for
``claude -p``) writing real files, the audit, capsules and the ledger. The model answers are
simulated, and so are the costs (usage billed by Anthropic's caching rules, priced from
burnless's table): every figure printed is labelled as such.

After the session, the executor's exact requests (from the simulator's request log) are billed
again through a fresh simulator cache, each preceded by the whole transcript of the earlier
turns, as a chat agent would send them, with and without prompt caching, so the costs compare.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless.accounting.tokens import Tokens

GOLD = "claude-opus-4-8"
SILVER = "claude-sonnet-4-6"

# Project instructions long enough to be cached (Sonnet 4.6 caches prefixes >= 1,024 tokens).
PREFIX = "# Project: inventory service (demo)\n\n" + "\n".join(
    f"- Rule {i}: keep module {name} small, typed and tested; log with the `inventory` logger; "
    f"never print secrets; prefer pure functions in {name} and explicit errors over None."
    for i, name in enumerate(
        ["config", "models", "storage", "pricing", "api", "cli", "reports", "sync"] * 4, 1
    )
) + "\n"


def _material(seed: int, lines: int) -> str:
    """Deterministic 'files read' for a turn: what a real task brings into the prompt."""
    out = [f"# excerpt {seed}: inventory/module_{seed}.py"]
    for i in range(lines):
        out.append(f"def handler_{seed}_{i}(item_id: int, qty: int) -> dict[str, int]:")
        out.append(f"    return {{'item': item_id, 'qty': qty + {i}, 'batch': {seed * 7 + i}}}")
    return "\n".join(out)


TURNS: list[tuple[str, str]] = [
    ("Set up the config module", "create file inventory/config.py with content "
     "'DEFAULT_WAREHOUSE = \"north\"\\nMAX_QTY = 500\\n'"),
    ("Add the data model", "create file inventory/models.py with content "
     "'from dataclasses import dataclass\\n\\n@dataclass\\nclass Item:\\n"
     "    id: int\\n    qty: int\\n'"),
    ("Write the storage layer", "create file inventory/storage.py with content "
     "'ITEMS: dict[int, int] = {}\\n'"),
    ("A worker that lies (claims a file it never writes)", "(lie) create file "
     "inventory/api.py with content 'def get(item_id): ...\\n'"),
    ("Redo the API module honestly", "create file inventory/api.py with content "
     "'from inventory.storage import ITEMS\\n\\ndef get(item_id: int) -> int:\\n"
     "    return ITEMS.get(item_id, 0)\\n'"),
    ("Add the reports module", "create file inventory/reports.py with content "
     "'def total(items: dict[int, int]) -> int:\\n    return sum(items.values())\\n'"),
    ("Document the package", "create file inventory/README.md with content "
     "'# inventory\\nA demo package built by a simulated burnless session.\\n'"),
    ("Add a changelog entry", "append '- reports: total()\\n' to file inventory/README.md"),
]


@dataclass
class TurnRow:
    n: int
    title: str
    calls: str  # e.g. "plan gold + exec silver"
    status: str
    audit: str
    exit_code: int
    usage: Tokens
    cost: float | None
    note: str = ""


@dataclass
class DemoReport:
    rows: list[TurnRow] = field(default_factory=list)
    burnless_cost: float = 0.0
    burnless_tokens: Tokens = field(default_factory=Tokens)
    replay_cached: tuple[Tokens, float] = (Tokens(), 0.0)
    replay_uncached: tuple[Tokens, float] = (Tokens(), 0.0)
    seconds: float = 0.0


def _config(url: str) -> str:
    def tier(model: str) -> dict[str, object]:
        return {
            "command": f"{sys.executable} -m burnless.sim.agent --model {model} "
                       "--system-file {prefix_file}",
            "format": "claude-json",
            "env": {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sim-demo-key"},
        }

    return json.dumps({  # JSON is YAML
        "tiers": {"gold": tier(GOLD), "silver": tier(SILVER)},
        "planner": "gold",
        "executor": "silver",
    }, indent=2)


def run_demo(progress: Callable[[str], None] = lambda _: None) -> DemoReport:
    from burnless.agent import BurnlessAgent
    from burnless.sim.server import sim_server

    report = DemoReport()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="burnless-demo-") as tmp:
        ws = Path(tmp) / "workspace"
        state = ws / ".burnless"
        state.mkdir(parents=True)
        (state / "prefix.md").write_text(PREFIX, encoding="utf-8")
        sim_log = Path(tmp) / "sim-requests.jsonl"
        answers: list[str] = []
        with sim_server(log=sim_log) as url:
            (state / "config.yaml").write_text(_config(url), encoding="utf-8")
            agent = BurnlessAgent(config_path=state / "config.yaml")
            for n, (title, task) in enumerate(TURNS, 1):
                body = f"{task}\n\nContext (files read for this turn):\n{_material(n, 60)}"
                progress(f"turn {n}: {title}")
                r = agent.run(body, "demo")
                calls = " + ".join(
                    f"{'plan' if c.role == 'planning' else 'exec'} {c.tier}" for c in r.calls)
                note = "; ".join(f"{f.check} {f.path}" for f in r.audit.findings)
                report.rows.append(TurnRow(n, title, calls, r.status, r.audit.verdict,
                                           r.exit_code, r.usage, r.cost_usd, note))
                report.burnless_tokens += r.usage
                report.burnless_cost += r.cost_usd or 0.0
                answers.append(_answer(state, r.run_id))
        executor_calls = _executor_calls(sim_log)
        report.replay_cached = _replay(executor_calls, answers, cached=True)
        report.replay_uncached = _replay(executor_calls, answers, cached=False)
    report.seconds = time.monotonic() - started
    return report


def _answer(state: Path, run_id: str) -> str:
    """The executor's final answer text, from the run's raw log (claude-json)."""
    from burnless.formats import parse_output

    log = state / "logs" / f"{run_id}.log"
    return parse_output(log.read_text(encoding="utf-8"), "claude-json").text


Request = dict[str, Any]


def _executor_calls(sim_log: Path) -> list[list[Request]]:
    """The executor's requests, grouped by call (a call's first request has one message)."""
    from burnless.storage import jsonl

    calls: list[list[Request]] = []
    for rec in jsonl.read(sim_log):
        body = rec.get("body")
        if not isinstance(body, dict) or body.get("model") != SILVER or rec.get("status") != 200:
            continue
        if len(body.get("messages", [])) == 1 or not calls:
            calls.append([])
        calls[-1].append(rec)
    return calls


def _replay(calls: list[list[Request]], answers: list[str], *, cached: bool
            ) -> tuple[Tokens, float]:
    """Bill the executor's exact requests again, each preceded by the whole transcript.

    A chat agent keeps every earlier turn in its context: turn N's requests resend turns
    1..N-1 (tasks, tool calls, tool results, answers). Same system prompt, same outputs, the
    breakpoints Claude Code uses (system block, last block) or none at all.
    """
    from burnless.accounting import pricing
    from burnless.sim.billing import PromptCache

    cache = PromptCache()
    price = pricing.price_for(SILVER)
    assert price is not None
    total, cost = Tokens(), 0.0
    history: list[Any] = []
    for call, answer in zip(calls, answers, strict=True):
        for rec in call:
            body = _strip_cache_control(rec["body"])
            messages = history + body["messages"]
            system = body.get("system") or []
            if cached:
                system = [*system[:-1], {**system[-1], "cache_control": {"type": "ephemeral"}}]
                last = messages[-1]
                blocks = last["content"] if isinstance(last["content"], list) else [
                    {"type": "text", "text": last["content"]}]
                blocks = [*blocks[:-1], {**blocks[-1], "cache_control": {"type": "ephemeral"}}]
                messages = [*messages[:-1], {**last, "content": blocks}]
            billed = cache.bill({**body, "system": system, "messages": messages}).tokens()
            out = int((rec.get("usage") or {}).get("output_tokens", 0))
            usage = Tokens(billed.input, out, billed.cache_read, billed.cache_write)
            total += usage
            cost += pricing.cost_usd(usage, price)
        last_messages = _strip_cache_control(call[-1]["body"])["messages"]
        history = [*history, *last_messages,
                   {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return total, cost


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value
