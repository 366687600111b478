"""burnless run TASK: one turn, from task to audited result."""

from __future__ import annotations

from typing import Annotated

import typer

from burnless.cli import epilog, runturn
from burnless.cli.options import ConfigOpt, JsonOpt, LabelOpt, SessionOpt


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
    # `burnless run` with plain arguments never gets here (burnless.entry takes the typer-free
    # path of burnless.cli.fast); this is the path of --help, errors and the Python CLI runner.
    raise typer.Exit(runturn.execute(
        task=task, session=session, tier=tier, cascade=cascade, no_plan=no_plan, label=label,
        verify=verify, timeout=timeout, repin=repin, json_=json_, dry_run=dry_run,
        config=config))


EPILOG = {"run": epilog([
    'burnless run "Refactor the auth module" --session auth',
    'burnless run "fix the failing test" --verify "pytest -q"     # must exit 0 after',
    'burnless run "page audit of site/index.html" --cascade        # cheapest rung first',
    'git diff | burnless run - --label sensitive --json           # local tiers only',
    'burnless run "write docs/api.md" --dry-run                    # route and render only',
], exit_codes=True)}
