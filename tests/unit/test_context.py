"""The epoch rules of session/context.py for plans: a failed plan is kept and never
rendered, the planner fires again, and a retried plan opens the next epoch only when the
current one already sent prompts without it."""

from __future__ import annotations

from burnless.session.capsule import Capsule
from burnless.session.context import context_of, needs_plan, plan_epoch


def cap(seq: int, role: str, epoch: int = 1, status: str = "ok", **kw: object) -> Capsule:
    return Capsule.make(seq=seq, epoch=epoch, role=role, status=status, task=f"t{seq}", **kw)


def test_a_session_plans_once_per_epoch() -> None:
    assert needs_plan([])
    assert plan_epoch([]) == 1
    done = [cap(1, "plan", plan=("a",)), cap(2, "exec")]
    assert not needs_plan(done)
    assert context_of(done).plan == done[0]


def test_turns_without_a_planner_never_plan_later() -> None:
    assert not needs_plan([cap(1, "exec")])  # --no-plan, planner: null, a tier-0 script


def test_a_failed_plan_is_retried_in_the_same_epoch_when_nothing_went_out() -> None:
    caps = [cap(1, "plan", status="failed")]  # then the executor was refused: no exec capsule
    assert needs_plan(caps) and plan_epoch(caps) == 2
    # nothing was rendered in epoch 1, but a new epoch costs nothing more and carries nothing
    retried = [*caps, cap(2, "plan", epoch=2, plan=("a",))]
    assert context_of(retried).plan == retried[1] and context_of(retried).capsules == ()


def test_a_retried_plan_opens_the_next_epoch_carrying_the_context() -> None:
    caps = [cap(1, "plan", status="failed"), cap(2, "exec"), cap(3, "plan", status="failed"),
            cap(4, "exec")]
    ctx = context_of(caps)
    assert ctx.plan is None and [c.seq for c in ctx.capsules] == [2, 4]
    assert needs_plan(caps) and plan_epoch(caps) == 2
    caps += [cap(5, "plan", epoch=2, plan=("a",)), cap(6, "exec", epoch=2)]
    assert not needs_plan(caps)
    ctx = context_of(caps)
    assert ctx.plan is not None and ctx.plan.seq == 5
    assert [c.seq for c in ctx.capsules] == [2, 4, 6]


def test_a_failed_plan_after_a_compaction_carries_the_digest() -> None:
    caps = [cap(1, "plan", plan=("a",)), cap(2, "exec"), cap(3, "exec"),
            cap(4, "compact", epoch=2, folds=(1, 2), keeps=(3,), digest="d"),
            cap(5, "plan", epoch=2, status="failed"), cap(6, "exec", epoch=2)]
    assert needs_plan(caps) and plan_epoch(caps) == 3
    caps.append(cap(7, "plan", epoch=3, plan=("b",)))
    ctx = context_of(caps)
    assert ctx.plan is not None and ctx.plan.seq == 7
    assert [c.seq for c in ctx.capsules] == [4, 3, 6]
