"""``burnless demo``: a real multi-turn session against the built-in simulator, offline.

Everything is real but the model: a temporary workspace holding a small project, the simulator
as an HTTP server on loopback, tiers that are subprocesses (``python -m burnless.sim.agent``, a
stand-in for ``claude -p``) writing real files, the audit, capsules and the ledger. The model
answers are simulated, and so are the costs (usage billed by Anthropic's caching rules, priced
from burnless's table): every figure printed is labelled as such.

Each turn reads files of the project (read from disk when the turn starts; the simulated agent
has no Read tool, so they reach it inside the turn's prompt, as ``claude -p`` would have them
after its reads) and writes one. After the session, the same turns are billed again as the
baseline a user would otherwise run: one conversation on one model (the executor's), in which
every request carries the whole transcript, the files read included, and which compacts near
the context window as Claude Code does (``burnless.sim.replay``). Same system prompt, same tool
loop, same answers; with and without prompt caching.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from burnless.accounting.tokens import Tokens, estimate_tokens

if TYPE_CHECKING:
    from burnless.sim.replay import Compaction

GOLD = "claude-opus-4-8"
SILVER = "claude-sonnet-4-6"
BASELINE_MODEL = SILVER  # the executor's: the comparison is on the same model

# Project instructions long enough to be cached (Sonnet 4.6 caches prefixes >= 1,024 tokens).
PREFIX = "# Project: inventory service (demo)\n\n" + "\n".join(
    f"- Rule {i}: keep module {name} small, typed and tested; log with the `inventory` logger; "
    f"never print credentials; prefer pure functions in {name} and explicit errors over None."
    for i, name in enumerate(
        ["config", "models", "storage", "pricing", "api", "cli", "reports", "sync"] * 4, 1
    )
) + "\n"

LEGACY_MODULES = (
    "settings", "models", "storage", "api", "pricing", "reports", "sync", "cli", "audit_log",
    "stock", "orders", "suppliers",
)


def legacy_source(name: str, functions: int = 28) -> str:
    """The project's existing module ``legacy/<name>.py``: deterministic code-like text, about
    7 KB, in words the simulated model does not read as instructions."""
    seed = sum(map(ord, name))
    out = [f'"""Legacy {name} helpers of the inventory service (kept for reference)."""', "",
           "from __future__ import annotations", "", f"STOCK_{name.upper()}: dict[int, int] = {{}}"]
    for i in range(functions):
        n = (seed * 31 + i * 17) % 997
        out += [
            "",
            "",
            f"def {name}_step_{i}(item_id: int, qty: int) -> dict[str, int]:",
            f'    """Reserve up to qty units of item_id from the {name} store, rule {n}."""',
            f"    held = STOCK_{name.upper()}.get(item_id, 0)",
            f"    return {{'item': item_id, 'qty': min(qty, held + {i}), 'batch': {n}}}",
        ]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class DemoTurn:
    """One turn of the demo session: its task and the files it reads."""
    title: str
    task: str  # the instruction, in the simulated model's task grammar (docs/simulator.md)
    reads: tuple[str, ...]  # files of the workspace the turn reads before it acts


def _files(*pairs: tuple[str, str]) -> str:
    """Instructions creating each (path, content): one tool call each, as an agent's turn."""
    return "\n".join(f"create file {path} with content {content!r}" for path, content in pairs)


def _module(name: str, body: str) -> str:
    return _files(
        (f"inventory/{name}.py", body),
        (f"tests/test_{name}.py", f"from inventory import {name}\n\n"
                                  f"def test_{name}_imports() -> None:\n"
                                  f"    assert {name} is not None\n"),
    ) + f"\nappend '- {name}\\n' to file NOTES.md"


