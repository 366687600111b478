"""The real Claude Code CLI, end to end and offline, against ``burnless sim serve``.

Slow (``pytest -m slow``, run by ``.ci/run``): the first run installs Claude Code from the npm
registry into a cache directory; later runs reuse it (``tests/e2e/clients.py``).
``BURNLESS_TEST_CACHE`` picks the directory (default ``$XDG_CACHE_HOME/burnless-tests``, i.e.
``~/.cache/burnless-tests``); ``BURNLESS_CLAUDE_CODE_VERSION`` picks the version (default: the
one the simulator was checked against; ``latest`` tries the newest).
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from burnless.accounting.tokens import estimate_tokens
from burnless.sim.billing import BILLING_HEADER_PREFIX, split_blocks
from tests.e2e.clients import CLAUDE_CODE, Sim, npm_install, sim_process

if TYPE_CHECKING:  # the `ws` fixture itself comes from conftest.py
    from tests.conftest import Workspace

pytestmark = pytest.mark.slow

EXECUTOR_MODEL = "claude-haiku-4-5"
PLANNER_MODEL = "claude-sonnet-4-5"

PREFIX_MD = """\
# Project notes (burnless end-to-end test)

This workspace holds small text files that the tests create one turn at a time.
Keep every file exactly as the task says: no trailing newline unless the task gives one,
no extra files, no reformatting. Paths are relative to the working directory.

