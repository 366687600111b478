"""The real Gemini CLI, end to end and offline, against ``burnless sim serve`` (its Gemini
API).

Slow (``pytest -m slow``, run by ``.ci/run``): the first run installs ``@google/gemini-cli``
from the npm registry into the test cache (``tests/e2e/clients.py``;
``BURNLESS_GEMINI_CLI_VERSION`` picks another version). The CLI's home (``GEMINI_CLI_HOME``) is
a temporary directory with API-key auth and usage statistics off, ``GOOGLE_GEMINI_BASE_URL``
points at the simulator. The workspace is set up by ``burnless init --cli gemini`` (tiers and
``.gemini/settings.json``); the tiers run through ``timed.py`` to measure the worker's own time.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from burnless.accounting.pricing import cost_usd, price_for
from burnless.accounting.tokens import Tokens
from burnless.sim.billing import plain_block
from tests.conftest import Workspace
from tests.e2e.clients import (
    GEMINI_CLI,
    SIM_KEY,
    Session,
    Sim,
    agent_session,
    check_durations,
    npm_install,
    sim_process,
    timed,
)

pytestmark = pytest.mark.slow

KEY = SIM_KEY
PLANNER_MODEL = "gemini-2.5-pro"
EXECUTOR_MODEL = "gemini-2.5-flash"
TURNS: list[tuple[str, dict[str, bytes]]] = [
    ("create file notes/a.txt with content hello", {"notes/a.txt": b"hello"}),
    ('create file notes/b.txt with content "line one\\nline two\\n"',
     {"notes/b.txt": b"line one\nline two\n"}),
    ("create file src/app.py with content \"print('hi')\\n\"", {"src/app.py": b"print('hi')\n"}),
]
# From the second turn on, what a turn sends uncached may exceed the turn's own material (the
# prompt burnless sent, the model's calls and their results) by at most this much: the CLI's
# own tools, system prompt and session context must come from the cache.
UNCACHED_SLACK = 0.10
SESSION_CONTEXT = "<session_context>"


@pytest.fixture(scope="module")
def gemini() -> Path:
    return npm_install(GEMINI_CLI)


def gemini_home(tmp: Path) -> Path:
    home = tmp / "gemini-home"
    (home / ".gemini").mkdir(parents=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
    }
    (home / ".gemini" / "settings.json").write_bytes(orjson.dumps(settings))
    return home


def configure(ws: Workspace, gemini: Path, home: Path, sim: Sim, times: Path) -> None:
    """``burnless init --cli gemini``, then its tiers pointed at this binary, home and key."""
    p = ws.run("init", "--force", "--cli", "gemini")
    assert p.returncode == 0, p.stderr
    assert (ws.root / ".gemini" / "settings.json").is_file()
    cfg = yaml.safe_load((ws.state / "config.yaml").read_text(encoding="utf-8"))
    scratch = home / "tmp"  # the CLI writes error reports into TMPDIR
    scratch.mkdir()
    env = {
        "GEMINI_CLI_HOME": str(home),
        "HOME": str(home),  # nothing of the CLI's under the real home
        "GOOGLE_GEMINI_BASE_URL": sim.url,
        "GEMINI_API_KEY": KEY,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",  # headless mode refuses an untrusted folder
        "TMPDIR": str(scratch),
    }
    tiers = cfg["tiers"]
    # init's planner tier (``plan``, no edits approved) plans; gold and silver execute.
    for name, model in (("plan", PLANNER_MODEL), ("gold", PLANNER_MODEL),
                        ("silver", EXECUTOR_MODEL)):
        argv = shlex.split(tiers[name]["command"])
        assert argv[:3] == ["gemini", "-m", "{model}"]
        tiers[name].update(command=shlex.join(timed([str(gemini), *argv[1:]], times / name)),
                           model=model, env=env, timeout=180)
    tiers["wrongkey"] = {**tiers["silver"], "env": {**env, "GEMINI_API_KEY": "not-the-key"}}
    tiers["nokey"] = {**tiers["silver"],
                      "env": {k: v for k, v in env.items() if k != "GEMINI_API_KEY"}}
    ws.config(orjson.dumps(cfg).decode())  # JSON is YAML


def bill(requests: list[dict[str, Any]]) -> Tokens:
    """The simulator's usage, in the ledger's convention (input without the cached tokens,
    thinking tokens as output)."""
    total = Tokens()
    for r in requests:
        u = r["usage"]
        cached = u.get("cachedContentTokenCount", 0)
        total += Tokens(input=u["promptTokenCount"] - cached, cache_read=cached,
                        output=u.get("candidatesTokenCount", 0) + u.get("thoughtsTokenCount", 0))
    return total


def uncached(requests: list[dict[str, Any]]) -> int:
    return sum(r["usage"]["promptTokenCount"] - r["usage"]["cachedContentTokenCount"]
               for r in requests)


def own_tokens(request: dict[str, Any]) -> int:
    """The turn's own material in its last request, counted as the simulator counts it: every
    part of the conversation but the CLI's session context (burnless's prompt, the model's
    calls, their results)."""
    total = 0
    for content in request["body"]["contents"]:
        for part in content["parts"]:
            if str(part.get("text", "")).lstrip().startswith(SESSION_CONTEXT):
                continue
            raw = part["text"] if set(part) == {"text"} else part
            total += plain_block("messages", content.get("role", "user"), raw).tokens
    return total


@pytest.fixture(scope="module")
def session(gemini: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Three turns of one session, run once for the tests below."""
    tmp = tmp_path_factory.mktemp("gemini-session")
    with agent_session(
            tmp, lambda ws, sim, times: configure(ws, gemini, gemini_home(tmp), sim, times),
            [task for task, _ in TURNS], path_part="enerateContent", timeout=600) as session:
        yield session


