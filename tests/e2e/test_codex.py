"""The real Codex CLI, end to end and offline, against ``burnless sim serve`` (its Responses
API).

Slow (``pytest -m slow``, run by ``.ci/run``): the first run installs ``@openai/codex`` from
the npm registry into the test cache (``tests/e2e/clients.py``; ``BURNLESS_CODEX_VERSION``
picks another version). Codex's home is a temporary directory whose ``config.toml`` points a
provider at the simulator, so nothing else is called. The tiers are the ones
``burnless init --cli codex`` writes, run through ``timed.py`` to measure the worker's own time.
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
from tests.conftest import Workspace
from tests.e2e.clients import (
    CODEX,
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
KEY_VAR = "BURNLESS_SIM_KEY"  # the provider's env_key in config.toml
PLANNER_MODEL = "gpt-5-codex"  # priced from burnless's table
# The simulator bills cache writes from the GPT-5.6 family on; not in the price table, so the
# tier gives rates (made up for the test; cache writes at 1.25x input, as OpenAI bills them).
EXECUTOR_MODEL = "gpt-5.6-codex"
EXECUTOR_PRICE = {"input": 2.0, "output": 16.0, "cache_write": 2.5, "cache_read": 0.2}
TURNS: list[tuple[str, dict[str, bytes]]] = [
    ("create file notes/a.txt with content hello", {"notes/a.txt": b"hello"}),
    ('create file notes/b.txt with content "line one\\nline two\\n"',
     {"notes/b.txt": b"line one\nline two\n"}),
    ("create file src/app.py with content \"print('hi')\\n\"", {"src/app.py": b"print('hi')\n"}),
]


@pytest.fixture(scope="module")
def codex() -> Path:
    return npm_install(CODEX)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    with sim_process(tmp_path, "--api-key", KEY) as server:
        yield server


def codex_home(tmp_path: Path, sim: Sim) -> Path:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model_provider = "burnless-sim"\n'
        "check_for_update_on_startup = false\n"
        "[analytics]\nenabled = false\n"
        "[model_providers.burnless-sim]\n"
        'name = "burnless sim"\n'
        f'base_url = "{sim.url}/v1"\n'
        f'env_key = "{KEY_VAR}"\n'
        'wire_api = "responses"\n',
        encoding="utf-8",
    )
    return home


def configure(ws: Workspace, codex: Path, home: Path, times: Path) -> dict[str, Any]:
    """``burnless init --cli codex``, then its tiers pointed at this binary, home and key."""
    p = ws.run("init", "--force", "--cli", "codex")
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load((ws.state / "config.yaml").read_text(encoding="utf-8"))
    env = {"CODEX_HOME": str(home), "HOME": str(home), KEY_VAR: KEY}
    tiers = cfg["tiers"]
    # init's planner tier (``plan``, read-only) plans; gold and silver execute.
    for name, model in (("plan", PLANNER_MODEL), ("gold", PLANNER_MODEL),
                        ("silver", EXECUTOR_MODEL)):
        argv = shlex.split(tiers[name]["command"])
        assert argv[0] == "codex" and argv[-2:] == ["-m", "{model}"]
        assert ("read-only" if name == "plan" else "workspace-write") in argv
        tiers[name].update(command=shlex.join(timed([str(codex), *argv[1:]], times / name)),
                           model=model, env=env, timeout=120)
    tiers["silver"]["price"] = EXECUTOR_PRICE
    wrong = {**env, KEY_VAR: "not-the-key"}
    missing = {k: v for k, v in env.items() if k != KEY_VAR}
    tiers["wrongkey"] = {**tiers["silver"], "env": wrong}
    tiers["nokey"] = {**tiers["silver"], "env": missing}
    ws.config(orjson.dumps(cfg).decode())  # JSON is YAML
    return cfg


def bill(requests: list[dict[str, Any]]) -> Tokens:
    """The simulator's usage, in the ledger's convention (input without reads and writes)."""
    total = Tokens()
    for r in requests:
        u = r["usage"]
        details = u.get("input_tokens_details") or {}
        read, written = details.get("cached_tokens", 0), details.get("cache_write_tokens", 0)
        total += Tokens(input=u["input_tokens"] - read - written, output=u["output_tokens"],
                        cache_read=read, cache_write=written)
    return total


@pytest.fixture(scope="module")
def session(codex: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Three turns of one session, run once for the tests below."""
    tmp = tmp_path_factory.mktemp("codex-session")
    with agent_session(
            tmp, lambda ws, sim, times: configure(ws, codex, codex_home(tmp, sim), times),
            [task for task, _ in TURNS], path_part="/v1/responses", timeout=300) as session:
        yield session


