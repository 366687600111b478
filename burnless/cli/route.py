"""burnless route TASK: the routing decision and its reasons, without running anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from burnless.cli import console, epilog
from burnless.cli.console import task_text
from burnless.cli.options import ConfigOpt, JsonOpt, LabelOpt, SessionOpt

if TYPE_CHECKING:
    from burnless.routing.router import Decision

EPILOG = {"route": epilog([
    'burnless route "design the cache layer"                 # prints the tier',
    'burnless route "design the cache layer" --explain       # and every reason',
    'burnless route "read secrets/prod.env" --session ops --json',
])}


def route(
    task: Annotated[str, typer.Argument(help="The task; '-' reads it from stdin.")],
    session: SessionOpt = None,
    label: LabelOpt = None,
    tier: Annotated[str | None, typer.Option("--tier", "-t", help="As run --tier.",
                                             show_default=False)] = None,
    cascade: Annotated[bool, typer.Option("--cascade", help="As run --cascade.")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Print every reason.")] = False,
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show which tier would serve TASK, and why. Needs no tier installed; runs nothing."""
    from burnless.agent import BurnlessAgent

    with console.json_errors(json_):
        text = task_text(task)
        decision = BurnlessAgent(config).route(
            text, session, labels=label or (), tier=tier, cascade=cascade
        )
    if json_:
        console.emit_json(decision.to_dict())
        return
    if not explain:
        console.out(decision.tier)
        return
    console.out(f"tier: {decision.tier}")
    console.out(f"natural: {decision.natural}")
    console.out(f"pinned: {decision.pinned or '-'}")
    console.out(f"policy: {decision.policy or '-'}")
    if decision.cascade:
        console.out("ladder: " + " → ".join(decision.ladder))
    console.out("reasons:")
    for r in decision.reasons:
        console.out(f"  - {r}")
    if decision.min_similarity is not None:
        explain_examples(decision)


SHOWN = 10


def explain_examples(decision: Decision) -> None:
    """The nearest examples, their similarity, and whether (and for what) each one voted."""
    near = decision.examples
    ms = decision.min_similarity
    if not near:
        return
    console.out(f"nearest examples (a vote counts at similarity >= {ms:g}):")
    for n in near[:SHOWN]:
        ex = n.example
        if not n.counted:
            why = "below min_similarity"
        elif n.vote is None:
            why = f"counter-example of {ex.tier}, off routing.ladder: no vote"
        elif ex.kind == "counter":
            why = f"counter-example of {ex.tier}: votes {n.vote}"
        else:
            why = f"votes {n.vote}"
        text = " ".join(ex.text.split())
        text = text if len(text) <= 60 else text[:59] + "…"
        console.out(f"  {n.similarity:.2f}  {ex.tier:<8} {text!r}  ({ex.source}; {why})")
    if len(near) > SHOWN:
        console.out(f"  … {len(near) - SHOWN} more (--json lists them all)")
