"""A session's context, derived from its capsule file alone: epochs, plan, capsules.

A ``compact`` capsule opens a new epoch; epoch E's context is its plan, then the digest that
opened it, the capsules that digest kept, and the epoch's own exec capsules, in file order. So
rendering the context is a pure function of the file, and it only grows within an epoch.

A plan renders first, so a plan can only open an epoch's context. When the planner fails, the
turn leaves a ``plan`` capsule with status ``failed`` (never rendered) and executes without a
plan; the next turn plans again. If that retry succeeds, its plan cannot join the epoch whose
prompts already went out without it: it opens the next epoch, which carries the previous
epoch's context verbatim after the plan (one cache miss, as after a compaction; nothing is
folded or lost).
"""

from __future__ import annotations

from collections.abc import Sequence

from burnless.accounting.tokens import estimate_tokens
from burnless.session.capsule import Capsule, Context, render


def current_epoch(capsules: Sequence[Capsule]) -> int:
    return max((c.epoch for c in capsules), default=1)


def context_of(capsules: Sequence[Capsule]) -> Context:
    """The plan and capsules the next turn renders, derived from the capsule file alone.

    Epoch E's context: its plan (part 3), then the compact digest that opened it, the capsules
    that digest kept, and the epoch's own exec capsules, in file order (part 4).
    """
    epoch = current_epoch(capsules)
    by_seq: dict[int, Capsule] = {}
    for c in capsules:
        by_seq.setdefault(c.seq, c)  # a damaged file may repeat a seq: the first one stays
    plan: Capsule | None = None
    items: list[Capsule] = []
    first = next((c for c in capsules if c.epoch == epoch), None)
    if first is not None and usable_plan(first):
        # An epoch opened by a plan carries the context before it (a retried plan; at a
        # session's start there is none).
        items.extend(context_of([c for c in capsules if c.epoch < epoch]).capsules)
    for c in capsules:
        if c.epoch != epoch:
            continue
        if c.role == "plan":
            if usable_plan(c):
                plan = plan or c  # the epoch's first plan; it opens the context
        elif c.role == "compact":
            items.append(c)
            items.extend(by_seq[s] for s in c.keeps if s in by_seq and by_seq[s].role == "exec")
        else:
            items.append(c)
    return Context(plan, tuple(items))


def context_tokens(context: Context) -> int:
    text = (render(context.plan) if context.plan else "") + "".join(
        render(c) for c in context.capsules
    )
    return estimate_tokens(text)


def usable_plan(c: Capsule) -> bool:
    """A plan the executor follows (a failed planner's capsule is kept, never rendered)."""
    return c.role == "plan" and c.status != "failed"


def plan_failed(capsules: Sequence[Capsule]) -> bool:
    """The planner failed in the current epoch and no plan has been written since."""
    epoch = current_epoch(capsules)
    mine = [c for c in capsules if c.epoch == epoch and c.role == "plan"]
    return bool(mine) and not any(usable_plan(c) for c in mine)


def needs_plan(capsules: Sequence[Capsule]) -> bool:
    """The planner fires on the first turn of an epoch (session start, after a compaction),
    and on every later turn of it while it has failed there (see the module docstring)."""
    epoch = current_epoch(capsules)
    if plan_failed(capsules):
        return True
    return not any(c.epoch == epoch and c.role in ("plan", "exec") for c in capsules)


def plan_epoch(capsules: Sequence[Capsule]) -> int:
    """The epoch a new plan opens: the current one, unless its prompts already went out
    without a plan (the planner failed there): then the next one."""
    return current_epoch(capsules) + (1 if plan_failed(capsules) else 0)


def next_seq(capsules: Sequence[Capsule]) -> int:
    return max((c.seq for c in capsules), default=0) + 1


def held_sensitive(ctx: Context, session_id: str = "") -> tuple[str, ...]:
    """Why the session itself is sensitive: a capsule its prompts render came from sensitive
    work (a digest that folded one inherits the flag), so every prompt would carry it. The
    reason says how to leave it: it shows in ``route --explain`` and in a refusal."""
    held = [c.seq for c in (*([ctx.plan] if ctx.plan else []), *ctx.capsules) if c.sensitive]
    if not held:
        return ()
    rm = f"`burnless session rm {session_id}`" if session_id else "`burnless session rm ID`"
    return (f"the session holds sensitive work (capsule {', '.join(map(str, held[:5]))}), so "
            "every turn of it stays on local tiers; for work that may leave this machine, "
            f"start another session (--session NEW) or remove this one ({rm})",)
