"""Run a pair evaluation: every task, for every planner:executor pair, ``repeat`` times, each as
a real burnless session in its own clean git worktree.

A job is one (task, pair, repeat): ``git worktree add --detach`` at the task's revision in a
temporary directory, the project's ``.burnless/`` configuration copied in with the pair as
planner and executor (its state is not: sessions, ledger, logs start empty), then up to
``turns`` real ``burnless run --json`` turns in one session, on the executor tier, with the
task's verify commands. A turn that fails its verify or audit is followed by one that says so,
until the turn limit. The job succeeds when its last turn exits 0 (status ok, audit and verify
passed). Its calls are copied into the project's ledger tagged with the evaluation's id
(``eval``), and the worktree is removed (``--keep`` keeps it).

Results go to ``.burnless/evals/<id>/results.jsonl`` as each job ends. The id is a hash of the
tasks file and the pairs, so running the same evaluation again resumes it: finished jobs are not
run again. ``--budget`` stops the evaluation cleanly when what it has spent reaches it (a turn
already running finishes; nothing new starts).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting import ledger
from burnless.errors import UsageError
from burnless.evaluation.report import JobResult, Report, summarize
from burnless.evaluation.tasks import EvalTask
from burnless.settings import STATE_DIR, Config
from burnless.storage import jsonl
from burnless.storage.locks import LockTimeout, file_lock

# What a job's workspace gets of the project's .burnless/: configuration, never state.
_STATE = {"sessions", "logs", "cache", "inflight", "evals", "ledger.jsonl", "ledger.jsonl.torn",
          "ledger.jsonl.lock", "reservations.json", "breaker.json", "budget.lock",
          "breaker.lock"}
# How a turn that was interrupted ends (Ctrl-C, SIGTERM): `burnless run` exits 130.
_INTERRUPTED = (130, -signal.SIGINT, -signal.SIGTERM)
# Variables that would point a job's turns at another config, session or delegation tree.
_DROP_ENV = ("BURNLESS_CONFIG", "BURNLESS_SESSION", "BURNLESS_WORKSPACE", "BURNLESS_PARENT_RUN",
             "BURNLESS_ROOT_RUN", "BURNLESS_TREE", "BURNLESS_ACTIVE_SESSIONS")


@dataclass(frozen=True)
class Job:
    """One run of one task on one pair."""
    task: EvalTask
    planner: str
    executor: str
    repeat: int

    @property
    def key(self) -> str:
        return f"{self.task.name}/{self.planner}:{self.executor}/{self.repeat}"


@dataclass(frozen=True)
class Plan:
    """An evaluation as it will run: tasks, pairs, jobs, budget, and the commits they run at."""
    tasks: tuple[EvalTask, ...]
    pairs: tuple[tuple[str, str], ...]
    repeat: int
    jobs: int
    budget: float | None
    keep: bool
    config: Config
    repo: Path  # the git repository's top level
    eval_id: str
    commits: dict[str, str] = field(default_factory=dict)  # task name: the commit it runs at

    @property
    def dir(self) -> Path:
        return self.config.state_dir / "evals" / self.eval_id

    def all_jobs(self) -> list[Job]:
        return [Job(t, p, e, r) for r in range(1, self.repeat + 1) for t in self.tasks
                for p, e in self.pairs]


def make_plan(
    tasks_file: Path, tasks: tuple[EvalTask, ...], pairs: tuple[tuple[str, str], ...], *,
    config: Config, repeat: int = 1, jobs: int = 1, budget: float | None = None,
    keep: bool = False,
) -> Plan:
    if repeat < 1 or jobs < 1:
        raise UsageError("--repeat and --jobs must be at least 1")
    if budget is not None and not budget > 0:
        raise UsageError("--budget must be a positive number of USD")
    repo = _git_top(config.workspace)
    h = hashlib.sha256(tasks_file.read_bytes())
    h.update(orjson.dumps([list(p) for p in pairs]))
    # A revision is resolved now, once: every job of the task runs at that commit even if the
    # branch moves on meanwhile, and HEAD moving on starts a new evaluation.
    commits = {t.name: _rev(repo, t.revision) for t in tasks}
    for t in tasks:
        h.update(commits[t.name].encode())
    return Plan(tasks, pairs, repeat, jobs, budget, keep, config, repo,
                "e-" + h.hexdigest()[:12], commits)


def run(plan: Plan, on_progress: Callable[[int, int, float], None] | None = None) -> Report:
    """Run what is left of the evaluation and report on all of it. The same evaluation run
    twice at once is refused (both would run every job left, and pay for it twice)."""
    plan.dir.mkdir(parents=True, exist_ok=True)
    try:
        with file_lock(plan.dir / ".lock", 0):
            return _run(plan, on_progress)
    except LockTimeout:
        raise UsageError(f"evaluation {plan.eval_id} is already running (another `burnless "
                         "eval` of the same tasks and pairs): wait for it, or stop it; running "
                         "it again afterwards resumes it") from None


def _run(plan: Plan, on_progress: Callable[[int, int, float], None] | None) -> Report:
    results_path = plan.dir / "results.jsonl"
    done = {f"{r.task}/{r.pair}/{r.repeat}": r for r in _load(results_path)
            if r.status not in ("stopped", "error")}
    todo = [j for j in plan.all_jobs() if j.key not in done]
    total = len(plan.all_jobs())
    # What the evaluation has spent so far is every call of it in the ledger: jobs that were
    # stopped or interrupted spent money too, and a resumed evaluation must count it.
    state = _Shared(spent=_spent(plan), done=len(done))
    workdir = Path(tempfile.mkdtemp(prefix=f"burnless-{plan.eval_id}-"))

    def one(job: Job) -> JobResult:
        if state.over(plan.budget):
            return JobResult(job.task.name, job.planner, job.executor, job.repeat, False, 0.0,
                             0, 0.0, "stopped", "the evaluation's --budget was reached")
        result = _run_job(plan, job, workdir, state)
        jsonl.append(results_path, [result.to_dict()])
        with state.lock:
            state.done += 1
        if on_progress:
            on_progress(state.done, total, state.spent)
        return result

    pool = ThreadPoolExecutor(max_workers=plan.jobs)
    try:
        if on_progress:
            on_progress(state.done, total, state.spent)
        futures = [pool.submit(one, job) for job in todo]
        fresh = [f.result() for f in futures]
    except KeyboardInterrupt:
        # Ctrl-C: no job or turn starts any more. The running turns got the signal too (one
        # process group) and end as interrupted; their jobs are not results (a rerun runs
        # them again), but their calls reach the project's ledger first.
        state.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:  # a job that raised: the others are not started either
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=plan.repo, capture_output=True)
    results = list(done.values()) + [r for r in fresh if r.status not in ("stopped", "error")]
    notes = []
    if any(r.status == "stopped" for r in fresh):
        left = sum(r.status == "stopped" for r in fresh)
        notes.append(f"stopped at the --budget of ${plan.budget or 0:.2f} (${state.spent:.4f} "
                     f"spent); {left} job(s) not run: run the same command again to resume")
    errors = [r for r in fresh if r.status == "error"]
    if errors:  # not the pair's doing: not counted as its failures, and a rerun retries them
        notes.append(f"{len(errors)} job(s) could not run ({errors[0].detail[:160]}); they are "
                     "not counted: run the same command again to retry them")
    return summarize(results, [f"{p}:{e}" for p, e in plan.pairs], total, "; ".join(notes))


@dataclass
class _Shared:
    """What the evaluation's job threads share: spend, progress, and the stop signal."""
    spent: float
    done: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # Ctrl-C: start nothing

    def over(self, budget: float | None) -> bool:
        with self.lock:
            return budget is not None and self.spent >= budget

    def add(self, cost: float | None) -> None:
        with self.lock:
            self.spent += cost or 0.0


