#!/usr/bin/env python3
"""What the Gemini CLI's own context costs per turn, with and without the project settings
`burnless init --cli gemini` writes (.gemini/settings.json: `context.includeDirectoryTree`
and `skills.enabled` false).

    python benchmarks/gemini_context.py [--gemini PATH] [--turns 5]

Runs the real Gemini CLI (`--gemini`, else `$BURNLESS_TEST_CACHE/gemini`, else `gemini` on
PATH; `npm install --prefix DIR @google/gemini-cli` installs one) against the simulator on
127.0.0.1: one burnless session per variant, each turn writing a file (`-m gemini-2.5-flash
--approval-mode auto_edit`, no planner), in a fresh workspace that is not a git repository.
For each turn it prints the input tokens billed uncached (summed over the turn's requests) and
the turn's own material (burnless's prompt, the model's calls and their results, as the
simulator counts them). After the first turn everything else should come from the cache.

Both variants run in the same invocation, each against a fresh simulator; the figures are
simulated (the simulator caches at part boundaries; Gemini's implicit caching also caches
within a part, so on the real API burnless's stable prefix would be read too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from burnless.sim.billing import plain_block
from burnless.sim.server import sim_server

MODEL = "gemini-2.5-flash"
SESSION_CONTEXT = "<session_context>"


def find_gemini(given: str | None) -> str:
    if given:
        return given
    cache = os.environ.get("BURNLESS_TEST_CACHE")
    if cache:
        candidate = Path(cache) / "gemini" / "node_modules" / ".bin" / "gemini"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("gemini")
    if found is None:
        raise SystemExit("no Gemini CLI: pass --gemini PATH (npm install --prefix DIR "
                         "@google/gemini-cli)")
    return found


def own_tokens(body: dict[str, Any]) -> int:
    total = 0
    for content in body["contents"]:
        for part in content["parts"]:
            if str(part.get("text", "")).lstrip().startswith(SESSION_CONTEXT):
                continue
            raw = part["text"] if set(part) == {"text"} else part
            total += plain_block("messages", content.get("role", "user"), raw).tokens
    return total


def session(gemini: str, root: Path, url: str, log: Path, turns: int, settings: bool,
            ) -> list[tuple[int, int, int]]:
    """(requests, uncached tokens, the turn's own tokens) per turn."""
    ws = root / "ws"
    home = root / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False}}))
    ws.mkdir()
    burnless = [sys.executable, "-m", "burnless"]
    subprocess.run([*burnless, "init", "--cli", "gemini"], cwd=ws, check=True,
                   capture_output=True)
    if not settings:
        (ws / ".gemini" / "settings.json").unlink()
    env = {"GEMINI_CLI_HOME": str(home), "GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": "k",
           "GEMINI_CLI_TRUST_WORKSPACE": "true", "TMPDIR": str(root)}
    command = f"{gemini} -m {{model}} --approval-mode auto_edit --output-format json"
    config = {"tiers": {"silver": {"command": command, "model": MODEL, "env": env,
                                   "timeout": 300}}, "planner": None}
    (ws / ".burnless" / "config.yaml").write_text(json.dumps(config))
    out: list[tuple[int, int, int]] = []
    seen = len(log.read_text().splitlines()) if log.exists() else 0
    for n in range(1, turns + 1):
        task = f"create file notes/f{n}.txt with content hello number {n}"
        p = subprocess.run([*burnless, "run", task, "--session", "s", "--json"], cwd=ws,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"turn {n} failed (exit {p.returncode}): {p.stdout[-600:]}"
                             f"{p.stderr[-600:]}")
        records = [json.loads(line) for line in log.read_text().splitlines()]
        new = [r for r in records[seen:] if "enerateContent" in r["path"]]
        seen = len(records)
        spent = sum(r["usage"]["promptTokenCount"] - r["usage"]["cachedContentTokenCount"]
                    for r in new)
        out.append((len(new), spent, own_tokens(new[-1]["body"])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gemini", help="the Gemini CLI binary")
    ap.add_argument("--turns", type=int, default=5)
    args = ap.parse_args()
    gemini = find_gemini(args.gemini)
    version = subprocess.run([gemini, "--version"], capture_output=True, text=True).stdout
    print(f"Gemini CLI {version.strip()}, {MODEL}, {args.turns} turns per variant (simulated)")
    results: dict[str, list[tuple[int, int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="burnless-gemini-") as tmp:
        for name, settings in (("without the settings", False), ("with init's", True)):
            root = Path(tmp) / ("with" if settings else "without")
            root.mkdir()
            log = root / "sim.jsonl"
            with sim_server(log=log) as url:  # one each: no cache shared between variants
                results[name] = session(gemini, root, url, log, args.turns, settings)
    print(f"\n{'turn':>4}  " + "  ".join(f"{name:>32}" for name in results))
    print(f"{'':>4}  " + "  ".join(f"{'uncached / own (ratio)':>32}" for _ in results))
    for i in range(args.turns):
        cells = []
        for rows in results.values():
            _, spent, own = rows[i]
            cells.append(f"{spent:>8,} / {own:>6,} ({spent / own:6.2f}x)")
        print(f"{i + 1:>4}  " + "  ".join(f"{c:>32}" for c in cells))
    medians = {name: statistics.median(spent - own for _, spent, own in rows[1:])
               for name, rows in results.items()}
    print("\nafter the first turn, median tokens billed uncached beyond the turn's own:")
    for name, extra in medians.items():
        print(f"  {name:<22} {extra:>8,.0f}")
    without = statistics.median(s for _, s, _ in results["without the settings"][1:])
    with_ = statistics.median(s for _, s, _ in results["with init's"][1:])
    print(f"uncached tokens per turn, with / without the settings: {with_ / without:.3f}x")


if __name__ == "__main__":
    main()
