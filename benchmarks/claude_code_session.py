#!/usr/bin/env python3
"""A 20-task session through the real Claude Code CLI: Claude Code alone vs burnless.

    python benchmarks/claude_code_session.py [--claude PATH] [--seed 1] [--tasks 20] [--json]

Claude Code (the npm package; ``--claude``, else the test cache ``$BURNLESS_TEST_CACHE`` that
``tests/e2e/test_claude_code.py`` fills, else ``claude`` on PATH) runs offline against the
simulator (``burnless.sim``), which bills every request by Anthropic's prompt-caching rules.
Every cost is **simulated**: the simulator's usage of each request, priced from burnless's
price table (the client's own ``total_cost_usd`` is printed beside it as a cross-check).

The session: a scratch git repository of 12 files (9-40 KB, generated from the seed), and 20
tasks fixed by the seed before any run: 16 read 1-3 of the files and ask a question about
them, 4 write a short file (2 of those read a file first). Strategies, each in a fresh copy of
the repository with its own simulator (own cache) and its own ``HOME``:

- ``one conversation``: ``claude -p TASK`` then ``claude -p --continue TASK`` (default tools,
  ``--permission-mode acceptEdits``), as a user keeps one session going;
- ``independent calls``: the same command without ``--continue``, one fresh call per task;
- ``burnless``: ``burnless init``'s tiers (the lean Claude Code tiers of the example config,
  pointed at the simulator), ``burnless run TASK --session bench`` per task. On the same
  model: every tier on the baselines' model (checked against the requests the simulator saw).
  Model mix: the planner on Opus, the executor on Haiku, the other tiers on the models init
  gives them (a task routed to ``gold`` runs on Opus), against the one conversation on Opus.
  For comparison, the same on the tiers of the previous README (every tool offered, skills
  on), same model.

Targets (from issue 13): burnless on init's tiers <= 0.4x the one conversation and <= 0.75x
the independent calls on the same model; with an Opus planner and a Haiku executor <= 0.15x
the one conversation on Opus. What the simulator cannot tell: whether the answers are as good.
Its model does the same work whatever it is given (it reads what the task names and answers
from the task), so the figures compare what each strategy sends and is billed, not what a
real model would make of a capsule instead of a transcript.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from burnless.accounting.pricing import cost_usd, price_for
from burnless.accounting.tokens import Tokens, estimate_tokens
from burnless.sim.server import sim_server
from burnless.workers.claude_code import drop_flags

SAME_MODEL = "claude-sonnet-4-6"  # init's executor model; both baselines and burnless on it
OPUS = "claude-opus-4-8"
HAIKU = "claude-haiku-4-5"
DEFAULT_SEED = 1
DEFAULT_TASKS = 20
FILES = 12
FILE_KB = (9, 40)
WRITE_AT = (4, 9, 14, 18)  # 0-based task indexes that write; the first two read a file first
TARGETS = (("burnless (init tiers) / one conversation, same model", 0.4),
           ("burnless (init tiers) / independent calls, same model", 0.75),
           ("burnless (opus planner, haiku executor) / one conversation on opus", 0.15))

_WORDS = ("order", "invoice", "customer", "ledger", "stock", "report", "shipment", "refund",
          "account", "session", "token", "price", "discount", "warehouse", "carrier", "audit",
          "policy", "batch", "queue", "cache", "index", "schema", "region", "tenant")
_NAMES = ("orders", "billing", "inventory", "users", "reports", "search", "shipping",
          "pricing")
_DOCS = ("architecture", "operations", "api", "testing")


# ---------------------------------------------------------------------- the workload


def make_files(rng: random.Random) -> dict[str, str]:
    """12 files of 9-40 KB: Python modules and Markdown documents of generated text."""
    files: dict[str, str] = {}
    for name in _NAMES:
        files[f"src/{name}.py"] = _module(rng, name, rng.randint(*FILE_KB) * 1024)
    for name in _DOCS:
        files[f"docs/{name}.md"] = _document(rng, name, rng.randint(*FILE_KB) * 1024)
    return files


def _module(rng: random.Random, name: str, size: int) -> str:
    lines = [f'"""The {name} module of a small shop backend (generated for a benchmark)."""', ""]
    n = 0
    while sum(len(x) + 1 for x in lines) < size:
        a, b = rng.sample(_WORDS, 2)
        n += 1
        lines += [f"def {a}_{b}_{n}({a}: int, {b}: int = {rng.randint(1, 99)}) -> int:",
                  f'    """Combine the {a} and the {b} of one {name} record."""',
                  f"    total = {a} * {rng.randint(2, 9)} + {b}",
                  f"    return total % {rng.randint(100, 999)}", "", ""]
    return "\n".join(lines)


def _document(rng: random.Random, name: str, size: int) -> str:
    lines = [f"# {name.capitalize()}", ""]
    n = 0
    while sum(len(x) + 1 for x in lines) < size:
        n += 1
        words = [rng.choice(_WORDS) for _ in range(rng.randint(30, 60))]
        lines += [f"## Section {n}: the {words[0]} and the {words[1]}", "",
                  "The " + " ".join(words) + ".", ""]
    return "\n".join(lines)


def make_tasks(rng: random.Random, paths: Sequence[str], count: int) -> list[str]:
    tasks: list[str] = []
    for i in range(count):
        picked = rng.sample(list(paths), rng.randint(1, 3))
        a, b = rng.sample(_WORDS, 2)
        if i in WRITE_AT:
            content = f"Notes on the {a} and the {b}, task {i + 1}."
            write = f"create file notes/task-{i + 1}.md with content {content}"
            tasks.append(f"read file {picked[0]}; {write}" if i in WRITE_AT[:2] else write)
        else:
            tasks.append(f"read files {', '.join(picked)}; which functions combine the {a} "
                         f"and the {b}, and how do these files relate?")
    return tasks


def make_repo(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if shutil.which("git"):  # Claude Code puts git status in its prompt: a real repository
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "scratch"]):
            subprocess.run([*git, *args], cwd=root, check=True, capture_output=True)


# ---------------------------------------------------------------------- running


@dataclass
class Outcome:
    """One strategy's session: what the simulator billed and what the client reported."""

    name: str
    model: str
    requests: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    cost: float = 0.0  # simulator usage x burnless's price table
    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("cache write", "cache read", "input", "output"), 0.0))
    reported: float = 0.0  # the client's own total_cost_usd, summed
    failed: int = 0  # tasks that did not end ok
    wall_s: float = 0.0
    tool_results: dict[str, int] = field(default_factory=dict)  # tool_use_id -> tokens
    models: dict[str, int] = field(default_factory=dict)  # requests per model, as billed

    @property
    def read_share(self) -> float:
        t = self.tokens
        total = t.input + t.cache_read + t.cache_write
        return t.cache_read / total if total else 0.0