def _run_job(plan: Plan, job: Job, workdir: Path, state: _Shared) -> JobResult:
    started = time.monotonic()
    # '+' and '@' are in no task or tier name: "a-b"+"c" and "a"+"b-c" get different trees
    tree = workdir / f"{job.task.name}@{job.planner}+{job.executor}@{job.repeat}"
    add = subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree),
                          plan.commits.get(job.task.name, job.task.revision)], cwd=plan.repo,
                         capture_output=True, text=True)
    if add.returncode != 0:
        return JobResult(job.task.name, job.planner, job.executor, job.repeat, False, None, 0,
                         time.monotonic() - started, "error",
                         f"git worktree add failed: {add.stderr.strip()[-300:]}")
    cost: float | None = 0.0
    turns, status, detail, success = 0, "", "", False
    try:
        _workspace(plan, tree, job)
        prompt = job.task.prompt
        for turn in range(1, job.task.turns + 1):
            if state.over(plan.budget):
                status, detail = "stopped", "the evaluation's --budget was reached"
                break
            if state.stop.is_set():
                status, detail = "stopped", "interrupted"
                break
            out = _turn(tree, job, prompt)
            turns = turn
            turn_cost = out.get("cost_usd")
            if not isinstance(turn_cost, (int, float)):
                cost = None
            elif cost is not None:
                cost += turn_cost
            state.add(turn_cost if isinstance(turn_cost, (int, float)) else 0.0)
            if out.get("exit_code") in _INTERRUPTED:  # Ctrl-C: not a result of the pair
                state.stop.set()
                status, detail, success = "stopped", "interrupted", False
                break
            status = str(out.get("status") or out.get("error") or "failed")
            success = out.get("exit_code") == 0 and out.get("ok") is True
            if success:
                break
            detail = _why(out)
            prompt = (f"{job.task.prompt}\n\nThe previous attempt did not pass: {detail}. "
                      "Fix it so that the verify commands pass.")
        _copy_ledger(plan, tree, job)
    finally:
        if not plan.keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=plan.repo,
                           capture_output=True)
            shutil.rmtree(tree, ignore_errors=True)
    return JobResult(job.task.name, job.planner, job.executor, job.repeat, success, cost, turns,
                     time.monotonic() - started, status, "" if success else detail)