TURNS: tuple[DemoTurn, ...] = (
    DemoTurn("Set up the config module",
             _module("config", 'DEFAULT_WAREHOUSE = "north"\nMAX_QTY = 500\n'),
             ("legacy/settings.py", "legacy/stock.py")),
    DemoTurn("Add the data model",
             _module("models", "from dataclasses import dataclass\n\n@dataclass\nclass Item:\n"
                               "    id: int\n    qty: int\n"),
             ("legacy/models.py", "inventory/config.py")),
    DemoTurn("Write the storage layer",
             _module("storage", "ITEMS: dict[int, int] = {}\n"),
             ("legacy/storage.py", "inventory/models.py")),
    DemoTurn("A worker that lies (claims a file it never writes)",
             "(lie) create file inventory/api.py with content 'def get(item_id): ...\\n'",
             ("legacy/api.py", "inventory/storage.py")),
    DemoTurn("Redo the API module honestly",
             _module("api", "from inventory.storage import ITEMS\n\ndef get(item_id: int) -> int:\n"
                            "    return ITEMS.get(item_id, 0)\n"),
             ("legacy/api.py", "legacy/orders.py")),
    DemoTurn("Add the pricing module",
             _module("pricing", "def price(qty: int, unit: float) -> float:\n"
                                "    return qty * unit\n"),
             ("legacy/pricing.py", "legacy/suppliers.py")),
    DemoTurn("Add the reports module",
             _module("reports", "def total(items: dict[int, int]) -> int:\n"
                                "    return sum(items.values())\n"),
             ("legacy/reports.py", "inventory/models.py")),
    DemoTurn("Add the sync job",
             _module("sync", "def sync(items: dict[int, int]) -> int:\n    return len(items)\n"),
             ("legacy/sync.py", "legacy/audit_log.py")),
    DemoTurn("Add the command line",
             _module("cli", "from inventory.api import get\n\ndef main() -> None:\n"
                            "    print(get(1))\n"),
             ("legacy/cli.py", "inventory/api.py")),
    DemoTurn("Add the orders module",
             _module("orders", "def order(item_id: int, qty: int) -> tuple[int, int]:\n"
                               "    return item_id, qty\n"),
             ("legacy/orders.py", "inventory/reports.py")),
    DemoTurn("Add the suppliers module",
             _module("suppliers", "SUPPLIERS: list[str] = []\n"),
             ("legacy/suppliers.py", "legacy/stock.py")),
    DemoTurn("Document the package",
             _files(("inventory/README.md", "# inventory\nA demo package built by a simulated "
                                            "burnless session.\n"))
             + "\nappend '- docs\\n' to file NOTES.md",
             ("NOTES.md", "legacy/settings.py")),
)


def turn_prompt(turn: DemoTurn, workspace: Path) -> tuple[str, int]:
    """The turn's prompt: the instruction, then every file it reads, as on disk now; and the
    tokens of those files."""
    parts = [turn.task, "", "Files read for this turn:"]
    read = 0
    for rel in turn.reads:
        text = (workspace / rel).read_text(encoding="utf-8")
        read += estimate_tokens(text)
        parts.append(f"--- {rel} ({len(text.encode('utf-8')):,} bytes) ---\n{text}")
    return "\n".join(parts), read


@dataclass(frozen=True)
class Spend:
    """Tokens and what they cost."""
    tokens: Tokens
    cost: float


@dataclass(frozen=True)
class TurnRow:
    """One turn of the demo's table: burnless's calls against the baseline's requests."""
    n: int
    title: str
    calls: str  # e.g. "plan gold + exec silver"
    status: str
    audit: str
    exit_code: int
    read_tokens: int  # tokens of the files the turn read
    burnless: Spend  # all of burnless's calls of the turn
    cached: Spend  # the baseline conversation's requests of the turn, cached
    uncached: Spend
    note: str = ""


@dataclass(frozen=True)
class Baseline:
    """One conversation on one model, compacting: the whole session's bill."""

    model: str
    cached: bool
    spend: Spend
    compactions: int
    largest_request: int  # input tokens of its largest request


