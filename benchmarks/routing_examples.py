#!/usr/bin/env python3
"""Routing by example on a labelled set of coding-agent tasks: accuracy, cost, decision time.

    python benchmarks/routing_examples.py                  # the table, held-out tasks only
    python benchmarks/routing_examples.py --cv             # tuning: 5-fold CV on the examples only
    python benchmarks/routing_examples.py --test FILE      # another labelled set, all held out
    python benchmarks/routing_examples.py --quick          # skip the 100,000-example timing
    python benchmarks/routing_examples.py --quick --shape-weight 0   # ablation: words only

Data: ``benchmarks/data/routing_tasks.jsonl``, 405 tasks written by hand for this benchmark,
each labelled with the tier it needs (bronze: local and mechanical; silver: a contained feature
or bug; gold: open-ended, cross-cutting or subtle). A fixed, seeded split (by a hash of each
task, per tier) keeps 40% of them out as held-out tasks; the rest are the examples. Defaults
were chosen by cross-validation on the examples alone (``--cv``), never on the held-out tasks.

Every strategy routes through the real ``burnless.routing.router.route`` in a temporary
workspace (examples written to ``.burnless/examples/<tier>.txt``, the index cached on disk):

- always the executor (silver), and always the frontier tier (gold): the two ways to not route;
- keyword rules alone: rules a user would write (``RULES`` below, written before any result);
- examples alone, and rules + examples (the router's order: rules first, then examples).

Cost model (a model, not a measurement): each attempt costs ``TOKENS`` at the tier's price from
the shipped table (the seed config's models); a task routed below the tier it needs fails there
and climbs the ladder (``--cascade``) to that tier, paying every rung on the way; a task routed
above it succeeds at the higher price.

Timing: 100,000 synthetic examples (words of the example tasks recombined, with made-up
identifiers and paths, seeded: a small vocabulary, so every word is common, the hard case for an
inverted index), the index built once, then the held-out tasks routed with ``route()``: warm (an
open index, as the gateway has) and cold (a fresh process's first decision: imports, opening the
index, searching). CPU time is the figure (a shared machine inflates wall time); wall time is
printed too. The search is checked against the exact search it approximates (every example
sharing a word scored in full): the share of the exact nearest found, and the same decision.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting.pricing import Price, price_for
from burnless.config import load_config_data
from burnless.routing import examples as ex
from burnless.routing.router import route
from burnless.settings import Config

DATA = Path(__file__).parent / "data" / "routing_tasks.jsonl"
SEED = "burnless-routing-split-1"
HELD_OUT = 0.4
TIERS = ("bronze", "silver", "gold")
MODELS = {"bronze": "haiku-4.5", "silver": "sonnet-4.6", "gold": "opus-4.8"}
TOKENS = (10_000, 2_000)  # input, output tokens of one attempt

# Rules a user would write for "hard" and "easy" work (first match wins, as in the router).
RULES: list[dict[str, Any]] = [
    {"name": "hard work", "tier": "gold", "keywords": [
        "architecture", "design", "redesign", "security", "vulnerability", "race condition",
        "deadlock", "concurrency", "thread-safe", "distributed", "migrate", "migration",
        "performance", "scalability", "memory leak", "root cause", "investigate", "flaky"]},
    {"name": "easy work", "tier": "bronze", "keywords": [
        "typo", "rename", "bump", "docstring", "comment", "readme", "changelog", "gitignore",
        "format", "lint", "spelling", "version"]},
]


LEVELS = {"easy": "bronze", "medium": "silver", "hard": "gold"}


def load(path: Path) -> list[dict[str, str]]:
    """JSON lines: a task (``task``, ``prompt`` or ``text``) and its label (``tier``: bronze,
    silver, gold; or ``label``/``difficulty``: easy, medium, hard)."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = orjson.loads(line)
        label = str(row.get("tier") or row.get("label") or row.get("difficulty") or "").lower()
        tier = LEVELS.get(label, label)
        task = " ".join(str(row.get("task") or row.get("prompt") or row.get("text") or "").split())
        if tier not in TIERS or not task:
            raise SystemExit(f"{path}:{lineno}: need a task and a label (bronze|silver|gold or "
                             "easy|medium|hard)")
        rows.append({"tier": tier, "task": task})
    return rows


