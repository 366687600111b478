#!/usr/bin/env python3
"""What a 40-turn coding session costs: full replay vs burnless, through the billing simulator.

    python benchmarks/economics.py [--seed 1] [--turns 40] [--steps 4] [--sensitivity 1,2,8]

Every figure is **simulated**: the requests are real Messages API bodies built from generated
text, billed by ``burnless.sim.billing.PromptCache`` (Anthropic's prompt-caching rules) and
priced from burnless's price table. The workload model and every assumption are written out in
``docs/economics.md``; the workload is fixed by the seed and is not tuned to the targets.

Strategies (each its own session, so each has its own cache and clock):

- full replay (one growing conversation, like ``claude --continue``), uncached and cached
  (breakpoints on the system block and on the last block), on the frontier and the mid model;
- burnless: the planner (gold) on the first turn of each epoch, then every turn's tool loop on
  the executor (silver) with the byte-stable prefix, one block per plan/capsule, the task;
- the cache-optimal bound for burnless's own requests: every input token already sent to that
  model as a prefix of an earlier request is read, every other token written.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from burnless.accounting.pricing import Price, cost_usd, price_for
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.config import CompactionSettings
from burnless.prompt import Prompt, header, project_block, render_prompt
from burnless.session.capsule import Capsule
from burnless.session.compaction import compact_capsule, digest, plan_fold
from burnless.session.context import context_of, context_tokens, current_epoch, needs_plan, next_seq
from burnless.sim.billing import PromptCache, split_blocks

GOLD = "claude-opus-4-8"  # frontier model; burnless's planner
SILVER = "claude-sonnet-4-6"  # mid model; burnless's executor
EPHEMERAL = {"type": "ephemeral"}  # 5-minute TTL, the default

DEFAULT_SEED = 1
DEFAULT_TURNS = 40
DEFAULT_STEPS = 4
PREFIX_TOKENS = 6000
TASK_TOKENS = (50, 150)
MATERIAL_TOKENS = (2000, 10000)
ANSWER_TOKENS = (200, 1500)
PLAN_ANSWER_TOKENS = 300
STEP_SECONDS = (20.0, 60.0)
REPORT_TURNS = (1, 2, 10, 20, 40)

# Targets of issue 6 ("How it is checked").
TARGET_VS_CACHED = 0.5
TARGET_VS_UNCACHED = 0.1
TARGET_VS_BOUND = 1.25
TARGET_READ_SHARE = 0.90

_VOCAB = (
    "def return self config session token cache import value result if else for in None True "
    "False path client request response error raise with open data items key len list dict str "
    "int async await class test assert logger info parse render prompt capsule ledger audit tier "
    "model price usage budget plan task file write read line bytes hash status summary next = "
    "( ) : , . -> [ ] { } + == != # the a of to and is it that this we when then not"
).split()
_DIRS = ("src", "lib", "tests", "api", "core", "cli", "docs", "app", "pkg", "internal")


# --------------------------------------------------------------------------- the workload


def filler(rng: random.Random, nbytes: int) -> str:
    """ASCII text of exactly ``nbytes`` bytes (so ``estimate_tokens`` is nbytes / 4), code-like."""
    lines: list[str] = []
    size = 0
    while size < nbytes:
        line = "    " * rng.randint(0, 3) + " ".join(rng.choices(_VOCAB, k=rng.randint(3, 12)))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:nbytes]


def text_of(rng: random.Random, tokens: int) -> str:
    return filler(rng, 4 * tokens)


def _path(rng: random.Random) -> str:
    parts = [rng.choice(_DIRS), *rng.choices(_VOCAB[:60], k=rng.randint(0, 2))]
    name = "_".join(rng.choices(_VOCAB[:60], k=rng.randint(1, 2)))
    return "/".join(parts) + f"/{name}.py"


@dataclass(frozen=True)
class Turn:
    """One turn of the session, the same for every strategy (same task, material, outputs)."""

    n: int  # 1-based
    task: str
    material: tuple[str, ...]  # the material, split into the chunks the tool loop reads
    tool_calls: tuple[dict[str, Any], ...]  # assistant tool_use blocks, one per chunk (k >= 2)
    answer: str
    seconds: tuple[float, ...]  # simulated time each step takes (model + tool), one per step
    plan_seconds: float  # the planner call's time, when the planner fires on this turn
    plan_answer: str
    plan_steps: tuple[str, ...]
    summary: str
    files: tuple[str, ...]
    next: str

    @property
    def material_tokens(self) -> int:
        return sum(estimate_tokens(c) for c in self.material)


@dataclass(frozen=True)
class Workload:
    seed: int
    steps: int
    prefix_md: str
    turns: tuple[Turn, ...]

    @property
    def system(self) -> str:
        """Full replay's system prompt: burnless's executor stable prefix, byte for byte."""
        return header("executor") + project_block(self.prefix_md)


def _prefix_md(rng: random.Random, prefix_tokens: int) -> str:
    """A prefix.md sized so that the executor's stable prefix is ``prefix_tokens`` tokens."""
    fixed = len(header("executor")) + len("<project>\n") + len("</project>\n\n")
    body = max(1, 4 * prefix_tokens - fixed - 1)
    return filler(rng, body).rstrip() + "\n"


