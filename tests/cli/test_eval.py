"""`burnless eval` end to end, offline: real git worktrees, real `burnless run` sessions, tiers
that are the simulator's agent, and models with scripted failure rates."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from burnless.sim.server import SimServer
from tests.conftest import Workspace

OPUS, SONNET, HAIKU = "claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(port=0, fail_rates={HAIKU: 0.7}) as server:
        yield server.start()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


def _repo(ws: Workspace, url: str, tasks: int) -> Path:
    """A git repository with a burnless config whose tiers are the simulator's agent."""
    def tier(model: str) -> dict[str, object]:
        return {"command": f"{sys.executable} -m burnless.sim.agent --model {model} "
                           "--system-file {prefix_file}",
                "format": "claude-json", "env": {"ANTHROPIC_BASE_URL": url,
                                                 "ANTHROPIC_API_KEY": "sim"}}
    ws.config(orjson.dumps({"tiers": {"gold": tier(OPUS), "silver": tier(SONNET),
                                      "bronze": tier(HAIKU)},
                            "planner": "gold", "executor": "silver"}).decode())
    root = ws.root
    (root / ".gitignore").write_text(".burnless/\n")
    (root / "README.md").write_text("scratch\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "start")
    lines = ["tasks:"]
    for i in range(tasks):
        want = f"value {i}"
        check = (f"python3 -c \"import sys; sys.exit(open('out/t{i}.txt').read().strip() != "
                 f"'{want}')\"")
        lines += [f"  - name: t{i}",
                  f"    prompt: \"create file out/t{i}.txt with content '{want}'\"",
                  f"    verify: [{orjson.dumps(check).decode()}]"]
    (root / "tasks.yaml").write_text("\n".join(lines) + "\n")
    return root


def _eval(ws: Workspace, *args: str) -> tuple[int, dict]:
    p = ws.run("eval", "tasks.yaml", *args, "--format", "json", timeout=300)
    assert p.stdout.strip(), p.stderr
    return p.returncode, orjson.loads(p.stdout)


def test_the_report_ranks_pairs_as_scripted_rates_and_prices_imply(
        ws: Workspace, sim: SimServer) -> None:
    root = _repo(ws, sim.url, tasks=6)
    before = _git(root, "status", "--porcelain")
    code, rep = _eval(ws, "--pairs", "gold:silver,gold:bronze", "--jobs", "2")
    assert code == 0, rep
    pairs = {p["pair"]: p for p in rep["pairs"]}
    silver, bronze = pairs["gold:silver"], pairs["gold:bronze"]
    assert silver["runs"] == bronze["runs"] == 6
    assert silver["successes"] == 6  # sonnet is scripted never to fail
    assert bronze["successes"] < 6  # haiku fails most tasks on purpose
    assert silver["ci95"][0] <= 1.0 <= silver["ci95"][1] + 1e-9
    assert bronze["mean_cost_usd"] < silver["mean_cost_usd"]  # haiku is cheaper
    assert rep["recommended"] == "gold:silver" and silver["frontier"]
    # every job's worktree is gone, nothing in the user's tree changed
    assert _git(root, "status", "--porcelain") == before
    assert _git(root, "worktree", "list").count("\n") == 0
    # every eval call is in the project's ledger with the evaluation's id
    ledger = ws.ledger()
    assert ledger and all(r.get("eval") == rep["eval"] for r in ledger)
    roles = {r["role"] for r in ledger}
    assert roles == {"planning", "execution"}


def test_the_budget_stops_the_evaluation_and_a_rerun_resumes_it(
        ws: Workspace, sim: SimServer) -> None:
    _repo(ws, sim.url, tasks=4)
    code, rep = _eval(ws, "--pairs", "gold:silver", "--budget", "0.0001")
    assert code == 0 and rep["stopped"] and "resume" in rep["stopped"]
    assert rep["jobs_done"] == 1 and rep["jobs_total"] == 4  # the first job spent past it
    code, rep2 = _eval(ws, "--pairs", "gold:silver")
    assert code == 0 and rep2["eval"] == rep["eval"] and rep2["jobs_done"] == 4
    assert rep2["stopped"] is None
    results = (ws.state / "evals" / rep["eval"] / "results.jsonl").read_text().splitlines()
    assert len(results) == 4  # the first job was not run twice
    code, rep3 = _eval(ws, "--pairs", "gold:silver")
    assert rep3["jobs_done"] == 4 and len(ws.ledger()) == len(set(
        r["run_id"] for r in ws.ledger()))


def test_html_report_is_one_self_contained_page(ws: Workspace, sim: SimServer) -> None:
    _repo(ws, sim.url, tasks=2)
    p = ws.run("eval", "tasks.yaml", "--pairs", "gold:silver,gold:bronze", "--format", "html",
               timeout=300)
    assert p.returncode == 0, p.stderr
    html = p.stdout
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "gold:bronze" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


@pytest.mark.parametrize(("text", "message"), [
    ("tasks: []\n", "tasks.yaml:1: tasks: must be a non-empty list"),
    ("tasks:\n  - name: a\n    promt: x\n    verify: [\"true\"]\n",
     "tasks.yaml:3: tasks.0.promt: unknown key; did you mean 'prompt'?"),
    ("tasks:\n  - name: a\n    prompt: x\n", "tasks.yaml:2: tasks.0.verify: required"),
    ("tasks:\n  - {name: a, prompt: x, verify: [\"true\"], turns: 0}\n", "turns: must be 1 to 20"),
])
def test_a_bad_tasks_file_names_its_line_and_key(ws: Workspace, text: str, message: str) -> None:
    ws.config("tiers:\n  gold: {command: echo}\n  silver: {command: echo}\n")
    (ws.root / "tasks.yaml").write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=ws.root, check=True)
    p = ws.run("eval", "tasks.yaml", "--pairs", "gold:silver")
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_an_unknown_tier_in_pairs_is_a_usage_error(ws: Workspace) -> None:
    ws.config("tiers:\n  gold: {command: echo}\n  silver: {command: echo}\n")
    (ws.root / "tasks.yaml").write_text("tasks:\n  - {name: a, prompt: x, verify: [\"true\"]}\n")
    p = ws.run("eval", "tasks.yaml", "--pairs", "gold:silvr")
    assert p.returncode == 2 and "tier 'silvr' is not defined" in p.stderr


