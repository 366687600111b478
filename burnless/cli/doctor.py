"""burnless doctor: is this workspace ready to run? (exit 0: every check passes)."""

from __future__ import annotations

import typer

from burnless.cli import console, epilog
from burnless.cli.options import ConfigOpt, JsonOpt

EPILOG = {"doctor": epilog([
    "burnless doctor",
    "burnless doctor --json | jq '.checks[] | select(.status != \"ok\")'",
])}


def doctor(json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Check the config, every tier's command or API key, state dir, and prompt caching."""
    from burnless.doctor import run_checks

    checks = run_checks(config)
    failed = any(c["status"] == "fail" for c in checks)
    if json_:
        console.emit_json({"ok": not failed, "checks": checks})
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for c in checks:
            console.out(f"{marks[c['status']]} {c['name']}: {c['detail']}")
    raise typer.Exit(1 if failed else 0)