def split(rows: Sequence[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(examples, held-out): per tier, ordered by a seeded hash of the task, 40% held out."""
    examples: list[dict[str, str]] = []
    held: list[dict[str, str]] = []
    for tier in TIERS:
        group = sorted((r for r in rows if r["tier"] == tier),
                       key=lambda r: hashlib.sha256((SEED + r["task"]).encode()).hexdigest())
        n = round(len(group) * HELD_OUT)
        held += group[:n]
        examples += group[n:]
    return examples, held


def workspace(root: Path, examples: Sequence[dict[str, str]], *, rules: bool,
              min_similarity: float | None) -> Config:
    state = root / ".burnless"
    (state / "examples").mkdir(parents=True, exist_ok=True)
    for tier in TIERS:
        lines = [r["task"] for r in examples if r["tier"] == tier]
        path = state / "examples" / f"{tier}.txt"
        path.write_text("".join(t + "\n" for t in lines), encoding="utf-8")
        past = time.time() - 60  # metadata older than the 2 s window: no hashing per route
        os.utime(path, (past, past))
    data: dict[str, Any] = {
        "tiers": {t: {"command": f"claude --model {m}"} for t, m in MODELS.items()},
        "executor": "silver",
        "routing": {"ladder": list(TIERS), "rules": RULES if rules else []},
    }
    if min_similarity is not None:
        data["routing"]["min_similarity"] = min_similarity
    return load_config_data(data, state / "config.yaml")


def attempt_cost(tier: str) -> float:
    price = price_for(MODELS[tier])
    assert isinstance(price, Price), MODELS[tier]
    return (TOKENS[0] * price.input + TOKENS[1] * price.output) / 1e6


def cost(chosen: str, needed: str) -> float:
    i, j = TIERS.index(chosen), TIERS.index(needed)
    return sum(attempt_cost(t) for t in TIERS[i:j + 1]) if i < j else attempt_cost(chosen)


def score(name: str, chosen: Sequence[str], held: Sequence[dict[str, str]]) -> dict[str, Any]:
    pairs = list(zip(chosen, [r["tier"] for r in held], strict=True))
    n = len(held)
    return {
        "name": name,
        "accuracy": sum(c == t for c, t in pairs) / n,
        "under": sum(TIERS.index(c) < TIERS.index(t) for c, t in pairs) / n,
        "over": sum(TIERS.index(c) > TIERS.index(t) for c, t in pairs) / n,
        "cost": sum(cost(c, t) for c, t in pairs),
        "chosen": list(chosen),
    }


def table(results: Sequence[dict[str, Any]], oracle: float, gold: float) -> None:
    print("| strategy | held-out routed to their tier | too cheap (cascade step) | too dear "
          "| cost | vs always gold | vs perfect routing |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['name']} | {r['accuracy']:.1%} | {r['under']:.1%} | {r['over']:.1%} "
              f"| ${r['cost']:.2f} | {r['cost'] / gold:.2f}× | {r['cost'] / oracle:.2f}× |")


def strategies(examples: Sequence[dict[str, str]], held: Sequence[dict[str, str]],
               min_similarity: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain = workspace(Path(tmp) / "plain", [], rules=False, min_similarity=min_similarity)
        ruled = workspace(Path(tmp) / "rules", [], rules=True, min_similarity=min_similarity)
        by_ex = workspace(Path(tmp) / "ex", examples, rules=False, min_similarity=min_similarity)
        both = workspace(Path(tmp) / "both", examples, rules=True, min_similarity=min_similarity)
        tasks = [r["task"] for r in held]
        decided = [route(by_ex, t) for t in tasks]
        results = [
            score("always the executor (silver)", [route(plain, t).tier for t in tasks], held),
            score("always gold", ["gold"] * len(tasks), held),
            score("keyword rules alone", [route(ruled, t).tier for t in tasks], held),
            score("examples alone", [d.tier for d in decided], held),
            score("rules + examples", [route(both, t).tier for t in tasks], held),
        ]
        ms = by_ex.routing.min_similarity
    oracle = sum(cost(r["tier"], r["tier"]) for r in held)
    gold = sum(cost("gold", r["tier"]) for r in held)
    counts = ", ".join(f"{t} {sum(r['tier'] == t for r in held)}" for t in TIERS)
    print(f"\n{len(examples)} examples, {len(held)} held-out tasks ({counts}); "
          f"min_similarity {ms:g}; cost per attempt "
          + ", ".join(f"{t} ${attempt_cost(t):.3f}" for t in TIERS)
          + f" ({TOKENS[0]:,} in + {TOKENS[1]:,} out)\n")
    table(results, oracle, gold)
    by_examples = [d for d in decided if any(r.startswith("examples →") for r in d.reasons)]
    right = sum(d.tier == r["tier"] for d, r in zip(decided, held, strict=True) if d in by_examples)
    print(f"\nexamples decided {len(by_examples)} of {len(held)} held-out tasks "
          f"({right / max(1, len(by_examples)):.1%} of those right); the executor took the rest")
    conf = Counter((r["tier"], d.tier) for d, r in zip(decided, held, strict=True))
    print("confusion (labelled → routed by examples alone): " + ", ".join(
        f"{a}→{b} {conf[(a, b)]}" for a in TIERS for b in TIERS if conf[(a, b)]))
    ascii_only = [(d, r) for d, r in zip(decided, held, strict=True) if not r["task"].isascii()]
    if ascii_only:
        print(f"non-English held-out tasks: {sum(d.tier == r['tier'] for d, r in ascii_only)} "
              f"of {len(ascii_only)} routed to their tier")


# --------------------------------------------------------------------------- tuning


def cross_validate(examples: Sequence[dict[str, str]], folds: int = 5) -> None:
    """Accuracy of examples alone (executor silver otherwise) per min_similarity, k-fold on
    the examples only. The held-out tasks are not read."""
    grid = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
    rows = list(examples)
    random.Random(0).shuffle(rows)
    found: list[tuple[str, list[tuple[ex.Example, float]]]] = []
    for f in range(folds):
        train = [ex.Example(r["tier"], r["task"]) for i, r in enumerate(rows) if i % folds != f]
        index = ex.Index.build(train)
        found += [(r["tier"], index.search(r["task"])) for i, r in enumerate(rows)
                  if i % folds == f]
    print(f"{folds}-fold cross-validation on the {len(rows)} examples (held-out tasks unused)")
    print("| min_similarity | routed to their tier | decided by examples |")
    print("| ---: | ---: | ---: |")
    for ms in grid:
        matches = [ex.vote(nb, min_similarity=ms, ladder=TIERS) for _, nb in found]
        labels = [t for t, _ in found]
        acc = sum((m.tier or "silver") == t
                  for m, t in zip(matches, labels, strict=True)) / len(found)
        dec = sum(m.tier is not None for m in matches) / len(found)
        print(f"| {ms:g} | {acc:.1%} | {dec:.1%} |")


# --------------------------------------------------------------------------- scale

_WORD = re.compile(r"\S+")


def synthetic(examples: Sequence[dict[str, str]], n: int, seed: int = 7) -> list[ex.Example]:
    """``n`` tasks made of the examples' words, recombined, with made-up names (seeded)."""
    rng = random.Random(seed)
    vocab = [w for r in examples for w in _WORD.findall(r["task"])]
    syll = ["ord", "acc", "pay", "usr", "sess", "cache", "auth", "inv", "ship", "log", "ctl",
            "sync", "job", "mail", "geo", "tax", "cart", "feed", "idx", "api"]

    def name() -> str:
        parts = rng.sample(syll, rng.randint(2, 3))
        return rng.choice(["_".join(parts), parts[0] + "".join(p.title() for p in parts[1:]),
                           "/".join(parts) + rng.choice([".py", ".ts", ".go", ".rs", ".sql"])])

    out = []
    for i in range(n):
        base = examples[rng.randrange(len(examples))]
        words = _WORD.findall(base["task"])
        words = [rng.choice(vocab) if rng.random() < 0.3 else w for w in words]
        for _ in range(rng.randint(0, 3)):
            words.insert(rng.randrange(len(words) + 1), name())
        out.append(ex.Example(base["tier"], " ".join(words), "example", f"synthetic:{i + 1}"))
    return out


def exact_search(db_path: Path, text: str, k: int) -> list[tuple[ex.Example, float]]:
    """The exact answer the index approximates: every example that shares a word with
    ``text`` scored by its full cosine (no postings budget, no candidate cut)."""
    import sqlite3
    from array import array

    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    n = int(db.execute("SELECT value FROM meta WHERE key = 'n'").fetchone()[0])
    words, shape = ex._hashed(text)
    terms = sorted(words)
    marks = ",".join("?" * len(terms))
    rows = db.execute(f"SELECT term, df, docs FROM posting WHERE term IN ({marks})",
                      terms).fetchall()
    idf = {t: ex._idf(n, df) for t, df, _ in rows}
    qw, qs = ex._vector(words, shape, idf)
    query = {**qw, **qs}
    sharing: set[int] = set()
    for _, _, docs in rows:
        ids = array("I")
        ids.frombytes(docs)
        sharing.update(ids)
    scored = []
    for i, tier, kind, body, source, blob in db.execute(
            "SELECT id, tier, kind, text, source, vec FROM example"):
        if i in sharing:
            vids, ws = ex._unpack(blob)
            scored.append((sum(w * query.get(t, 0.0) for t, w in zip(vids, ws, strict=True)), i,
                           ex.Example(tier, body, kind, source)))
    db.close()
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [(e, sim) for sim, _, e in scored[:k]]


COLD = """
import sys, time
from burnless.config import load_config
from burnless.routing.router import route
from burnless.safety.policy import Policy
cfg = load_config(sys.argv[1])
Policy(cfg).mask(sys.argv[2])  # as `burnless run` and `route` do before routing, examples or not
c0, w0 = time.process_time(), time.perf_counter()
d = route(cfg, sys.argv[2])
print(time.process_time() - c0, time.perf_counter() - w0, d.tier)
"""


def scale(examples: Sequence[dict[str, str]], held: Sequence[dict[str, str]], n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = root / ".burnless"
        (state / "examples").mkdir(parents=True)
        synth = synthetic(examples, n)
        for tier in TIERS:
            path = state / "examples" / f"{tier}.txt"
            path.write_text("".join(e.text + "\n" for e in synth if e.tier == tier))
            os.utime(path, (time.time() - 60, time.time() - 60))
        data = {"tiers": {t: {"command": f"claude --model {m}"} for t, m in MODELS.items()},
                "executor": "silver"}
        (state / "config.yaml").write_text(orjson.dumps(data).decode())  # JSON is YAML
        cfg = load_config_data(data, state / "config.yaml")
        c0, w0 = time.process_time(), time.perf_counter()
        route(cfg, "warm up: builds the index")
        build_cpu, build_wall = time.process_time() - c0, time.perf_counter() - w0
        db = state / "cache" / "examples-given.sqlite"
        tasks = [r["task"] for r in held]
        cpu, wall = [], []
        for t in tasks:
            c0, w0 = time.process_time(), time.perf_counter()
            route(cfg, t)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        cold_cpu, cold_wall = [], []
        for t in tasks[:15]:
            out = subprocess.run([sys.executable, "-c", COLD, str(state / "config.yaml"), t],
                                 capture_output=True, text=True, check=True, cwd=root).stdout
            cold_cpu.append(float(out.split()[0]))
            cold_wall.append(float(out.split()[1]))
        # The index against the exact search it approximates.
        index = ex.Index.open(db, ex.given_key(cfg, "builtin"))
        assert index is not None
        checked = tasks[:20]
        ms = cfg.routing.min_similarity
        overlap = same_decision = 0
        for t in checked:
            fast = index.search(t)
            slow = exact_search(db, t, ex.K)
            overlap += len({e.source for e, _ in fast} & {e.source for e, _ in slow})
            same_decision += (ex.vote(fast, min_similarity=ms, ladder=TIERS).tier
                              == ex.vote(slow, min_similarity=ms, ladder=TIERS).tier)
        size = db.stat().st_size
        index.close()
        learned = synth[:3 * 2 * 300]  # a full learned store at the default learn_max
        c0 = time.process_time()
        ex.Index.build(learned, root / "learned.sqlite", key="k")
        learned_cpu = time.process_time() - c0

    def p95(xs: list[float]) -> float:
        return sorted(xs)[int(0.95 * (len(xs) - 1))] * 1000

    med = statistics.median
    print(f"\n{n:,} examples (synthetic; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs: CPU time is the figure, wall time is what this run saw)")
    print(f"  index build, once per example set   CPU {build_cpu:5.1f} s   wall {build_wall:5.1f} s"
          f"   ({size / 1e6:.0f} MB)")
    print(f"  decision, open index (warm)         CPU median {med(cpu) * 1000:5.1f} ms, p95 "
          f"{p95(cpu):5.1f} ms   wall median {med(wall) * 1000:5.1f} ms   (target <= 20 ms)")
    print(f"  decision, fresh process (cold)      CPU median {med(cold_cpu) * 1000:5.1f} ms, p95 "
          f"{p95(cold_cpu):5.1f} ms   wall median {med(cold_wall) * 1000:5.1f} ms   (imports, "
          "opens the index, searches)")
    print(f"  learned index rebuild at learn_max 300 (1,800 examples)   CPU {learned_cpu:.2f} s")
    print(f"  vs the exact search ({len(checked)} tasks): {overlap / (ex.K * len(checked)):.0%} "
          f"of the exact {ex.K} nearest found, same decision for {same_decision} of "
          f"{len(checked)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cv", action="store_true", help="cross-validate on the examples only")
    ap.add_argument("--test", type=Path, help="a labelled JSONL set to hold out entirely "
                    "(the examples are then all of benchmarks/data)")
    ap.add_argument("--min-similarity", type=float, default=None)
    ap.add_argument("--quick", action="store_true", help="skip the 100,000-example timing")
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--shape-weight", type=float, default=None,
                    help=f"ablation: the shape block's share (default {ex.SHAPE_WEIGHT})")
    args = ap.parse_args()
    if args.shape_weight is not None:
        ex.SHAPE_WEIGHT = args.shape_weight  # every index here is built in a fresh workspace
    # pip compiles bytecode at install; an editable checkout under PYTHONDONTWRITEBYTECODE would
    # time the compiler in the fresh-process measurement instead of burnless.
    import compileall

    compileall.compile_dir(Path(ex.__file__).parent.parent, quiet=1)
    rows = load(DATA)
    examples, held = split(rows)
    if args.cv:
        cross_validate(examples)
        return
    if args.test:
        examples, held = rows, load(args.test)
    strategies(examples, held, args.min_similarity)
    if not args.quick:
        scale(examples, held, args.scale)


if __name__ == "__main__":
    main()