def test_codex_turns_are_audited_and_metered(session: Session) -> None:
    ws = session.ws
    executor_price = price_for(EXECUTOR_MODEL, EXECUTOR_PRICE)
    planner_price = price_for(PLANNER_MODEL)
    assert executor_price is not None and planner_price is not None
    figures: list[str] = []
    wrote_cache = 0
    for n, (turn, (_, files)) in enumerate(zip(session.turns, TURNS, strict=True), start=1):
        res = turn.result
        assert turn.exit_code == 0, res
        assert res["status"] == "ok" and res["tier"] == "silver" and res["model"] == EXECUTOR_MODEL
        assert res["audit"] == {"verdict": "passed", "findings": [], "unclaimed": []}, res
        assert sorted(res["files"]) == sorted(files)
        for path, data in files.items():
            assert (ws.root / path).read_bytes() == data, path
        assert all(r["status"] == 200 for r in turn.requests)
        executor = [r for r in turn.requests if r["body"]["model"] == EXECUTOR_MODEL]
        planner = [r for r in turn.requests if r["body"]["model"] == PLANNER_MODEL]
        assert len(executor) >= 2  # the write (Codex's exec_command), then the answer
        assert len(planner) == (1 if n == 1 else 0)
        by_role = {c["role"]: c for c in res["calls"]}
        [rec] = [r for r in ws.ledger() if r["run_id"] == by_role["execution"]["run_id"]]
        assert rec["audit"] == "passed" and rec["exit"] == 0 and rec["model"] == EXECUTOR_MODEL
        # The ledger holds exactly what the simulator billed, priced at the tier's rates.
        assert Tokens.from_dict(rec["tokens"]) == bill(executor)
        assert rec["cost_source"] == "priced"
        assert rec["cost_usd"] == round(cost_usd(bill(executor), executor_price), 8)
        wrote_cache += rec["tokens"]["cache_write"]
        if n == 1:
            [plan] = [r for r in ws.ledger() if r["run_id"] == by_role["planning"]["run_id"]]
            assert plan["model"] == PLANNER_MODEL and plan["cost_source"] == "priced"
            assert Tokens.from_dict(plan["tokens"]) == bill(planner)
            assert plan["cost_usd"] == round(cost_usd(bill(planner), planner_price), 8)
        figures.append(f"turn {n}: {len(executor)} requests, tokens {rec['tokens']}, "
                       f"${rec['cost_usd']}, {turn.wall_s:.1f}s wall")
    assert wrote_cache > 0  # Codex's cache_write_input_tokens reached the ledger
    print("\n" + "\n".join(figures))


def test_codex_duration_is_the_workers_own_time(session: Session) -> None:
    """duration_s is the worker's time, not the worker's plus a wait on what it left behind
    (Codex 0.171 leaves a zombie ``git`` child in its process group)."""
    figures, off = check_durations(session.ws.ledger(), session.times,
                                 ("plan", "gold", "silver"))
    print("\n" + "\n".join(figures))
    assert not off, off


def test_codex_wrong_and_missing_key_are_recorded_unbilled(
    codex: Path, sim: Sim, ws: Workspace, tmp_path: Path
) -> None:
    times = tmp_path / "times"
    times.mkdir()
    configure(ws, codex, codex_home(tmp_path, sim), times)
    task = "create file notes/a.txt with content hello"

    code, res = ws.json("run", task, "--tier", "wrongkey", "--no-plan", timeout=300)
    assert code == 1 and res["status"] == "failed", res
    requests = sim.requests("/v1/responses")
    assert requests and all(r["status"] == 401 for r in requests)  # each attempt refused
    [rec] = ws.ledger()
    assert rec["tokens"] == Tokens().to_dict() and bill([]) == Tokens()
    assert (rec["cost_usd"], rec["cost_source"]) == (0.0, "reported")
    assert rec["reason"].startswith("exit 1: unexpected status 401 Unauthorized"), rec["reason"]

    code, res = ws.json("run", task, "--tier", "nokey", "--no-plan", timeout=300)
    assert code == 1 and res["status"] == "failed", res
    assert len(sim.requests("/v1/responses")) == len(requests)  # nothing was sent
    rec = ws.ledger()[-1]
    assert rec["tokens"] == Tokens().to_dict()
    assert (rec["cost_usd"], rec["cost_source"]) == (0.0, "reported")
    assert rec["reason"] == f"exit 1: Missing environment variable: `{KEY_VAR}`."
    assert not (ws.root / "notes").exists()