def _client_env(url: str, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sim-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
    }


def _bill(log: Path, out: Outcome) -> None:
    for line in log.read_bytes().splitlines():
        rec = orjson.loads(line)
        if rec.get("method") != "POST" or "/v1/messages" not in rec.get("path", "") or \
                "count_tokens" in rec["path"] or not rec.get("usage"):
            continue
        u = rec["usage"]
        tokens = Tokens(input=u["input_tokens"], output=u["output_tokens"],
                        cache_read=u["cache_read_input_tokens"],
                        cache_write=u["cache_creation_input_tokens"])
        for message in rec["body"].get("messages") or []:
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out.tool_results[str(block.get("tool_use_id"))] = estimate_tokens(
                        orjson.dumps(block).decode())
        price = price_for(rec["body"]["model"])
        assert price is not None, rec["body"]["model"]
        out.models[rec["body"]["model"]] = out.models.get(rec["body"]["model"], 0) + 1
        one_hour = (u.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0)
        out.cost += cost_usd(tokens, price, one_hour)
        for part, t in (("cache write", Tokens(cache_write=tokens.cache_write)),
                        ("cache read", Tokens(cache_read=tokens.cache_read)),
                        ("input", Tokens(input=tokens.input)),
                        ("output", Tokens(output=tokens.output))):
            out.parts[part] += cost_usd(t, price, one_hour if part == "cache write" else 0)
        out.tokens = out.tokens + tokens
        out.requests += 1


def run_claude_alone(claude: Path, model: str, tasks: Sequence[str], files: dict[str, str],
                     work: Path, *, conversation: bool) -> Outcome:
    name = "one conversation" if conversation else "independent calls"
    out = Outcome(name, model)
    repo, home, log = work / "repo", work / "home", work / "sim.jsonl"
    make_repo(repo, files)
    home.mkdir()
    t0 = time.monotonic()
    with sim_server(log=log) as url:
        env = _client_env(url, home)
        for i, task in enumerate(tasks):
            argv = [str(claude), "-p", task, "--output-format", "json", "--model", model,
                    "--permission-mode", "acceptEdits"]
            if conversation and i:
                argv.append("--continue")
            p = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True,
                               timeout=900)
            try:
                result = orjson.loads(p.stdout)
            except orjson.JSONDecodeError:
                sys.exit(f"{name}, task {i + 1}: claude exit {p.returncode}: {p.stderr[-800:]}")
            out.reported += float(result.get("total_cost_usd") or 0.0)
            if p.returncode != 0 or result.get("subtype") != "success":
                out.failed += 1
    out.wall_s = time.monotonic() - t0
    _bill(log, out)
    assert set(out.models) <= {model}, f"{name}: requests on {sorted(out.models)}"
    return out


