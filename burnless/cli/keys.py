"""burnless keys create | list | revoke: the gateway's virtual keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from burnless.cli import console, epilog
from burnless.cli.options import ConfigOpt, JsonOpt

if TYPE_CHECKING:
    from burnless.gateway.keys import VirtualKey

app = typer.Typer(
    help="Virtual keys for burnless serve: each client gets its own key, budget and tiers.",
    no_args_is_help=True, rich_markup_mode=None, epilog=epilog([
        "burnless keys create alice --budget 5 --monthly 50 --tiers silver,bronze",
        "export ANTHROPIC_API_KEY=$(burnless keys create ci --budget 2 --label ci)",
        "burnless keys list",
        "burnless keys revoke alice        # refused by the gateway from its next request",
        "burnless usage --period today --by key",
    ]))

NameArg = Annotated[str, typer.Argument(help="The key's name (as the ledger and usage show "
                                        "it).", show_default=False)]


@app.command()
def create(
    name: NameArg,
    budget: Annotated[float | None, typer.Option(
        "--budget", help="USD per UTC day this key may spend (on top of budget.*).",
        show_default=False)] = None,
    monthly: Annotated[float | None, typer.Option(
        "--monthly", help="USD per calendar month (UTC) this key may spend.",
        show_default=False)] = None,
    tiers: Annotated[str | None, typer.Option(
        "--tiers", help="The tiers its requests may use, comma-separated (default: every "
        "tier).", show_default=False)] = None,
    label: Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="A label added to each of its requests (routing rules, "
        "policy); repeatable.", show_default=False)] = None,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create a key and print it once (only its hash is stored, in .burnless/keys.json)."""
    from burnless.config import load_config
    from burnless.gateway import keys

    with console.json_errors(json_):
        cfg = load_config(config)
        allowed = tuple(t.strip() for t in (tiers or "").split(",") if t.strip())
        key, vk = keys.create(cfg, name, max_cost_per_day=budget, max_cost_per_month=monthly,
                              tiers=allowed, labels=tuple(label or ()))
    if json_:
        console.emit_json({"key": key, **_row(vk)})
        return
    console.out(key)
    console.err(f"burnless: key {name!r} created ({_limits(vk)}); it is shown only now: keep "
                "it. Clients send it as their API key (ANTHROPIC_API_KEY, OPENAI_API_KEY) "
                f"to burnless serve. Stored as a hash in {vk.source}.")


@app.command("list")
def list_(json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List the keys with their limits and what each spent today and this month."""
    from burnless.accounting.budget import today
    from burnless.config import load_config
    from burnless.gateway import keys

    with console.json_errors(json_):
        cfg = load_config(config)
        found = keys.all_keys(cfg)
        spent = keys.spending(cfg, list(found), today())
    rows = [{**_row(k), "spent_today_usd": round(spent[n][0], 8),
             "spent_month_usd": round(spent[n][1], 8)} for n, k in found.items()]
    if json_:
        console.emit_json({"keys": rows})
        return
    if not rows:
        console.out("no virtual keys: burnless serve accepts any client on this machine "
                    "(create one with: burnless keys create NAME)")
        return
    console.print_table("", ["key", "today", "per day", "month", "per month", "tiers",
                             "labels", "created"],
                        [[r["name"], f"${r['spent_today_usd']:.4f}", _usd(r["max_cost_per_day"]),
                          f"${r['spent_month_usd']:.4f}", _usd(r["max_cost_per_month"]),
                          ",".join(r["tiers"]) or "any", ",".join(r["labels"]) or "-",
                          r["created"][:10] or r["source"]] for r in rows],
                        right=frozenset({1, 2, 3, 4}))


@app.command()
def revoke(name: NameArg, json_: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Revoke a key: the gateway refuses it from its next request (its spend stays in the
    ledger, under its name)."""
    from burnless.config import load_config
    from burnless.gateway import keys

    with console.json_errors(json_):
        vk = keys.revoke(load_config(config), name)
    if json_:
        console.emit_json({"revoked": name, "source": str(vk.source)})
        return
    console.out(f"key {name!r} revoked")


def _row(k: VirtualKey) -> dict[str, Any]:
    s = k.settings
    return {"name": k.name, "hash": s.hash, "max_cost_per_day": s.max_cost_per_day,
            "max_cost_per_month": s.max_cost_per_month, "tiers": list(s.tiers),
            "labels": list(s.labels), "created": s.created, "source": str(k.source)}


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:.2f}"


def _limits(k: VirtualKey) -> str:
    s = k.settings
    parts = [f"${s.max_cost_per_day:g}/day" if s.max_cost_per_day is not None else "",
             f"${s.max_cost_per_month:g}/month" if s.max_cost_per_month is not None else "",
             f"tiers {', '.join(s.tiers)}" if s.tiers else "every tier",
             f"labels {', '.join(s.labels)}" if s.labels else ""]
    return "; ".join(p for p in parts if p)
