"""burnless session list | show | prompt | compact | rm."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from burnless.cli import console, epilog
from burnless.cli.options import ConfigOpt, JsonOpt

if TYPE_CHECKING:
    from burnless.session.store import Session
    from burnless.settings import Config

app = typer.Typer(help="Inspect and manage sessions (capsules, pins, the next prompt).",
                  no_args_is_help=True, rich_markup_mode=None, epilog=epilog([
                      "burnless session list --json",
                      "burnless session show auth",
                      'burnless session prompt auth --task "next step"   # exactly what is sent',
                      "burnless session compact auth",
                      "burnless session rm auth      # also how to leave a sensitive session",
                  ]))

IdArg = Annotated[str, typer.Argument(help="Session id.")]


def _summary(cfg: Config, sid: str, ledger_rows: list[dict[str, Any]]) -> dict[str, Any]:
    from burnless.accounting.index import billed
    from burnless.session.context import current_epoch
    from burnless.session.store import Session

    s = Session(cfg.state_dir, sid)
    caps = s.capsules()
    rows = [r for r in ledger_rows
            if r.get("session") == sid and billed(r.get("status"), r.get("cached"))]
    costs = [r.get("cost_usd") for r in rows]
    known = [c for c in costs if isinstance(c, (int, float))]
    return {
        "id": sid,
        "capsules": len(caps),
        "epoch": current_epoch(caps) if caps else 0,
        "calls": len(rows),
        "cost_usd": round(sum(known), 8) if len(known) == len(costs) else None,
        "last": caps[-1].ts if caps else "",
    }


@app.command("list")
def list_(json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List the sessions of this workspace."""
    from burnless.accounting import ledger
    from burnless.config import load_config
    from burnless.session.store import list_sessions

    with console.json_errors(json_):
        cfg = load_config(config)
    from burnless.errors import BurnlessError

    rows = ledger.read(cfg.state_dir)
    items = []
    for sid in list_sessions(cfg.state_dir):
        try:
            items.append(_summary(cfg, sid, rows))
        except (BurnlessError, OSError) as exc:  # one damaged session does not hide the rest
            console.err(f"burnless: warning: session {sid!r} skipped: {exc}")
    if json_:
        console.emit_json({"sessions": items})
        return
    if not items:
        console.out("no sessions yet")
        return
    console.print_table(
        "", ["session", "capsules", "epoch", "calls", "cost", "last"],
        [[i["id"], str(i["capsules"]), str(i["epoch"]), str(i["calls"]),
          "unknown" if i["cost_usd"] is None else f"${i['cost_usd']:.4f}", i["last"]]
         for i in items],
        right=frozenset({1, 2, 3, 4}),
    )


def _existing(cfg: Config, sid: str) -> Session:
    from burnless.errors import UsageError
    from burnless.session.store import Session

    s = Session(cfg.state_dir, sid)
    if not s.exists():
        raise UsageError(f"no session {sid!r} in {cfg.state_dir / 'sessions'}")
    return s


@app.command("show")
def show(session_id: IdArg, json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Capsules, epochs, pins, calls and cost of a session."""
    from burnless.accounting import ledger
    from burnless.config import load_config

    with console.json_errors(json_):
        cfg = load_config(config)
        s = _existing(cfg, session_id)
    caps = s.capsules()
    meta = s.meta()
    info = _summary(cfg, session_id, ledger.read(cfg.state_dir))
    info["pins"] = {k: v.to_dict() for k, v in meta.pins.items()}
    info["executor"] = meta.executor
    info["created"] = meta.created
    info["epochs"] = sorted({c.epoch for c in caps})
    if json_:
        info["capsule_list"] = [c.to_dict() for c in caps]
        console.emit_json(info)
        return
    console.out(f"session {session_id}: {info['capsules']} capsules, epoch {info['epoch']}, "
                f"{info['calls']} calls, "
                + ("cost unknown" if info["cost_usd"] is None else f"${info['cost_usd']:.4f}"))
    if meta.executor:
        console.out(f"executor: {meta.executor}")
    for name, pin in sorted(meta.pins.items()):
        console.out(f"pin {name}: {pin.command or 'api ' + str(pin.api)} (model {pin.model})")
    for c in caps:
        text = c.summary or c.task
        if c.role == "plan":
            text = " / ".join(c.plan) or c.summary  # a failed planner's capsule: its cause
        elif c.role == "compact":
            text = f"folds {len(c.folds)}, keeps {len(c.keeps)}"
        console.out(f"  [{c.seq}] e{c.epoch} {c.role:<7} {c.tier:<8} {c.status:<8} "
                    f"{c.audit:<7} {text}")


@app.command("prompt")
def prompt(
    session_id: IdArg,
    task: Annotated[str, typer.Option("--task", help="The task to render.")] = "<task>",
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Print exactly what the next turn would send, with each part's size and sha256."""
    from burnless.agent import BurnlessAgent

    with console.json_errors(json_):
        p = BurnlessAgent(config).next_prompt(session_id, task)
    if json_:
        console.emit_json({"role": p.role, "parts": p.digests(), "text": p.text})
        return
    import sys

    sys.stdout.flush()
    sys.stdout.buffer.write(p.text.encode("utf-8"))  # the exact bytes, whatever the locale
    sys.stdout.buffer.flush()
    console.err(f"role: {p.role}")
    for d in p.digests():
        console.err(f"{d['part']:<9} {d['bytes']:>8} bytes  sha256 {d['sha256']}")


@app.command("compact")
def compact(session_id: IdArg, json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Fold the session's older capsules into a digest now."""
    from burnless.agent import BurnlessAgent

    with console.json_errors(json_):
        agent = BurnlessAgent(config)
        _existing(agent.config, session_id)
        capsule = agent.compact(session_id)
    if json_:
        console.emit_json({"compacted": capsule is not None,
                           "capsule": capsule.to_dict() if capsule else None})
        return
    if capsule is None:
        console.out(f"session {session_id}: nothing to fold")
    else:
        console.out(f"session {session_id}: folded {len(capsule.folds)} capsules into seq "
                    f"{capsule.seq}, kept {len(capsule.keeps)}; epoch {capsule.epoch} begins")


@app.command("rm")
def rm(session_id: IdArg, json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Delete a session's capsules and pins (the ledger keeps its records)."""
    from burnless.config import load_config

    with console.json_errors(json_):
        cfg = load_config(config)
        s = _existing(cfg, session_id)
        with s.lock(0):  # never wait up to lock_timeout on a running turn: say it is busy
            # A turn a killed run left unwritten reaches the ledger (and this session) first:
            # else a later run would re-create the session to restore its capsule.
            from burnless import recovery

            for said in recovery.sweep(cfg.state_dir, s, cfg.user_dir):
                console.err(f"burnless: warning: {said}")
            s.remove()
    if json_:
        console.emit_json({"removed": session_id})
    else:
        console.out(f"removed session {session_id}")
