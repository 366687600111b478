"""``burnless run`` without typer: the turn itself (``execute``, which the typer command calls
too) and the parser of its plain command lines (``fast``), so a run does not pay for typer and
the command table (about a fifth of its start-up).

``fast`` takes only what it can read exactly as click would: ``[--config F] [--workspace D] run
TASK`` with run's own options (long or short, ``--opt=value``, ``--`` before a TASK starting
with ``-``). Anything else — ``--help``, an unknown or misspelled option, a missing TASK or
value, a number that does not parse — goes to the typer application, which says what is wrong
in the usual style.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from burnless.cli import console

if TYPE_CHECKING:
    from burnless.result import RunResult

# run's options: name -> (keyword, kind); kind "flag", "value" or "many" (repeatable)
_OPTIONS: dict[str, tuple[str, str]] = {
    "--session": ("session", "value"), "-s": ("session", "value"),
    "--tier": ("tier", "value"), "-t": ("tier", "value"),
    "--cascade": ("cascade", "flag"), "--no-plan": ("no_plan", "flag"),
    "--label": ("label", "many"), "-l": ("label", "many"),
    "--verify": ("verify", "many"), "--timeout": ("timeout", "value"),
    "--repin": ("repin", "flag"), "--json": ("json_", "flag"), "--dry-run": ("dry_run", "flag"),
    "--config": ("config", "value"),
}
_ROOT = ("--config", "--workspace")


def fast(argv: Sequence[str]) -> None:
    """Run ``argv`` (``sys.argv[1:]``) without typer when it is a plain ``run`` command line;
    return (having done nothing) when it is not."""
    parsed = parse(argv)
    if parsed is None:
        return
    root, kw = parsed
    for name, value in root.items():  # what the root command's options do
        os.environ["BURNLESS_CONFIG" if name == "--config" else "BURNLESS_WORKSPACE"] = value
    console.setup_process()
    with console.errors_to_exit():
        code = execute(**kw)
    sys.stdout.flush()
    sys.exit(code)


def parse(argv: Sequence[str]) -> tuple[dict[str, str], dict[str, Any]] | None:
    """(root options, ``execute``'s keywords) of a plain ``run`` command line, else None."""
    root: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] != "run":
        name, value, i = _option(argv, i, _ROOT)
        if name is None or value is None:
            return None
        root[name] = value
    if i >= len(argv):
        return None
    kw: dict[str, Any] = {"session": None, "tier": None, "cascade": False, "no_plan": False,
                          "label": None, "verify": None, "timeout": None, "repin": False,
                          "json_": False, "dry_run": False, "config": None}
    task: str | None = None
    i += 1
    only_args = False
    while i < len(argv):
        arg = argv[i]
        if only_args or arg == "-" or not arg.startswith("-"):
            if task is not None:
                return None  # an extra argument: typer says so
            task, i = arg, i + 1
            continue
        if arg == "--":
            only_args, i = True, i + 1
            continue
        name, value, i = _option(argv, i, tuple(_OPTIONS))
        if name is None:
            return None
        key, kind = _OPTIONS[name]
        if kind == "flag":
            if value is not None:
                return None  # --json=yes: click refuses it
            kw[key] = True
        elif value is None:
            return None
        elif kind == "many":
            kw[key] = [*(kw[key] or ()), value]
        elif key == "timeout":
            try:
                kw[key] = float(value)
            except ValueError:
                return None
        else:
            kw[key] = value
    if task is None:
        return None
    kw["task"] = task
    return root, kw


def _option(argv: Sequence[str], i: int, names: Sequence[str]
            ) -> tuple[str | None, str | None, int]:
    """(name, its value or None, the next index) of the option at ``argv[i]``; name None when
    it is not one of ``names``. A value is ``--name=value`` or the next argument, for options
    that take one."""
    arg = argv[i]
    name, eq, attached = arg.partition("=")
    if eq and name.startswith("--"):
        return (name, attached, i + 1) if name in names else (None, None, i + 1)
    if arg not in names:
        return None, None, i + 1
    takes_value = arg in _ROOT or _OPTIONS[arg][1] != "flag"
    if not takes_value:
        return arg, None, i + 1
    if i + 1 >= len(argv):
        return None, None, i + 1  # a missing value: typer says so
    return arg, argv[i + 1], i + 2


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