@dataclass(frozen=True)
class DemoReport:
    """The demo's session: every turn, the totals, and the baselines."""
    rows: tuple[TurnRow, ...]
    burnless: Spend
    planner_cost: float  # the part of ``burnless`` spent on the planner (on GOLD)
    cached: Baseline
    uncached: Baseline
    window: int
    compact_at: int
    seconds: float

    @property
    def vs_cached(self) -> float:
        return self.burnless.cost / self.cached.spend.cost

    @property
    def vs_uncached(self) -> float:
        return self.burnless.cost / self.uncached.spend.cost

    @property
    def caught(self) -> int:
        """Turns whose false claims the audit caught (exit 3)."""
        return sum(1 for r in self.rows if r.exit_code == 3)

    def verdict(self) -> str:
        """What the demo's own figures show, and no more."""
        r = self.vs_cached
        if r < 0.95:
            head = f"burnless cost {r:.2f}x what the same turns cost"
        elif r <= 1.05:
            head = f"burnless cost about the same ({r:.2f}x) as the same turns"
        else:
            head = f"burnless cost more, {r:.2f}x what the same turns cost"
        first, last = self.rows[0], self.rows[-1]
        compacted = (
            f"it compacted {self.cached.compactions} time(s)"
            if self.cached.compactions
            else f"it never reached the {self.compact_at:,}-token compaction point"
        )
        growth = (
            f"Per turn, the conversation sent {first.cached.tokens.total_input:,} input tokens "
            f"on turn {first.n} and {last.cached.tokens.total_input:,} on turn {last.n} (it "
            f"re-sends every earlier file); burnless sent {first.burnless.tokens.total_input:,} "
            f"and {last.burnless.tokens.total_input:,}."
        )
        return (
            f"Verdict (simulated): on these {len(self.rows)} turns {head} in one conversation "
            f"on {self.cached.model} with prompt caching ({compacted}), and "
            f"{self.vs_uncached:.2f}x without caching; burnless's figure includes "
            f"${self.planner_cost:.4f} for its planner on {GOLD}. {growth} "
            f"{self.caught} false claim(s) caught by the audit (exit 3). {self.seconds:.1f}s."
        )

    def to_dict(self) -> dict[str, Any]:
        def spend(s: Spend) -> dict[str, Any]:
            return {**s.tokens.to_dict(), "cost_usd": round(s.cost, 8)}

        def baseline(b: Baseline) -> dict[str, Any]:
            return {"model": b.model, "cached": b.cached, **spend(b.spend),
                    "compactions": b.compactions, "largest_request": b.largest_request}

        return {
            "simulated": True,
            "turns": [
                {"n": r.n, "title": r.title, "calls": r.calls, "status": r.status,
                 "audit": r.audit, "exit_code": r.exit_code, "note": r.note,
                 "read_tokens": r.read_tokens, "burnless": spend(r.burnless),
                 "baseline_cached": spend(r.cached), "baseline_uncached": spend(r.uncached)}
                for r in self.rows
            ],
            "burnless": {"planner": GOLD, "executor": SILVER, **spend(self.burnless),
                         "planner_cost_usd": round(self.planner_cost, 8)},
            "baseline": {
                "what": "one conversation on one model, compacting near the context window",
                "window": self.window,
                "compact_at": self.compact_at,
                "cached": baseline(self.cached),
                "uncached": baseline(self.uncached),
            },
            "ratio_vs_cached": round(self.vs_cached, 4),
            "ratio_vs_uncached": round(self.vs_uncached, 4),
            "false_claims_caught": self.caught,
            "verdict": self.verdict(),
            "seconds": round(self.seconds, 3),
        }


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


@dataclass(frozen=True)
class _Ran:
    """What one turn of the burnless session left behind."""

    prompt: str
    read_tokens: int
    answer: str
    planner_cost: float
    calls: str
    status: str
    audit: str
    exit_code: int
    spend: Spend
    note: str