def _workspace(plan: Plan, tree: Path, job: Job) -> None:
    """The job's .burnless/: the project's configuration with the pair as planner/executor."""
    import yaml

    src = plan.config.state_dir
    dst = tree / STATE_DIR
    if dst.exists():
        shutil.rmtree(dst)  # a .burnless/ committed in the repository is replaced
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name in _STATE or item.name.endswith((".lock", ".torn")):
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name, symlinks=True)
        else:
            shutil.copy2(item, dst / item.name)
    from burnless.yamlfile import Source, read_yaml

    data: dict[str, Any] = read_yaml(plan.config.path, Source(default_file=plan.config.path))
    data.pop("budget", None)  # the evaluation's --budget governs its spend
    data["planner"], data["executor"] = job.planner, job.executor
    (dst / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _turn(tree: Path, job: Job, prompt: str) -> dict[str, Any]:
    args = [sys.executable, "-m", "burnless", "run", "-", "--session", "eval", "--tier",
            job.executor, "--json"]
    for cmd in job.task.verify:
        args += ["--verify", cmd]
    for label in job.task.labels:
        args += ["--label", label]
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    p = subprocess.run(args, cwd=tree, env=env, input=prompt, capture_output=True, text=True)
    try:
        out = orjson.loads(p.stdout)
    except orjson.JSONDecodeError:
        out = None
    if not isinstance(out, dict):
        return {"ok": False, "exit_code": p.returncode, "status": "error",
                "error": (p.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    if p.returncode in _INTERRUPTED:
        out["exit_code"] = p.returncode
    return out


def _why(out: dict[str, Any]) -> str:
    audit = out.get("audit")
    findings = audit.get("findings") if isinstance(audit, dict) else None
    if isinstance(findings, list) and findings:
        f = findings[0]
        if isinstance(f, dict):
            return f"{f.get('check')} {f.get('path')}: {f.get('detail') or ''}".strip()[:300]
    return str(out.get("summary") or out.get("error") or out.get("status") or "failed")[:300]


def _copy_ledger(plan: Plan, tree: Path, job: Job) -> None:
    """The job's calls, into the project's ledger, tagged with the evaluation. A call its
    last turn left in flight (that `burnless run` was killed outright) is recorded first:
    no later turn in the worktree would, and the worktree is about to go."""
    from burnless.accounting import budget

    state = tree / STATE_DIR
    with budget.locked(state):
        budget.record_orphans(state, plan.config.user_dir)
    records = jsonl.read(state / ledger.LEDGER_NAME)
    if records:
        ledger.record_copies(plan.config.state_dir, records, eval_id=plan.eval_id,
                             eval_job=job.key)


def _spent(plan: Plan) -> float:
    """What the evaluation's calls cost, from the project's ledger (they carry its id)."""
    total = 0.0
    for rec in jsonl.Records(ledger.ledger_path(plan.config.state_dir)):
        if rec.get("eval") == plan.eval_id:
            cost = rec.get("cost_usd")
            if isinstance(cost, (int, float)) and not isinstance(cost, bool) and 0 <= cost < 1e9:
                total += cost
    return total


def _load(path: Path) -> list[JobResult]:
    out = []
    for d in jsonl.read(path) if path.exists() else []:
        try:
            out.append(JobResult.from_dict(d))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _git_top(start: Path) -> Path:
    p = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise UsageError(f"{start} is not in a git repository: burnless eval runs each task in "
                         "a git worktree of this repository at the task's revision")
    return Path(p.stdout.strip())


def _rev(repo: Path, revision: str) -> str:
    p = subprocess.run(["git", "rev-parse", "--verify", "--quiet", revision + "^{commit}"],
                       cwd=repo, capture_output=True, text=True)
    if p.returncode != 0:
        raise UsageError(f"revision {revision!r} is not a commit of {repo}")
    return p.stdout.strip()

