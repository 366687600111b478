"""Compaction: fold a session's older capsules into one digest capsule, opening a new epoch.

When plan + capsules exceed ``compaction.max_context_tokens``, everything in the context but
the last ``keep_recent`` exec capsules is folded into a ``compact`` capsule: a deterministic
digest of summaries, files and open items, or a summary written by ``compaction.tier``. It
lists the seqs it folds and keeps; the planner fires on the next turn (a new epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from burnless.session.capsule import Capsule, Context
from burnless.session.context import context_of, current_epoch, next_seq


@dataclass(frozen=True)
class Fold:
    """What a compaction folds and keeps."""

    folds: tuple[int, ...]
    keeps: tuple[int, ...]
    folded: tuple[Capsule, ...]


def plan_fold(context: Context, keep_recent: int) -> Fold | None:
    """Fold everything in the context but the last ``keep_recent`` exec capsules (None: nothing)."""
    execs = [c for c in context.capsules if c.role == "exec"]
    kept = execs[-keep_recent:] if keep_recent else []
    kept_seqs = {c.seq for c in kept}
    folded = ([context.plan] if context.plan else []) + [
        c for c in context.capsules if c.seq not in kept_seqs
    ]
    if not any(c.role == "exec" for c in folded):
        return None
    return Fold(
        folds=tuple(sorted(c.seq for c in folded)),
        keeps=tuple(c.seq for c in kept),
        folded=tuple(folded),
    )


def compact_capsule(
    capsules: Sequence[Capsule], fold: Fold, digest_text: str, *, tier: str = "", ts: str = ""
) -> Capsule:
    """The capsule that folds ``fold`` into ``digest_text`` and opens the next epoch."""
    return Capsule.make(
        seq=next_seq(capsules), epoch=current_epoch(capsules) + 1, role="compact", tier=tier,
        task="compaction", status="ok", audit="skipped",
        summary=f"folded {len(fold.folds)} capsules, kept {len(fold.keeps)}",
        folds=fold.folds, keeps=fold.keeps, digest=digest_text, ts=ts,
        sensitive=any(c.sensitive for c in fold.folded),
    )


def digest(history: Sequence[Capsule], fold: Fold) -> str:
    """A deterministic digest of the folded turns, bounded, derived from the capsules only."""
    folded_execs = [c for c in fold.folded if c.role == "exec"]
    previous = [c for c in fold.folded if c.role == "compact"]
    plan = next((c for c in fold.folded if c.role == "plan"), None)
    lines: list[str] = []
    if previous:
        lines.append(f"Earlier digest (seq {previous[-1].seq}):")
        lines.extend("  " + line for line in previous[-1].digest.splitlines()[:8])
    if plan and plan.plan:
        lines.append("Plan was: " + " / ".join(plan.plan[:6]))
    lines.append(f"Turns folded: {len(folded_execs)}")
    for c in folded_execs[-10:]:
        mark = "" if c.audit in ("passed", "skipped", "") else f" audit {c.audit}"
        lines.append(f"- [{c.seq}] {c.status}{mark}: {c.summary or c.task}"[:160])
    touched: list[str] = []
    for c in reversed([c for c in history if c.role == "exec"]):
        for f in c.files:
            if f not in touched:
                touched.append(f)
    if touched:
        more = f" (+{len(touched) - 20} more)" if len(touched) > 20 else ""
        lines.append("Files touched: " + ", ".join(touched[:20]) + more)
    failed = [c for c in folded_execs if c.audit == "failed" or c.status in ("failed", "partial")]
    if failed:
        lines.append("Failed or partial: " + "; ".join(
            f"[{c.seq}] {c.status}/{c.audit} {' '.join(c.notes[:2])}".strip() for c in failed[-5:]
        ))
    open_items = [c.next for c in folded_execs[-3:] if c.next]
    if open_items:
        lines.append("Open: " + " | ".join(open_items))
    return "\n".join(lines)


# A summarizer writes the digest with a tier: (context, fold, deterministic digest) -> (text,
# tier name), or the deterministic digest and "" when it cannot.
Summarize = Callable[[Context, "Fold", str], tuple[str, str]]


def fold(
    capsules: Sequence[Capsule], keep_recent: int, *, ts: str, summarize: Summarize | None = None
) -> Capsule | None:
    """The compact capsule that folds ``capsules``' older context (None: nothing to fold)."""
    ctx = context_of(capsules)
    plan = plan_fold(ctx, keep_recent)
    if plan is None:
        return None
    text, tier = digest(capsules, plan), ""
    if summarize is not None:
        text, tier = summarize(ctx, plan, text)
    return compact_capsule(capsules, plan, text, tier=tier, ts=ts)


def fold_sensitivity(plan: Fold) -> tuple[str, ...]:
    """Why the folded capsules are sensitive work (what a summarizing tier would be sent)."""
    held = [c.seq for c in plan.folded if c.sensitive]
    if not held:
        return ()
    return (f"the folded turns hold sensitive work (capsule {', '.join(map(str, held[:5]))})",)
