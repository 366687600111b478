"""A session's context, derived from its capsule file alone: epochs, plan, capsules.

A ``compact`` capsule opens a new epoch; epoch E's context is its plan, then the digest that
opened it, the capsules that digest kept, and the epoch's own exec capsules, in file order. So
rendering the context is a pure function of the file, and it only grows within an epoch.
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
    for c in capsules:
        if c.epoch != epoch:
            continue
        if c.role == "plan":
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


def needs_plan(capsules: Sequence[Capsule]) -> bool:
    """The planner fires on the first turn of an epoch (session start, after a compaction)."""
    epoch = current_epoch(capsules)
    return not any(c.epoch == epoch and c.role in ("plan", "exec") for c in capsules)


def next_seq(capsules: Sequence[Capsule]) -> int:
    return max((c.seq for c in capsules), default=0) + 1


def held_sensitive(ctx: Context) -> tuple[str, ...]:
    """Why the session itself is sensitive: a capsule its prompts render came from sensitive
    work (a digest that folded one inherits the flag), so every prompt would carry it."""
    held = [c.seq for c in (*([ctx.plan] if ctx.plan else []), *ctx.capsules) if c.sensitive]
    if not held:
        return ()
    return (f"the session holds sensitive work (capsule {', '.join(map(str, held[:5]))}); "
            "start another session for work that may leave this machine",)