# -- adversarial cases (review): Ctrl-C, two evaluations at once, a revision that moves


def _slow_verify_tasks(root: Path, marker: Path, n: int) -> Path:
    """Tasks whose verify command says when it starts, then (while the returned flag file
    exists) sleeps, and fails: so a second turn would follow."""
    flag = marker.with_name("slow")
    flag.write_text("x")
    check = (f"python3 -c \"import pathlib, time, sys; pathlib.Path({str(marker)!r})"
             f".write_text('x'); time.sleep(4 if pathlib.Path({str(flag)!r}).exists() else 0);"
             " sys.exit(1)\"")
    lines = ["tasks:"]
    for i in range(n):
        lines += [f"  - name: t{i}", f"    prompt: \"create file out/t{i}.txt with content 'v'\"",
                  f"    verify: [{orjson.dumps(check).decode()}]", "    turns: 2"]
    (root / "tasks.yaml").write_text("\n".join(lines) + "\n")
    return flag


def _eval_proc(ws: Workspace, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "burnless", "eval", "tasks.yaml", *args,
                             "--format", "json"], cwd=ws.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _wait_for(path: Path, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_ctrl_c_stops_the_evaluation_at_once_and_a_rerun_resumes_the_interrupted_job(
        ws: Workspace, sim: SimServer, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) while a job's verify command runs:
    no new turn or job may start, the interrupted job is not counted as the pair failing, its
    calls reach the project's ledger, and the next run of the evaluation runs it again."""
    import os
    import signal

    root = _repo(ws, sim.url, tasks=1)
    marker = tmp_path / "verifying"
    flag = _slow_verify_tasks(root, marker, 2)
    p = _eval_proc(ws, "--pairs", "gold:silver")
    _wait_for(marker)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    (results,) = (ws.state / "evals").glob("*/results.jsonl")
    finished = [r for r in map(orjson.loads, results.read_bytes().splitlines())
                if r["status"] not in ("stopped", "error")]
    assert finished == []  # the interrupted job is not a result: resume runs it again
    calls = ws.ledger()
    assert [r["role"] for r in calls] == ["planning", "execution"]  # no turn after Ctrl-C
    assert calls[-1]["status"] == "interrupted"
    assert _git(root, "worktree", "list").count("\n") == 0
    flag.unlink()
    # the rerun finds the same evaluation and runs every job (the verify still fails)
    code, rep = _eval(ws, "--pairs", "gold:silver")
    assert code == 0 and rep["jobs_done"] == 2 and rep["pairs"][0]["runs"] == 2


def test_the_same_evaluation_twice_at_once_is_refused(ws: Workspace, sim: SimServer,
                                                      tmp_path: Path) -> None:
    root = _repo(ws, sim.url, tasks=1)
    marker = tmp_path / "verifying"
    flag = _slow_verify_tasks(root, marker, 1)
    first = _eval_proc(ws, "--pairs", "gold:silver")
    _wait_for(marker)
    second = ws.run("eval", "tasks.yaml", "--pairs", "gold:silver", "--format", "json",
                    timeout=120)
    flag.unlink()
    assert second.returncode == 2 and "already running" in second.stderr, second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rep = orjson.loads(out)
    assert rep["jobs_done"] == 1
    (results,) = (ws.state / "evals").glob("*/results.jsonl")
    assert len(results.read_bytes().splitlines()) == 1  # one run of the job, not two


def test_every_job_runs_at_the_commit_the_revision_named_when_the_evaluation_began(
        ws: Workspace, sim: SimServer) -> None:
    """A branch that moves on while the evaluation runs (a commit, a fetch) must not change
    the code later jobs see: they ran `git worktree add` on the revision's name."""
    root = _repo(ws, sim.url, tasks=1)
    (root / "only-at-topic.txt").write_text("x\n")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "topic")
    _git(root, "branch", "topic")
    _git(root, "reset", "-q", "--hard", "HEAD~1")  # main: without the file; topic: with it
    move = (f"git -C {root} branch -f topic main")
    check = "python3 -c \"import os, sys; sys.exit(not os.path.exists('only-at-topic.txt'))\""
    (root / "tasks.yaml").write_text(
        "tasks:\n"
        f"  - {{name: a, revision: topic, prompt: \"create file out/a.txt with content 'v'\", "
        f"verify: [{orjson.dumps(move).decode()}, {orjson.dumps(check).decode()}]}}\n"
        f"  - {{name: b, revision: topic, prompt: \"create file out/b.txt with content 'v'\", "
        f"verify: [{orjson.dumps(check).decode()}]}}\n")
    code, rep = _eval(ws, "--pairs", "gold:silver")
    assert code == 0, rep
    assert rep["pairs"][0]["successes"] == 2, rep