def test_gemini_turns_are_audited_and_metered(session: Session) -> None:
    ws = session.ws
    figures: list[str] = []
    for n, (turn, (_, files)) in enumerate(zip(session.turns, TURNS, strict=True), start=1):
        res = turn.result
        assert turn.exit_code == 0, res
        assert res["status"] == "ok" and res["tier"] == "silver" and res["model"] == EXECUTOR_MODEL
        assert res["audit"] == {"verdict": "passed", "findings": [], "unclaimed": []}, res
        assert sorted(res["files"]) == sorted(files)
        for path, data in files.items():
            assert (ws.root / path).read_bytes() == data, path
        assert all(r["status"] == 200 for r in turn.requests)
        executor = [r for r in turn.requests if f"/{EXECUTOR_MODEL}:" in r["path"]]
        planner = [r for r in turn.requests if f"/{PLANNER_MODEL}:" in r["path"]]
        assert len(executor) + len(planner) == len(turn.requests)  # no router model: pinned
        assert len(executor) >= 2  # the write_file call, then the answer
        assert len(planner) == (1 if n == 1 else 0)
        by_role = {c["role"]: c for c in res["calls"]}
        [rec] = [r for r in ws.ledger() if r["run_id"] == by_role["execution"]["run_id"]]
        assert rec["audit"] == "passed" and rec["exit"] == 0 and rec["model"] == EXECUTOR_MODEL
        # The ledger holds exactly what the simulator billed, priced from the table.
        price = price_for(EXECUTOR_MODEL)
        assert price is not None
        assert Tokens.from_dict(rec["tokens"]) == bill(executor)
        assert rec["cost_source"] == "priced"
        assert rec["cost_usd"] == round(cost_usd(bill(executor), price), 8)
        if n == 1:
            [plan] = [r for r in ws.ledger() if r["run_id"] == by_role["planning"]["run_id"]]
            planner_price = price_for(PLANNER_MODEL)
            assert planner_price is not None
            assert plan["model"] == PLANNER_MODEL and plan["cost_source"] == "priced"
            assert Tokens.from_dict(plan["tokens"]) == bill(planner)
            assert plan["cost_usd"] == round(cost_usd(bill(planner), planner_price), 8)
        figures.append(f"turn {n}: {len(executor)} requests, tokens {rec['tokens']}, "
                       f"${rec['cost_usd']}, {turn.wall_s:.1f}s wall")
    print("\n" + "\n".join(figures))


def test_gemini_uncached_tokens_stay_the_turns_own(session: Session) -> None:
    """From the second turn on, the CLI's own part of every request (tools, system prompt,
    session context) is read from the cache: what is billed uncached is the turn's own
    material. Without the settings ``init`` writes, the directory tree in the session context
    (or the skill list in a changing order) is billed again on every turn."""
    figures: list[str] = []
    over: list[str] = []
    for n, turn in enumerate(session.turns, start=1):
        executor = [r for r in turn.requests if f"/{EXECUTOR_MODEL}:" in r["path"]]
        context = [p["text"] for p in executor[0]["body"]["contents"][0]["parts"]
                   if str(p.get("text", "")).lstrip().startswith(SESSION_CONTEXT)]
        assert context and "Directory Structure" not in context[0]  # the settings took effect
        spent, own = uncached(executor), own_tokens(executor[-1])
        figures.append(f"turn {n}: uncached {spent} tokens, the turn's own {own} "
                       f"({spent / own:.3f}x)")
        if n >= 2 and spent > (1 + UNCACHED_SLACK) * own:
            over.append(figures[-1])
    print("\n" + "\n".join(figures))
    assert not over, over


def test_gemini_duration_is_the_workers_own_time(session: Session) -> None:
    figures, off = check_durations(session.ws.ledger(), session.times,
                                 ("plan", "gold", "silver"))
    print("\n" + "\n".join(figures))
    assert not off, off


def test_gemini_wrong_and_missing_key_are_recorded_unbilled(
    gemini: Path, ws: Workspace, tmp_path: Path
) -> None:
    times = tmp_path / "times"
    times.mkdir()
    with sim_process(tmp_path, "--api-key", KEY) as sim:
        configure(ws, gemini, gemini_home(tmp_path), sim, times)
        task = "create file notes/a.txt with content hello"

        code, res = ws.json("run", task, "--tier", "wrongkey", "--no-plan", timeout=300)
        assert code == 1 and res["status"] == "failed", res
        requests = sim.requests("enerateContent")
        assert requests and all(r["status"] == 400 for r in requests)  # "API key not valid"
        [rec] = ws.ledger()
        assert rec["tokens"] == Tokens().to_dict() and bill([]) == Tokens()
        assert (rec["cost_usd"], rec["cost_source"]) == (0.0, "reported")
        assert rec["exit"] == 144  # 400 mod 256
        assert rec["reason"] == ("exit 144: 400 INVALID_ARGUMENT: API key not valid. "
                                 "Please pass a valid API key."), rec["reason"]

        code, res = ws.json("run", task, "--tier", "nokey", "--no-plan", timeout=300)
        assert code == 1 and res["status"] == "failed", res
        assert len(sim.requests("enerateContent")) == len(requests)  # nothing was sent
        rec = ws.ledger()[-1]
        assert rec["tokens"] == Tokens().to_dict()
        assert (rec["cost_usd"], rec["cost_source"]) == (0.0, "reported")
        assert rec["exit"] == 41
        assert rec["reason"].startswith(
            "exit 41: When using Gemini API, you must specify the GEMINI_API_KEY"), rec["reason"]
    assert not (ws.root / "notes").exists()