def _split(text: str, parts: int) -> tuple[str, ...]:
    """Exactly ``parts`` consecutive chunks of near-equal length."""
    if len(text) < parts:
        raise ValueError(f"cannot split {len(text)} characters into {parts} chunks")
    cuts = [len(text) * i // parts for i in range(parts + 1)]
    return tuple(text[cuts[i] : cuts[i + 1]] for i in range(parts))


def make_workload(
    seed: int = DEFAULT_SEED,
    turns: int = DEFAULT_TURNS,
    steps: int = DEFAULT_STEPS,
    prefix_tokens: int = PREFIX_TOKENS,
) -> Workload:
    """The seeded session. Sizes and texts do not depend on ``steps``; only the chunking, the
    tool calls and the step times do, so runs with different ``steps`` compare the same work."""
    if steps < 1 or turns < 1:
        raise ValueError("turns and steps must be >= 1")
    base = random.Random(seed)
    prefix_md = _prefix_md(random.Random(f"{seed}:prefix"), prefix_tokens)
    out: list[Turn] = []
    for n in range(1, turns + 1):
        task_tokens = base.randint(*TASK_TOKENS)
        material_tokens = base.randint(*MATERIAL_TOKENS)
        answer_tokens = base.randint(*ANSWER_TOKENS)
        text = random.Random(f"{seed}:{n}:text")
        task = text_of(text, task_tokens).strip()
        material = text_of(text, material_tokens)
        answer = text_of(text, answer_tokens)
        plan_answer = text_of(text, PLAN_ANSWER_TOKENS)
        plan_steps = tuple(
            filler(text, text.randint(40, 160)).replace("\n", " ").strip()
            for _ in range(text.randint(2, 7))
        )
        summary = filler(text, text.randint(80, 320)).replace("\n", " ").strip()
        files = tuple(_path(text) for _ in range(text.randint(1, 6)))
        nxt = filler(text, text.randint(40, 200)).replace("\n", " ").strip()

        tools = random.Random(f"{seed}:{n}:tools")  # per-k quantities: their own streams
        clock = random.Random(f"{seed}:{n}:clock")
        chunks = _split(material, max(steps - 1, 1))
        calls = (
            tuple(
                {
                    "type": "tool_use",
                    "id": f"toolu_{n:03d}_{j:02d}",
                    "name": "Read",
                    "input": {"file_path": _path(tools)},
                }
                for j in range(1, len(chunks) + 1)
            )
            if steps > 1
            else ()
        )
        out.append(
            Turn(
                n=n,
                task=task,
                material=chunks,
                tool_calls=calls,
                answer=answer,
                seconds=tuple(clock.uniform(*STEP_SECONDS) for _ in range(steps)),
                plan_seconds=random.Random(f"{seed}:{n}:plan").uniform(*STEP_SECONDS),
                plan_answer=plan_answer,
                plan_steps=plan_steps,
                summary=summary,
                files=files,
                next=nxt,
            )
        )
    return Workload(seed, steps, prefix_md, tuple(out))


# --------------------------------------------------------------------------- requests


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _result(call: dict[str, Any], chunk: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call["id"], "content": chunk}


def _marked(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": EPHEMERAL}


Message = tuple[str, list[dict[str, Any]]]  # (role, content blocks)


def request(
    model: str,
    system: str,
    messages: Sequence[Message],
    *,
    cached: bool,
    context_mark: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A Messages API body. Cached: breakpoints on the system block, on the last block, and on
    the block at ``context_mark`` (message index, block index) when given."""
    sys_block = _marked(_text(system)) if cached else _text(system)
    body: list[dict[str, Any]] = []
    last = len(messages) - 1
    for i, (role, blocks) in enumerate(messages):
        content = list(blocks)
        if cached and context_mark is not None and context_mark[0] == i:
            content[context_mark[1]] = _marked(content[context_mark[1]])
        if cached and i == last:
            content[-1] = _marked(content[-1])
        body.append({"role": role, "content": content})
    return {"model": model, "max_tokens": 8192, "system": [sys_block], "messages": body}


def turn_steps(turn: Turn, head: list[dict[str, Any]], steps: int) -> list[list[Message]]:
    """The messages of the turn so far at each of its ``steps`` requests.

    ``head`` is the first user message's leading blocks (burnless's context + task, or full
    replay's task). k >= 2: step j adds the tool call of step j-1 and its result. k = 1: the
    whole material rides in the first user message."""
    if steps == 1:
        return [[("user", [*head, *(_text(c) for c in turn.material)])]]
    msgs: list[Message] = [("user", head)]
    out = [list(msgs)]
    for call, chunk in zip(turn.tool_calls, turn.material, strict=True):
        msgs = [*msgs, ("assistant", [call]), ("user", [_result(call, chunk)])]
        out.append(msgs)
    return out


def step_outputs(turn: Turn) -> list[dict[str, Any]]:
    """What each step of the turn answers: a tool call per chunk, then the answer."""
    return [*turn.tool_calls, _text(turn.answer)]


# --------------------------------------------------------------------------- billing


@dataclass(frozen=True)
class Call:
    """One request as billed: the turn it belongs to, its model, its role and its tokens."""

    turn: int
    model: str
    role: str  # "replay", "planner" or "executor"
    tokens: Tokens
    at: float = 0.0  # simulated seconds since the session started (the bound has no clock)


@dataclass(frozen=True)
class Strategy:
    name: str
    models: str
    calls: tuple[Call, ...]

    @property
    def tokens(self) -> Tokens:
        return sum((c.tokens for c in self.calls), Tokens())

    @property
    def cost(self) -> float:
        return sum(cost_usd(c.tokens, _price(c.model)) for c in self.calls)

    @property
    def input_cost(self) -> float:
        return sum(
            cost_usd(
                Tokens(c.tokens.input, 0, c.tokens.cache_read, c.tokens.cache_write),
                _price(c.model),
            )
            for c in self.calls
        )

    def turn_tokens(self, n: int) -> Tokens:
        return sum((c.tokens for c in self.calls if c.turn == n), Tokens())

    def read_share(self, from_turn: int = 2) -> float:
        t = sum((c.tokens for c in self.calls if c.turn >= from_turn), Tokens())
        return t.cache_read / t.total_input if t.total_input else 0.0


def _price(model: str) -> Price:
    price = price_for(model)
    if price is None:
        raise SystemExit(f"no price for {model} in burnless/data/prices.json")
    return price


class Clock:
    """Simulated seconds since the session started; ``PromptCache`` reads it for the TTLs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Biller:
    """One session's cache and clock: bill a request, then let the step's time pass."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.cache = PromptCache(clock=self.clock)
        self.calls: list[Call] = []

    def bill(self, turn: int, role: str, body: dict[str, Any], output: int, seconds: float) -> None:
        usage = self.cache.bill(body)
        tokens = usage.with_output(output).tokens()
        self.calls.append(Call(turn, body["model"], role, tokens, self.clock.now))
        self.clock.now += seconds


class Bound:
    """The cache-optimal bill of a request sequence: the longest prefix (at block boundaries,
    counted in tokens) that any earlier request to the same model sent is read at 0.1x;
    every other input token is written at 1.25x. No TTL, no breakpoints, no lookback."""

    def __init__(self) -> None:
        self.seen: dict[str, set[bytes]] = {}
        self.calls: list[Call] = []

    def bill(self, turn: int, role: str, body: dict[str, Any], output: int) -> None:
        seen = self.seen.setdefault(body["model"], set())
        digest_, total, read = b"", 0, 0
        prefixes: list[bytes] = []
        for block in split_blocks(body):
            digest_ = hashlib.sha256(digest_ + block.key).digest()
            total += block.tokens
            prefixes.append(digest_)
            if digest_ in seen and read == total - block.tokens:
                read = total  # still on a prefix sent before
        seen.update(prefixes)
        self.calls.append(Call(turn, body["model"], role, Tokens(0, output, read, total - read)))


# --------------------------------------------------------------------------- strategies


def full_replay(work: Workload, model: str, *, cached: bool) -> Strategy:
    """One growing conversation: every request carries the whole transcript so far."""
    biller = Biller()
    transcript: list[Message] = []
    for turn in work.turns:
        outputs = step_outputs(turn)
        states = turn_steps(turn, [_text(turn.task)], work.steps)
        for msgs, out, secs in zip(states, outputs, turn.seconds, strict=True):
            body = request(model, work.system, [*transcript, *msgs], cached=cached)
            biller.bill(turn.n, "replay", body, estimate_tokens(_block_text(out)), secs)
        transcript = [*transcript, *states[-1], ("assistant", [outputs[-1]])]
    label = "full replay, " + ("cached" if cached else "no cache")
    return Strategy(label, model, tuple(biller.calls))


def _block_text(block: dict[str, Any]) -> str:
    from burnless.sim.billing import block_text

    return block_text(block)


def _context_message(prompt: Prompt) -> tuple[list[dict[str, Any]], int | None]:
    """The first user message's leading blocks (plan, capsules, task) and the index of the
    last context block (the breakpoint that lets the next turn read this one's context)."""
    blocks = [_text(b) for b in prompt.blocks]
    mark = len(blocks) - 1 if blocks else None
    return [*blocks, _text(prompt.task)], mark


def burnless_session(
    work: Workload,
    compaction: Compaction | None = None,
) -> tuple[Strategy, Strategy, list[Capsule]]:
    """burnless's calls billed as sent, and the same calls billed at the cache-optimal bound."""
    compaction = compaction or CompactionSettings()
    biller, bound = Biller(), Bound()
    capsules: list[Capsule] = []
    for turn in work.turns:
        if context_tokens(context_of(capsules)) > compaction.max_context_tokens:
            capsules = _compact(capsules, compaction.keep_recent)
        if needs_plan(capsules):
            prompt = render_prompt("planner", work.prefix_md, context_of(capsules), turn.task)
            head, mark = _context_message(prompt)
            body = request(
                GOLD,
                prompt.stable_prefix,
                [("user", head)],
                cached=True,
                context_mark=(0, mark) if mark is not None else None,
            )
            out = estimate_tokens(turn.plan_answer)
            biller.bill(turn.n, "planner", body, out, turn.plan_seconds)
            bound.bill(turn.n, "planner", body, out)
            capsules.append(
                Capsule.make(
                    seq=next_seq(capsules),
                    epoch=current_epoch(capsules),
                    role="plan",
                    tier="gold",
                    model=GOLD,
                    task=turn.task,
                    status="ok",
                    audit="skipped",
                    summary=f"Plan for turn {turn.n}",
                    plan=turn.plan_steps,
                )
            )
        prompt = render_prompt("executor", work.prefix_md, context_of(capsules), turn.task)
        head, mark = _context_message(prompt)
        outputs = step_outputs(turn)
        for msgs, out_block, secs in zip(
            turn_steps(turn, head, work.steps), outputs, turn.seconds, strict=True
        ):
            body = request(
                SILVER,
                prompt.stable_prefix,
                msgs,
                cached=True,
                context_mark=(0, mark) if mark is not None else None,
            )
            out = estimate_tokens(_block_text(out_block))
            biller.bill(turn.n, "executor", body, out, secs)
            bound.bill(turn.n, "executor", body, out)
        capsules.append(
            Capsule.make(
                seq=next_seq(capsules),
                epoch=current_epoch(capsules),
                role="exec",
                tier="silver",
                model=SILVER,
                task=turn.task,
                status="ok",
                audit="passed",
                summary=turn.summary,
                files=turn.files,
                next=turn.next,
            )
        )
    models = f"{GOLD} plans, {SILVER} executes"
    return (
        Strategy("burnless", models, tuple(biller.calls)),
        Strategy("cache-optimal bound", models, tuple(bound.calls)),
        capsules,
    )


def _compact(capsules: list[Capsule], keep_recent: int) -> list[Capsule]:
    """burnless's deterministic compaction (``compaction.tier: null``), as the agent runs it."""
    fold = plan_fold(context_of(capsules), keep_recent)
    if fold is None:
        return capsules
    return [*capsules, compact_capsule(capsules, fold, digest(capsules, fold))]


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    at_least: bool = False

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit


@dataclass(frozen=True)
class Report:
    work: Workload
    strategies: tuple[Strategy, ...]  # FR gold uncached, cached, FR mid uncached, cached, bl, bound
    compactions: int
    plans: int

    def get(self, name: str, model_prefix: str = "") -> Strategy:
        for s in self.strategies:
            if s.name == name and s.models.startswith(model_prefix):
                return s
        raise KeyError(name)

    @property
    def burnless(self) -> Strategy:
        return self.get("burnless")

    @property
    def bound(self) -> Strategy:
        return self.get("cache-optimal bound")

    def checks(self) -> tuple[Check, ...]:
        bl = self.burnless
        return (
            Check(
                "burnless / cached full replay (gold)",
                bl.cost / self.get("full replay, cached", GOLD).cost,
                TARGET_VS_CACHED,
            ),
            Check(
                "burnless / uncached full replay (gold)",
                bl.cost / self.get("full replay, no cache", GOLD).cost,
                TARGET_VS_UNCACHED,
            ),
            Check(
                "burnless input cost / bound input cost",
                bl.input_cost / self.bound.input_cost,
                TARGET_VS_BOUND,
            ),
            Check(
                "burnless cache-read share of input, turns >= 2",
                bl.read_share(2),
                TARGET_READ_SHARE,
                at_least=True,
            ),
        )


def run(
    seed: int = DEFAULT_SEED,
    turns: int = DEFAULT_TURNS,
    steps: int = DEFAULT_STEPS,
    *,
    prefix_tokens: int = PREFIX_TOKENS,
    compaction: Compaction | None = None,
) -> Report:
    work = make_workload(seed, turns, steps, prefix_tokens)
    replays = tuple(
        full_replay(work, model, cached=cached)
        for model in (GOLD, SILVER)
        for cached in (False, True)
    )
    bl, bound, capsules = burnless_session(work, compaction)
    return Report(
        work,
        (*replays, bl, bound),
        compactions=sum(1 for c in capsules if c.role == "compact"),
        plans=sum(1 for c in capsules if c.role == "plan"),
    )


def command(
    seed: int, turns: int, steps: int, sensitivity: Iterable[int], compaction_sensitivity: int
) -> str:
    ks = ",".join(str(k) for k in sensitivity)
    return (
        f"python benchmarks/economics.py --seed {seed} --turns {turns} --steps {steps}"
        f" --sensitivity {ks} --compaction-sensitivity {compaction_sensitivity}"
    )


def format_report(report: Report) -> str:
    work = report.work
    cached_gold = report.get("full replay, cached", GOLD).cost
    lines = [
        f"SIMULATED session: {len(work.turns)} turns, {work.steps} model steps per turn, "
        f"seed {work.seed}; stable prefix {estimate_tokens(work.system):,} tokens",
        f"  per turn: task {TASK_TOKENS[0]}-{TASK_TOKENS[1]}, material "
        f"{MATERIAL_TOKENS[0]:,}-{MATERIAL_TOKENS[1]:,}, answer "
        f"{ANSWER_TOKENS[0]}-{ANSWER_TOKENS[1]} tokens (uniform); step time "
        f"{STEP_SECONDS[0]:.0f}-{STEP_SECONDS[1]:.0f} s; 5-minute cache TTL",
        f"  material read: {sum(t.material_tokens for t in work.turns):,} tokens; answers: "
        f"{sum(estimate_tokens(t.answer) for t in work.turns):,} tokens; burnless: "
        f"{report.plans} planner call(s), {report.compactions} compaction(s)",
        "",
    ]
    head = (
        f"{'strategy (simulated)':<24} {'model':<18} {'input':>11} {'cache write':>11} "
        f"{'cache read':>11} {'output':>8} {'cost USD':>9} {'x cached FR gold':>16} "
        f"{'read share*':>11}"
    )
    lines += [head, "-" * len(head)]
    for s in report.strategies:
        t = s.tokens
        model = s.models if len(s.models) <= 18 else "gold + silver"
        lines.append(
            f"{s.name:<24} {model:<18} {t.input:>11,} {t.cache_write:>11,} {t.cache_read:>11,} "
            f"{t.output:>8,} {s.cost:>9.2f} {s.cost / cached_gold:>16.3f} "
            f"{s.read_share(2):>11.1%}"
        )
    lines += [
        "",
        f"FR = full replay; gold = {GOLD}, silver = {SILVER}; "
        "prices from burnless/data/prices.json",
        "* share of input tokens read from cache, turns >= 2. The bound's share is the most",
        "  any cache layout of burnless's calls can read; only resending more (full replay)",
        "  reads more.",
        "",
    ]
    lines.append("targets (simulated):")
    for c in report.checks():
        op = ">=" if c.at_least else "<="
        lines.append(
            f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.value:.3f} (target {op} {c.limit:g})"
        )
    lines += ["", "input tokens per turn (simulated; all calls of the turn):"]
    sub = (
        f"  {'turn':>4} {'burnless':>9} {'read':>9} {'write':>7} {'share read':>10} "
        f"{'FR cached gold':>15}"
    )
    lines.append(sub)
    replay = report.get("full replay, cached", GOLD)
    for n in REPORT_TURNS:
        if n > len(work.turns):
            continue
        b, r = report.burnless.turn_tokens(n), replay.turn_tokens(n)
        share = b.cache_read / b.total_input if b.total_input else 0.0
        lines.append(
            f"  {n:>4} {b.total_input:>9,} {b.cache_read:>9,} {b.cache_write:>7,} "
            f"{share:>10.1%} {r.total_input:>15,}"
        )
    return "\n".join(lines)


def format_sensitivity(rows: Sequence[tuple[str, Report]]) -> str:
    """One line per variant of the same session: k (model steps per turn), compaction."""
    lines = ["sensitivity (same seed and session; simulated):"]
    head = (
        f"  {'variant':<28} {'burnless USD':>12} {'cached FR gold':>14} {'vs cached':>9} "
        f"{'vs uncached':>11} {'vs bound':>8} {'read share':>10}  targets failed"
    )
    lines.append(head)
    for label, r in rows:
        checks = r.checks()
        failed = [str(i + 1) for i, c in enumerate(checks) if not c.passed]
        lines.append(
            f"  {label:<28} {r.burnless.cost:>12.2f} "
            f"{r.get('full replay, cached', GOLD).cost:>14.2f} {checks[0].value:>9.3f} "
            f"{checks[1].value:>11.3f} {checks[2].value:>8.3f} {checks[3].value:>10.1%}  "
            + (", ".join(failed) if failed else "none")
        )
    lines.append(
        "  (targets: 1 vs cached <= 0.5, 2 vs uncached <= 0.1, 3 vs bound <= 1.25, "
        "4 read share >= 90%)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--turns", type=int, default=DEFAULT_TURNS)
    ap.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help="model steps (requests) per turn: the tool loop (default 4)",
    )
    ap.add_argument(
        "--sensitivity",
        default="1,2,8",
        help="comma-separated step counts to rerun the same session with",
    )
    ap.add_argument(
        "--compaction-sensitivity",
        type=int,
        default=3000,
        metavar="TOKENS",
        help="also rerun with compaction.max_context_tokens = TOKENS (0: skip); "
        "the default 12000 does not compact within 40 turns",
    )
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args(argv)
    ks = sorted({int(k) for k in args.sensitivity.split(",") if k.strip()} | {args.steps})
    started = time.perf_counter()
    print("command: " + command(args.seed, args.turns, args.steps, ks, args.compaction_sensitivity))
    report = run(args.seed, args.turns, args.steps)
    print(format_report(report))
    rows = [
        (
            f"k = {k}"
            + (" (main)" if k == args.steps else "")
            + (" (one call per turn)" if k == 1 else ""),
            report if k == args.steps else run(args.seed, args.turns, k),
        )
        for k in ks
    ]
    if args.compaction_sensitivity > 0:
        small = CompactionSettings(max_context_tokens=args.compaction_sensitivity)
        r = run(args.seed, args.turns, args.steps, compaction=small)
        rows.append((f"k = {args.steps}, compact >{args.compaction_sensitivity}", r))
        rows[-1] = (rows[-1][0] + f" ({r.compactions}x)", r)
    print()
    print(format_sensitivity(rows))
    print(f"\n(ran in {time.perf_counter() - started:.1f} s)")
    return 1 if args.check and not all(c.passed for c in report.checks()) else 0


if __name__ == "__main__":
    sys.exit(main())