def test_a_turn_killed_outright_still_reaches_the_projects_ledger(
        ws: Workspace, sim: SimServer, tmp_path: Path) -> None:
    """The job's `burnless run` is SIGKILLed (the OOM killer) during its call: that call's
    journal is in the job's worktree, which is removed after the job. It must be recorded
    (as lost, at its worst case) and copied to the project's ledger first."""
    _repo(ws, sim.url, tasks=1)
    killer = tmp_path / "killer.py"
    killer.write_text(
        "import os, signal, sys\nsys.stdin.read()\n"
        "stat = open(f'/proc/{os.getppid()}/stat').read()\n"
        "burnless = int(stat[stat.rindex(')') + 2:].split()[1])\n"
        "os.kill(burnless, signal.SIGKILL)\n")
    cfg = orjson.loads((ws.state / "config.yaml").read_bytes())
    cfg["tiers"]["killer"] = {"command": f"{sys.executable} {killer}",
                              "price": {"input": 3, "output": 15}}
    ws.config(orjson.dumps(cfg).decode())
    code, rep = _eval(ws, "--pairs", "gold:killer")
    assert code == 0, rep
    calls = ws.ledger()
    assert [(r["role"], r["status"]) for r in calls] == [("planning", "ok"),
                                                         ("execution", "lost")]
    assert calls[1]["cost_usd"] > 0 and calls[1]["eval"] == rep["eval"]
    # a turn that crashed is not the pair failing the task: not counted, retried on resume
    assert rep["pairs"][0]["runs"] == 0 and "1 job(s) could not run" in rep["stopped"]


def test_a_resumed_evaluation_counts_what_its_stopped_jobs_spent(
        ws: Workspace, sim: SimServer, tmp_path: Path) -> None:
    """--budget covers the evaluation, resumes included: a job stopped at the budget after
    its first turn spent money; run again with the same budget, nothing new may start."""
    root = _repo(ws, sim.url, tasks=1)
    flag = _slow_verify_tasks(root, tmp_path / "verifying", 2)
    flag.unlink()  # verify fails at once: every job wants its second turn
    code, rep = _eval(ws, "--pairs", "gold:silver", "--budget", "0.0001")
    assert code == 0 and rep["stopped"] and rep["jobs_done"] == 0
    spent = len(ws.ledger())
    assert spent == 2  # the first turn of the first job: planning, execution
    code, rep = _eval(ws, "--pairs", "gold:silver", "--budget", "0.0001")
    assert code == 0 and rep["stopped"] and rep["jobs_done"] == 0
    assert len(ws.ledger()) == spent  # nothing was run (or paid for) again


def test_pairs_whose_names_join_alike_run_side_by_side(ws: Workspace, sim: SimServer) -> None:
    """Tiers "a-b" with "c", and "a" with "b-c": their jobs' worktrees were both named
    t0--a-b-c--1, so with --jobs 2 one of them could not run."""
    _repo(ws, sim.url, tasks=1)
    cfg = orjson.loads((ws.state / "config.yaml").read_bytes())
    silver = cfg["tiers"]["silver"]
    cfg["tiers"].update({"a-b": silver, "c": silver, "a": silver, "b-c": silver})
    ws.config(orjson.dumps(cfg).decode())
    code, rep = _eval(ws, "--pairs", "a-b:c,a:b-c", "--jobs", "2")
    assert code == 0 and rep["stopped"] is None, rep
    assert [(p["runs"], p["successes"]) for p in rep["pairs"]] == [(1, 1), (1, 1)]