Conventions:
- notes/ holds plain text, src/ holds Python, docs/ holds Markdown, data/ holds JSON.
- Never touch .burnless/ (burnless's own state) or anything outside the working directory.
- Report every file you wrote in the envelope, with its exact size and sha256.
"""

# Five turns of one session, then a lie. Each task: (text, {path: expected bytes}).
TURNS: list[tuple[str, dict[str, bytes]]] = [
    ("create file notes/a.txt with content hello", {"notes/a.txt": b"hello"}),
    (
        'create file notes/b.txt with content "line one\\nline two\\n"',
        {"notes/b.txt": b"line one\nline two\n"},
    ),
    (
        "create file src/app.py with content \"print('hi')\\n\"; "
        "create file src/util.py with content 'X = 1\\n'",
        {"src/app.py": b"print('hi')\n", "src/util.py": b"X = 1\n"},
    ),
    ("write file docs/readme.md with content # Title", {"docs/readme.md": b"# Title"}),
    ('create file data/n.json containing {"n": 5}', {"data/n.json": b'{"n": 5}'}),
]
LIE = "create file notes/ghost.txt with content boo (lie)"


# ---------------------------------------------------------------------- Claude Code, the sim


@pytest.fixture(scope="module")
def claude() -> Path:
    """The Claude Code binary, installed once into the test cache and reused."""
    return npm_install(CLAUDE_CODE)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    """``burnless sim serve --port 0`` as a real subprocess on 127.0.0.1."""
    with sim_process(tmp_path) as server:
        yield server


# ---------------------------------------------------------------------- helpers


def _tier(claude: Path, model: str, sim: Sim, home: Path, *, writes: bool) -> dict[str, Any]:
    argv = [
        str(claude),
        "-p",
        "--output-format",
        "json",
        "--model",
        model,
        "--append-system-prompt-file",
        "{prefix_file}",
        # No ~/.claude/projects transcript; cwd, date and git status out of the system prompt,
        # so the system block that carries burnless's prefix is byte-stable between turns.
        "--no-session-persistence",
        "--exclude-dynamic-system-prompt-sections",
    ]
    if writes:
        argv += ["--allowedTools", "Write"]  # -p mode asks permission for a write otherwise
    return {
        "command": shlex.join(argv),
        "model": model,
        "timeout": 120,
        "env": {
            "ANTHROPIC_BASE_URL": sim.url,
            "ANTHROPIC_API_KEY": "dummy-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "HOME": str(home),  # it writes ~/.claude.json
        },
    }


def _claude_result(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Claude Code's own ``result`` object, read back through ``burnless log RUN_ID``."""
    p = ws.run("log", run_id)
    assert p.returncode == 0, p.stderr
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            obj = orjson.loads(line)
            if obj.get("type") == "result":
                return obj
    raise AssertionError(f"no Claude Code result object in the log of {run_id}:\n{p.stdout}")


def _tokens_of(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "input": usage["input_tokens"],
        "output": usage["output_tokens"],
        "cache_read": usage["cache_read_input_tokens"],
        "cache_write": usage["cache_creation_input_tokens"],
    }


def _sum(usages: list[dict[str, Any]]) -> dict[str, int]:
    total = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    for u in usages:
        for k, v in _tokens_of(u).items():
            total[k] += v
    return total


def _tokens_through(request: dict[str, Any], stable_prefix: str) -> int:
    """Tokens of the request up to and including the system block holding burnless's prefix.

    Counted the simulator's way (its own block split), so a cache read at least this large
    means the whole stable prefix — and everything Claude Code puts before it — was read.
    """
    system = [
        s for s in request["system"] if not str(s.get("text", "")).startswith(BILLING_HEADER_PREFIX)
    ]
    holding = [i for i, s in enumerate(system) if stable_prefix.strip() in s.get("text", "")]
    assert len(holding) == 1, "burnless's stable prefix is not in exactly one system block"
    upto = len(request.get("tools") or []) + holding[0] + 1
    return sum(b.tokens for b in split_blocks(request)[:upto])


# ---------------------------------------------------------------------- the test


def test_claude_code_session_audited_metered_and_cached(
    claude: Path, sim: Sim, ws: Workspace, tmp_path: Path
) -> None:
    t_start = time.monotonic()
    home = tmp_path / "claude-home"
    home.mkdir()
    config = {
        "tiers": {
            "gold": _tier(claude, PLANNER_MODEL, sim, home, writes=False),
            "bronze": _tier(claude, EXECUTOR_MODEL, sim, home, writes=True),
        },
        "planner": "gold",
        "executor": "bronze",
    }
    ws.config(orjson.dumps(config).decode())  # JSON is YAML
    (ws.state / "prefix.md").write_text(PREFIX_MD, encoding="utf-8")

    per_turn: list[tuple[int, list[dict[str, Any]], float, float]] = []
    seen = 0
    for n, (task, files) in enumerate(TURNS, start=1):
        t0 = time.monotonic()
        code, res = ws.json("run", task, "--session", "s1", timeout=300)
        wall = time.monotonic() - t0
        assert code == 0, res
        assert res["status"] == "ok" and res["ok"] is True and res["tier"] == "bronze"
        assert res["audit"] == {"verdict": "passed", "findings": [], "unclaimed": []}, res
        assert sorted(res["files"]) == sorted(files)
        for path, data in files.items():
            assert (ws.root / path).read_bytes() == data, path

        # The capsule and the ledger record of the execution say passed.
        cap = ws.capsules("s1")[-1]
        assert cap["role"] == "exec" and cap["run_id"] == res["run_id"]
        assert cap["audit"] == "passed" and cap["status"] == "ok"
        assert sorted(cap["files"]) == sorted(files)
        recs = [r for r in ws.ledger() if r["run_id"] == res["run_id"]]
        assert len(recs) == 1
        rec = recs[0]
        assert rec["role"] == "execution" and rec["audit"] == "passed" and rec["exit"] == 0
        assert rec["model"] == EXECUTOR_MODEL

        # Usage and cost: Claude Code's own figures, and the simulator's, land in the ledger.
        result = _claude_result(ws, res["run_id"])
        assert result["subtype"] == "success" and result["is_error"] is False
        assert rec["cost_source"] == "reported"
        # The ledger keeps 8 decimals (1e-8 USD), which drops float noise such as ...84999999.
        assert rec["cost_usd"] == round(result["total_cost_usd"], 8) and rec["cost_usd"] > 0
        assert rec["tokens"] == _tokens_of(result["usage"])
        requests = sim.requests()
        new, seen = requests[seen:], len(requests)
        executor_reqs = [r for r in new if r["body"]["model"] == EXECUTOR_MODEL]
        planner_reqs = [r for r in new if r["body"]["model"] == PLANNER_MODEL]
        assert len(executor_reqs) == len(files) + 1  # one tool call per file, then the answer
        assert rec["tokens"] == _sum([r["usage"] for r in executor_reqs])
        if n == 1:
            _check_planner(ws, res, planner_reqs)
        else:
            assert planner_reqs == [], "the planner fires only on a session's first turn"

        per_turn.append((n, executor_reqs, wall, rec["cost_usd"]))

    # The executor's stable prefix (header + prefix.md), as `burnless session prompt` shows it.
    p = ws.run("session", "prompt", "s1", "--json")
    assert p.returncode == 0, p.stderr
    shown = orjson.loads(p.stdout)
    assert shown["role"] == "executor"
    sizes = {part["part"]: part["bytes"] for part in shown["parts"]}
    assert sizes["prefix"] > len(PREFIX_MD)  # prefix.md, inside its <project> block
    stable = shown["text"].encode("utf-8")[: sizes["header"] + sizes["prefix"]].decode("utf-8")
    assert stable.startswith('<burnless-protocol role="executor"') and PREFIX_MD in stable
    stable_tokens = estimate_tokens(stable)

    # Cache: the stable prefix sits in a system block; from turn 2 on, every request reads
    # at least everything up to and including that block from the cache.
    figures: list[str] = []
    for n, executor_reqs, wall, cost in per_turn:
        for i, r in enumerate(executor_reqs):
            through = _tokens_through(r["body"], stable)
            read = r["usage"]["cache_read_input_tokens"]
            figures.append(
                f"turn {n} req {i + 1}: cache_read {read:>6}  cache_write "
                f"{r['usage']['cache_creation_input_tokens']:>5}  input "
                f"{r['usage']['input_tokens']:>3}  output {r['usage']['output_tokens']:>4}  "
                f"(through prefix {through}, prefix {stable_tokens})"
            )
            if n >= 2:
                assert read >= through >= stable_tokens, figures[-1]
            elif i == 0:
                # The very first executor request is cold (the planner ran on another model's
                # cache), which shows the check above can fail.
                assert read < through, figures[-1]
        figures.append(f"turn {n}: {wall:.2f}s wall, cost {cost:.6f} USD reported")

    # The prefix Claude Code got is the content-addressed file burnless wrote.
    digest = hashlib.sha256(stable.encode("utf-8")).hexdigest()[:32]
    assert (ws.state / "cache" / "prefix" / f"{digest}.md").read_text(encoding="utf-8") == stable

    # A lie: the envelope claims a write no tool made; the audit catches it (exit 3).
    code, res = ws.json("run", LIE, "--session", "s1", timeout=300)
    assert code == 3, res
    assert res["status"] == "ok" and res["ok"] is False
    assert res["audit"]["verdict"] == "failed"
    assert [(f["check"], f["path"]) for f in res["audit"]["findings"]] == [
        ("missing", "notes/ghost.txt")
    ]
    assert not (ws.root / "notes/ghost.txt").exists()
    assert ws.capsules("s1")[-1]["audit"] == "failed"
    rec = [r for r in ws.ledger() if r["run_id"] == res["run_id"]][0]
    assert rec["audit"] == "failed" and rec["cost_source"] == "reported"
    lie_reqs = sim.requests()[seen:]
    assert len(lie_reqs) == 1  # no tool call at all
    assert lie_reqs[0]["usage"]["cache_read_input_tokens"] >= _tokens_through(
        lie_reqs[0]["body"], stable
    )

    # Auto memory is off in burnless's workers: neither its instructions (about 3k tokens of
    # system prompt) nor a memory directory are in any request.
    for r in sim.requests():
        body = orjson.dumps(r["body"]).decode()
        assert "# auto memory" not in body and "file-based memory" not in body

    print("\n" + "\n".join(figures))
    print(f"session total: {time.monotonic() - t_start:.1f}s wall")


def _check_planner(ws: Workspace, res: dict[str, Any], planner_reqs: list[dict[str, Any]]) -> None:
    """Turn 1 planned on the second tier first: a reported-cost ledger record and a plan."""
    assert len(planner_reqs) == 1  # a plan is a thought: no tool call
    assert res["plan"], res
    plan_calls = [c for c in res["calls"] if c["role"] == "planning"]
    assert len(plan_calls) == 1 and plan_calls[0]["tier"] == "gold"
    rec = [r for r in ws.ledger() if r["run_id"] == plan_calls[0]["run_id"]][0]
    assert rec["model"] == PLANNER_MODEL and rec["status"] == "ok"
    assert rec["cost_source"] == "reported"
    result = _claude_result(ws, rec["run_id"])
    assert rec["cost_usd"] == round(result["total_cost_usd"], 8)
    assert rec["tokens"] == _tokens_of(result["usage"]) == _sum([planner_reqs[0]["usage"]])
    caps = ws.capsules("s1")
    assert [c["role"] for c in caps] == ["plan", "exec"]
    assert list(caps[0]["plan"]) == list(res["plan"])