def run_demo(progress: Callable[[str], None] = lambda _: None) -> DemoReport:
    from burnless.agent import BurnlessAgent
    from burnless.sim.replay import Compaction as ReplayRule
    from burnless.sim.server import sim_server

    started = time.monotonic()
    ran: list[_Ran] = []
    with tempfile.TemporaryDirectory(prefix="burnless-demo-") as tmp:
        ws = Path(tmp) / "workspace"
        state = ws / ".burnless"
        state.mkdir(parents=True)
        (state / "prefix.md").write_text(PREFIX, encoding="utf-8")
        (ws / "legacy").mkdir()
        for name in LEGACY_MODULES:
            (ws / "legacy" / f"{name}.py").write_text(legacy_source(name), encoding="utf-8")
        sim_log = Path(tmp) / "sim-requests.jsonl"
        with sim_server(log=sim_log) as url:
            (state / "config.yaml").write_text(_config(url), encoding="utf-8")
            agent = BurnlessAgent(config_path=state / "config.yaml", workspace=ws)
            for n, turn in enumerate(TURNS, 1):
                prompt, read = turn_prompt(turn, ws)
                progress(f"turn {n}: {turn.title}")
                r = agent.run(prompt, "demo")
                calls = " + ".join(
                    f"{'plan' if c.role == 'planning' else 'exec'} {c.tier}" for c in r.calls)
                note = "; ".join(f"{f.check} {f.path}" for f in r.audit.findings)
                spend = Spend(r.usage, r.cost_usd or 0.0)
                planned = sum(c.cost_usd or 0.0 for c in r.calls if c.role == "planning")
                ran.append(_Ran(prompt, read, _answer(state, r.run_id), planned, calls, r.status,
                                r.audit.verdict, r.exit_code, spend, note))
        executor_calls = _executor_calls(sim_log)
    if len(executor_calls) != len(TURNS):
        raise RuntimeError(f"the demo session made {len(executor_calls)} executor calls for "
                           f"{len(TURNS)} turns; the simulator's log does not add up")
    rule = ReplayRule()
    prompts, answers = [x.prompt for x in ran], [x.answer for x in ran]
    cached, cached_turns = _replay(executor_calls, prompts, answers, cached=True, rule=rule)
    uncached, uncached_turns = _replay(executor_calls, prompts, answers, cached=False, rule=rule)
    rows = tuple(
        TurnRow(n, turn.title, x.calls, x.status, x.audit, x.exit_code, x.read_tokens, x.spend,
                c, u, x.note)
        for n, (turn, x, c, u) in enumerate(
            zip(TURNS, ran, cached_turns, uncached_turns, strict=True), 1)
    )
    total = Spend(sum((r.burnless.tokens for r in rows), Tokens()),
                  sum(r.burnless.cost for r in rows))
    assert rule.compact_at is not None
    return DemoReport(rows, total, sum(x.planner_cost for x in ran), cached, uncached,
                      rule.window, rule.compact_at, time.monotonic() - started)


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


def _replay(
    calls: Sequence[Sequence[Request]],
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    cached: bool,
    rule: Compaction,
) -> tuple[Baseline, list[Spend]]:
    """The same turns as one conversation on ``BASELINE_MODEL`` (``burnless.sim.replay``).

    Turn N's requests carry turns 1..N-1 whole (prompts with their files, tool calls, tool
    results, answers), then turn N so far: the user's prompt and the executor's own tool loop,
    from the simulator's log. Same system prompt and tools as the executor, same outputs.
    """
    from burnless.accounting import pricing
    from burnless.sim.billing import PromptCache
    from burnless.sim.replay import Conversation

    price = pricing.price_for(BASELINE_MODEL)
    assert price is not None
    cache = PromptCache(clock=lambda: 0.0)  # billed at once: no entry expires, as in the session
    first = _strip_cache_control(calls[0][0]["body"])
    system = "\n".join(b.get("text", "") for b in first.get("system") or [])
    chat = Conversation(BASELINE_MODEL, system, cached=cached, compaction=rule,
                        tools=first.get("tools") or ())
    per_turn: list[Spend] = []
    largest = 0
    for call, prompt, answer in zip(calls, prompts, answers, strict=True):
        opening = {"role": "user", "content": [{"type": "text", "text": prompt}]}
        tokens, cost = Tokens(), 0.0
        msgs: list[Request] = [opening]
        for rec in call:
            msgs = [opening, *_strip_cache_control(rec["body"])["messages"][1:]]
            out = int((rec.get("usage") or {}).get("output_tokens", 0))
            for req in chat.step(msgs):
                billed = cache.bill(req.body).tokens()
                used = Tokens(billed.input, req.output_tokens if req.output_tokens else out,
                              billed.cache_read, billed.cache_write)
                largest = max(largest, req.input_tokens)
                tokens += used
                cost += pricing.cost_usd(used, price)
        chat.end_turn(msgs, [{"type": "text", "text": answer}])
        per_turn.append(Spend(tokens, cost))
    total = Spend(sum((s.tokens for s in per_turn), Tokens()), sum(s.cost for s in per_turn))
    return Baseline(BASELINE_MODEL, cached, total, chat.compactions, largest), per_turn


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value
