"""burnless run TASK: one turn, from task to audited result."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from burnless.cli import console, epilog
from burnless.cli.options import ConfigOpt, JsonOpt, LabelOpt, SessionOpt, task_text

if TYPE_CHECKING:
    from burnless.result import RunResult


def run(
    task: Annotated[str, typer.Argument(help="The task; '-' reads it from stdin.")],
    session: SessionOpt = None,
    tier: Annotated[str | None, typer.Option("--tier", "-t", help="Force a tier.",
                                             show_default=False)] = None,
    cascade: Annotated[bool, typer.Option("--cascade", help="Climb routing.ladder, cheapest "
                                          "first, until a rung succeeds.")] = False,
    no_plan: Annotated[bool, typer.Option("--no-plan", help="Skip the planner this turn.")] = False,
    label: LabelOpt = None,
    verify: Annotated[list[str] | None, typer.Option(
        "--verify", help="A command that must exit 0 after the worker (repeatable).",
        show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds before the "
                                                  "worker's process group is killed.",
                                                  show_default=False)] = None,
    repin: Annotated[bool, typer.Option("--repin", help="Adopt the current config for this "
                                        "session's pinned tiers.")] = False,
    json_: JsonOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Route and render; dispatch "
                                          "nothing.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run TASK as one turn of a session and audit what the worker claims."""
    from burnless.agent import BurnlessAgent
    from burnless.cli.progress import for_terminal
    from burnless.config import command_problem
    from burnless.errors import UsageError

    with console.json_errors(json_):
        text = task_text(task)
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
    raise typer.Exit(result.exit_code)


EPILOG = {"run": epilog([
    'burnless run "Refactor the auth module" --session auth',
    'burnless run "fix the failing test" --verify "pytest -q"     # must exit 0 after',
    'burnless run "page audit of site/index.html" --cascade        # cheapest rung first',
    'git diff | burnless run - --label sensitive --json           # local tiers only',
    'burnless run "write docs/api.md" --dry-run                    # route and render only',
], exit_codes=True)}


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
