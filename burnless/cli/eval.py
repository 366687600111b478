"""burnless eval TASKS.yaml --pairs P:E,...: pick the planner/executor pair from your own work."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from burnless.cli import epilog
from burnless.cli.options import ConfigOpt

if TYPE_CHECKING:
    from burnless.evaluation.report import Report

FORMATS = ("table", "json", "csv", "html")


def eval_(
    tasks: Annotated[Path, typer.Argument(help="The tasks file (see the README).",
                                          show_default=False)],
    pairs: Annotated[str, typer.Option("--pairs", help="PLANNER:EXECUTOR pairs, comma "
                                       "separated (gold:silver,gold:bronze).")],
    repeat: Annotated[int, typer.Option("--repeat", help="Runs of each task per pair.")] = 1,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Sessions run at once.")] = 1,
    budget: Annotated[float | None, typer.Option(
        "--budget", help="Stop cleanly once the evaluation has spent this much (USD).",
        show_default=False)] = None,
    format_: Annotated[str, typer.Option("--format", "-f", help="table | json | csv | html.")
                       ] = "table",
    keep: Annotated[bool, typer.Option("--keep", help="Keep each job's worktree.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run every task for every pair in clean git worktrees; report success, cost and the
    pair to use. Running the same evaluation again resumes it."""
    from burnless.cli import console
    from burnless.config import load_config
    from burnless.errors import UsageError
    from burnless.evaluation import runner
    from burnless.evaluation.tasks import load_tasks, parse_pairs

    if format_ not in FORMATS:
        raise UsageError(f"--format {format_!r}: expected one of {', '.join(FORMATS)}")
    cfg = load_config(config)
    task_list = load_tasks(tasks)
    plan = runner.make_plan(tasks, task_list, parse_pairs(pairs, cfg.tiers), config=cfg,
                            repeat=repeat, jobs=jobs, budget=budget, keep=keep)
    progress = _progress() if console.stderr_is_tty() else None
    try:
        rep = runner.run(plan, progress)
    finally:
        if progress is not None:
            progress.close()
    if format_ == "json":
        console.emit_json({"eval": plan.eval_id, **rep.to_dict()})
    elif format_ == "csv":
        from burnless.evaluation.report import to_csv

        console.out(to_csv(rep).rstrip("\n"))
    elif format_ == "html":
        from burnless.evaluation.report import to_html

        console.out(to_html(rep, f"burnless eval {plan.eval_id}"))
    else:
        _table(rep, plan.eval_id)


def _table(rep: Report, eval_id: str) -> None:
    from burnless.cli import console

    def usd(x: float | None) -> str:
        return "unknown" if x is None else f"${x:.4f}"

    rows = [[p.pair, str(p.runs), f"{p.rate:.0%}", f"{p.low:.0%}-{p.high:.0%}", usd(p.mean_cost),
             usd(p.total_cost), usd(p.cost_per_success), f"{p.mean_turns:.1f}",
             "*" if p.frontier else ""] for p in rep.pairs]
    console.print_table(f"burnless eval {eval_id} ({rep.done}/{rep.total} jobs)",
                        ["pair", "runs", "success", "95% CI", "mean cost", "total", "per success",
                         "turns", "frontier"], rows, right=frozenset(range(1, 8)))
    if rep.recommended:
        console.out(f"use {rep.reason}")
    else:
        console.out(rep.reason)
    if rep.stopped:
        console.err(f"burnless: warning: {rep.stopped}")


class _progress:
    """done / total, spend so far and an ETA on the terminal (rich, only on a TTY)."""

    def __init__(self) -> None:
        import time

        from rich.progress import Progress

        self._started = time.monotonic()
        self._bar = Progress(transient=True)
        self._bar.start()
        self._task = self._bar.add_task("eval", total=None)

    def __call__(self, done: int, total: int, spent: float) -> None:
        import time

        elapsed = time.monotonic() - self._started
        eta = f", about {elapsed / done * (total - done):.0f}s left" if 0 < done < total else ""
        self._bar.update(self._task, completed=done, total=total,
                         description=f"eval: {done}/{total} jobs, ${spent:.4f} spent{eta}")

    def close(self) -> None:
        self._bar.stop()


EPILOG = {"eval_": epilog([
    "burnless eval tasks.yaml --pairs gold:silver,gold:bronze",
    "burnless eval tasks.yaml --pairs gold:silver,silver:bronze --repeat 3 --jobs 2",
    "burnless eval tasks.yaml --pairs gold:bronze --budget 5 --format html > pairs.html",
], exit_codes=True)}
