"""``burnless run``'s turn without typer: ``execute`` runs it and prints the result. The typer
command calls it, and so does the typer-free path of a plain command line (``cli.fast``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from burnless.cli import console

if TYPE_CHECKING:
    from burnless.result import RunResult

def execute(*, task: str, session: str | None, tier: str | None, cascade: bool, no_plan: bool,
            label: list[str] | None, verify: list[str] | None, timeout: float | None,
            repin: bool, json_: bool, dry_run: bool, config: str | None) -> int:
    """Run TASK as one turn and print its result; the exit code."""
    from burnless.agent import BurnlessAgent
    from burnless.cli.progress import for_terminal
    from burnless.config import command_problem
    from burnless.errors import UsageError

    with console.json_errors(json_):
        text = console.task_text(task)
        if timeout is not None and not 0 < timeout < math.inf:  # nan fails both
            raise UsageError(f"--timeout must be a positive number of seconds, not {timeout:g}")
        for cmd in verify or ():
            problem = command_problem(cmd)
            if problem:
                raise UsageError(f"--verify {cmd!r}: {problem}")
        agent = BurnlessAgent(config)
        result = agent.run(
            text, session, tier=tier, cascade=cascade, plan=not no_plan, labels=label or (),
            verify=verify or (), timeout=timeout, repin=repin, dry_run=dry_run,
            progress=for_terminal(),
        )
    for w in result.warnings:
        console.err(f"burnless: warning: {w}")
    if json_:
        console.emit_json(result.to_dict())
    else:
        _human(result)
    return result.exit_code


def _human(r: RunResult) -> None:
    mark = {"ok": "✓", "partial": "~", "failed": "✗", "escalate": "↑"}.get(r.status, "?")
    model = f" ({r.model})" if r.model else ""
    audit = r.audit.verdict
    head = f"{mark} {r.status} · {r.tier}{model}"
    if r.seq is not None:
        head += f" · session {r.session} seq {r.seq}"
    head += f" · audit {audit}"
    if r.exit_code == 3:
        head += " — the worker's claims do not hold"
    console.out(head)
    if r.summary:
        console.out(f"  {r.summary}")
    if r.plan:
        console.out("  plan: " + " / ".join(r.plan))
    if r.files:
        console.out("  files: " + ", ".join(r.files))
    for f in r.audit.findings:
        console.out(f"  audit {f.check}: {f.path}" + (f" ({f.detail})" if f.detail else ""))
    if r.audit.unclaimed:
        console.out("  unclaimed changes: " + ", ".join(r.audit.unclaimed))
    for note in r.findings:
        console.out(f"  note: {note}")
    for skipped in r.route.get("skipped", []) if isinstance(r.route, dict) else []:
        console.out(f"  skipped: {skipped}")
    u = r.usage
    cost = "cost unknown" if r.cost_usd is None else f"${r.cost_usd:.4f} ({r.cost_source})"
    console.out(
        f"  tokens: in {u.input:,} · out {u.output:,} · cache read {u.cache_read:,} · "
        f"cache write {u.cache_write:,} · {cost} · {len(r.calls)} call(s) · {r.duration_s:.1f}s"
    )
    if r.log:
        console.out(f"  log: {r.log}")