def run_burnless(claude: Path, name: str, planner_model: str, executor_model: str,
                 tasks: Sequence[str], files: dict[str, str], work: Path,
                 lean: bool = True, others: str | None = None) -> Outcome:
    """burnless init's config, its Claude Code tiers pointed at the simulator: the planner on
    ``planner_model``, the executor on ``executor_model``, every other tier (one a routing rule
    may send a task to) on ``others`` (None: the model init gives it). ``lean=False``: the
    tiers of the previous README (every tool offered, skills on), for comparison."""
    out = Outcome(name, f"{planner_model} + {executor_model}" if planner_model != executor_model
                  else executor_model)
    repo, home, log = work / "repo", work / "home", work / "sim.jsonl"
    make_repo(repo, files)
    home.mkdir()
    t0 = time.monotonic()
    with sim_server(log=log) as url:
        env = {**_client_env(url, home), "BURNLESS_HOME": str(work / "burnless-home"),
               "PATH": f"{claude.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        p = subprocess.run([sys.executable, "-m", "burnless", "init"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            sys.exit(f"burnless init failed: {p.stderr}")
        config = repo / ".burnless" / "config.yaml"
        cfg = yaml.safe_load(config.read_text())
        tier_env = {k: v for k, v in _client_env(url, home).items() if k != "PATH"}
        # The planner init's config resolves to (a `plan` tier, else gold, unless it names one).
        planner = cfg.get("planner") or next(t for t in ("plan", "gold") if t in cfg["tiers"])
        models = {t: others for t in cfg["tiers"] if others is not None}
        models.update({planner: planner_model, "silver": executor_model})
        for tier_name, tier in cfg["tiers"].items():
            command = tier["command"]
            if not command.startswith("claude "):
                continue
            command = f"{claude} " + command[len("claude "):]
            if not lean:
                command = drop_flags(command, ["--tools", "--disable-slash-commands"])
            if tier_name in models:
                old = command.split("--model ", 1)[1].split()[0]
                command = command.replace(f"--model {old}", f"--model {models[tier_name]}")
            tier.update(command=command, env=tier_env, timeout=900)
        cfg["executor"] = "silver"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        for i, task in enumerate(tasks):
            p = subprocess.run([sys.executable, "-m", "burnless", "run", task, "--session",
                                "bench", "--json"], cwd=repo, env=env, capture_output=True,
                               text=True, timeout=900)
            try:
                result = orjson.loads(p.stdout)
            except orjson.JSONDecodeError:
                sys.exit(f"{name}, task {i + 1}: burnless exit {p.returncode}: {p.stderr[-800:]}")
            out.reported += float(result.get("cost_usd") or 0.0)
            if p.returncode != 0:
                out.failed += 1
    out.wall_s = time.monotonic() - t0
    _bill(log, out)
    if others is not None:  # "same model" means every request
        unexpected = set(out.models) - {planner_model, executor_model, others}
        assert not unexpected, f"{name}: requests on {sorted(unexpected)}"
    return out


# ---------------------------------------------------------------------- the report


def find_claude(explicit: str | None) -> Path:
    candidates = [explicit] if explicit else []
    cache = os.environ.get("BURNLESS_TEST_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "burnless-tests")
    candidates += [str(Path(cache) / "claude-code" / "node_modules" / ".bin" / "claude"),
                   shutil.which("claude") or ""]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c).absolute()
    sys.exit("no Claude Code found: pass --claude PATH, or run `pytest -m slow "
             "tests/e2e/test_claude_code.py` once to install it into the test cache")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--claude", help="the claude binary (default: the test cache, then PATH)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--keep", metavar="DIR", help="keep each run's repository, HOME and "
                    "simulator log under DIR (default: a temporary directory, removed)")
    args = ap.parse_args(argv)
    claude = find_claude(args.claude)
    version = subprocess.run([str(claude), "--version"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    rng = random.Random(args.seed)
    files = make_files(rng)
    tasks = make_tasks(rng, sorted(files), args.tasks)
    runs: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="burnless-cc-bench-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)

        def work(tag: str) -> Path:
            d = root / tag
            d.mkdir()
            return d

        print(f"claude code {version}; {len(tasks)} tasks; seed {args.seed}", file=sys.stderr)
        plan: list[tuple[str, Any]] = [
            ("conv-same", lambda: run_claude_alone(claude, SAME_MODEL, tasks, files,
                                                   work("conv-same"), conversation=True)),
            ("indep-same", lambda: run_claude_alone(claude, SAME_MODEL, tasks, files,
                                                    work("indep-same"), conversation=False)),
            ("burnless-same", lambda: run_burnless(claude, "burnless (init tiers)", SAME_MODEL,
                                                   SAME_MODEL, tasks, files,
                                                   work("burnless-same"), others=SAME_MODEL)),
            ("burnless-previous", lambda: run_burnless(
                claude, "burnless (previous tiers)", SAME_MODEL, SAME_MODEL, tasks, files,
                work("burnless-previous"), lean=False, others=SAME_MODEL)),
            ("conv-opus", lambda: run_claude_alone(claude, OPUS, tasks, files,
                                                   work("conv-opus"), conversation=True)),
            ("burnless-mix", lambda: run_burnless(claude, "burnless (init tiers)", OPUS, HAIKU,
                                                  tasks, files, work("burnless-mix"))),
        ]
        for tag, run in plan:
            t0 = time.monotonic()
            runs.append(run())
            print(f"  {tag}: {time.monotonic() - t0:.0f}s", file=sys.stderr)
    conv, indep, same, previous, conv_opus, mix = runs
    ratios = [same.cost / conv.cost, same.cost / indep.cost, mix.cost / conv_opus.cost]
    if args.json:
        print(orjson.dumps({
            "claude_code": version, "seed": args.seed, "tasks": tasks,
            "runs": [{"name": r.name, "model": r.model, "models": r.models,
                      "requests": r.requests,
                      "tokens": r.tokens.to_dict(), "cost_usd": round(r.cost, 6),
                      "reported_usd": round(r.reported, 6), "failed": r.failed,
                      "cost_parts_usd": {k: round(v, 6) for k, v in r.parts.items()},
                      "cache_read_share": round(r.read_share, 4), "wall_s": round(r.wall_s, 1)}
                     for r in runs],
            "targets": [{"name": n, "ratio": round(x, 4), "target": t, "pass": x <= t}
                        for (n, t), x in zip(TARGETS, ratios, strict=True)],
            "lean_vs_previous_tiers": round(same.cost / previous.cost, 4),
            "tool_result_tokens": sum(indep.tool_results.values()),
        }, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"Claude Code {version}, {len(tasks)} tasks (seed {args.seed}); simulated costs: "
          "the simulator's usage x burnless's price table")
    print(f"  {'strategy':<26} {'model':<36} {'requests':>8} {'input tok':>10} "
          f"{'read %':>6} {'cost':>9} {'client $':>9} {'failed':>6}")
    for r in runs:
        total_in = r.tokens.input + r.tokens.cache_read + r.tokens.cache_write
        print(f"  {r.name:<26} {r.model:<36} {r.requests:>8} {total_in:>10,} "
              f"{r.read_share:>6.1%} {'$' + format(r.cost, '.4f'):>9} "
              f"{'$' + format(r.reported, '.4f'):>9} {r.failed:>6}")
    print("where the money goes (share of each run's cost):")
    for r in runs:
        print(f"  {r.name:<26} {r.model:<36} " + "  ".join(
            f"{k} {v / r.cost:.0%}" for k, v in r.parts.items()))
    read = sum(indep.tool_results.values())
    price = price_for(SAME_MODEL)
    assert price is not None
    floor = cost_usd(Tokens(cache_write=read), price)
    print(f"the tasks' tool results (the files read, mostly): {read:,} tokens; written to the "
          f"cache once on {SAME_MODEL} they cost ${floor:.4f}, {floor / indep.cost:.0%} of the "
          "independent calls' cost, and every strategy that reads the files pays it")
    print("targets:")
    for (label, target), ratio in zip(TARGETS, ratios, strict=True):
        print(f"  {'PASS' if ratio <= target else 'FAIL'}  {label}: {ratio:.3f} "
              f"(target <= {target})")
    print(f"the lean tiers: burnless on init's tiers / on the previous tiers, same model: "
          f"{same.cost / previous.cost:.3f}; the previous tiers / one conversation "
          f"{previous.cost / conv.cost:.3f}, / independent calls {previous.cost / indep.cost:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
