"""The prompt renderer: growing-only context, purity, task last, no volatile bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burnless.prompt import header, render_prompt
from burnless.session.capsule import Capsule
from burnless.session.compaction import compact_capsule, digest, plan_fold
from burnless.session.context import context_of, current_epoch, needs_plan, next_seq
from burnless.session.store import Session

texts = st.text(max_size=400)
turns = st.lists(
    st.one_of(
        st.tuples(
            st.just("exec"), texts, st.sampled_from(["ok", "partial", "failed", "escalate"]),
            st.sampled_from(["passed", "failed", "skipped"]),
            st.lists(st.text(min_size=1, max_size=30), max_size=5), texts,
        ),
        st.tuples(st.just("plan"), st.lists(texts, min_size=1, max_size=5)),
        st.tuples(st.just("compact"), st.integers(0, 4)),
    ),
    min_size=1,
    max_size=30,
)


def _apply(session: Session, turn: tuple) -> None:
    caps = session.capsules()
    seq, epoch = next_seq(caps), current_epoch(caps)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ")
    if turn[0] == "exec":
        _, task, status, audit, files, summary = turn
        c = Capsule.make(seq=seq, epoch=epoch, role="exec", tier="silver", task=task,
                         status=status, audit=audit, files=tuple(files), summary=summary,
                         run_id=f"r-{os.urandom(3).hex()}", ts=ts)
    elif turn[0] == "plan":
        if not needs_plan(caps):  # as in the pipeline: the planner fires at an epoch's start
            return
        c = Capsule.make(seq=seq, epoch=epoch, role="plan", tier="gold", plan=tuple(turn[1]),
                         ts=ts, status="ok")
    else:
        fold = plan_fold(context_of(caps), turn[1])
        if fold is None:
            return
        c = compact_capsule(caps, fold, digest(caps, fold), ts=ts)
    session.append(c)


def _context_bytes(session: Session) -> bytes:
    p = render_prompt("executor", "PREFIX\n", context_of(session.capsules()), "TASK")
    return (p.stable_prefix + p.context).encode()


@given(turns)
@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_context_grows_only_within_an_epoch_and_is_a_pure_function_of_the_file(
    tmp_path: Path, seq: list
) -> None:
    session = Session(tmp_path / os.urandom(4).hex(), "s")
    prev_bytes, prev_epoch = b"", 0
    for turn in seq:
        if turn[0] == "exec":
            # What an executor turn sends is rendered from the file just before it appends.
            now = _context_bytes(session)
            epoch = current_epoch(session.capsules())
            if epoch == prev_epoch:
                assert now.startswith(prev_bytes)
            prev_bytes, prev_epoch = now, epoch
            # Pure: the same file renders the same bytes, whatever the time zone.
            old_tz = os.environ.get("TZ")
            os.environ["TZ"] = "Asia/Kolkata"
            time.tzset()
            try:
                assert _context_bytes(session) == now
            finally:
                if old_tz is None:
                    os.environ.pop("TZ", None)
                else:
                    os.environ["TZ"] = old_tz
                time.tzset()
        _apply(session, turn)


def test_task_is_last_and_parts_concatenate() -> None:
    p = render_prompt("executor", "rules", context_of([]), "do it")
    assert p.text.endswith("<task>\ndo it\n</task>\n")
    assert "".join(text for _, text in p.parts()) == p.text
    assert "".join(p.blocks) == p.plan + p.capsules
    assert [d["part"] for d in p.digests()] == ["header", "prefix", "plan", "capsules", "task"]


def test_headers_differ_by_role_and_carry_the_envelope_contract() -> None:
    for role in ("planner", "executor", "compactor"):
        h = header(role)
        assert f'role="{role}"' in h and '"status"' in h and "sha256" in h
    assert header("planner") != header("executor")
