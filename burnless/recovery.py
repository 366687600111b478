"""After a crash: what dead runs left in flight reaches the ledger and their sessions.

Every turn starts with ``sweep``, under its session's lock and before it dispatches anything.
Each call's journal (``accounting.inflight``) whose process died gets its ledger record (the
finished one, or a ``lost`` one at its worst case). A journal that also holds the turn's capsule
gets that capsule appended to its session if the session lacks it — by this turn when it is the
same session, else by whichever run can take that session's lock without waiting (a session
whose lock is busy recovers its own capsule at its next turn). All of it happens under the
budget lock, where journals are claimed: a turn that holds it sees every dead journal of its
session (none is half-way through another run's sweep), and budgets never count a dead run's
call twice or miss it. So a killed run never loses a paid call, and a session never reuses the
seq of a turn it did not see.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from burnless.accounting import budget, inflight
from burnless.errors import BurnlessError, SessionBusy
from burnless.session.capsule import Capsule
from burnless.session.context import next_seq
from burnless.session.store import Session

log = logging.getLogger("burnless")


def sweep(state_dir: Path, current: Session, user_dir: Path | None = None) -> list[str]:
    """Record every dead run's calls; restore capsules. Returns what to tell the user."""
    said: list[str] = []
    if not inflight.any_dead(state_dir, current.id):  # the common case: none, or live calls
        return said
    with budget.locked(state_dir):
        try:
            for rec in budget.record_orphans(state_dir, user_dir):
                what = ("as lost (cost unknown)" if rec.cost_usd is None else
                        f"as lost, charged its worst case (${rec.cost_usd:.4f})")
                said.append(f"recorded call {rec.run_id} ({rec.tier}, session {rec.session}) "
                            "that a killed run left unrecorded"
                            + (f" {what}" if rec.status == "lost" else ""))
        except OSError as exc:
            said.append(f"cannot yet record a call that a killed run left in flight: "
                        f"{exc.strerror or exc} ({exc.filename or state_dir})")
        for orphan in inflight.orphans(state_dir):  # what is left: capsules to restore
            if orphan.capsule is None or not orphan.data.get("recorded"):
                orphan.keep(orphan.data)
                continue
            try:
                said.extend(_restore_for(state_dir, orphan, current))
            except OSError as exc:
                orphan.keep(orphan.data)
                said.append(f"cannot yet restore the capsule of call {orphan.run_id}: "
                            f"{exc.strerror or exc} ({exc.filename or state_dir})")
    return said


def _restore_for(state_dir: Path, orphan: inflight.Orphan, current: Session) -> list[str]:
    if orphan.session == current.id:
        said = _restore(current, orphan)
        orphan.release()
        return said
    other = Session(state_dir, orphan.session)
    try:
        with other.lock(0):
            said = _restore(other, orphan)
    except SessionBusy:  # its own next turn restores it
        orphan.keep(orphan.data)
        return []
    except BurnlessError as exc:  # that session is unusable now (it says why at its next turn)
        orphan.keep(orphan.data)
        return [f"cannot yet restore the capsule of call {orphan.run_id}: {exc}"]
    orphan.release()
    return said


def _restore(session: Session, orphan: inflight.Orphan) -> list[str]:
    """Append the journal's capsule to ``session`` if it is not there (the caller holds the
    session's lock)."""
    assert orphan.capsule is not None
    try:
        capsule = Capsule.from_dict(orphan.capsule)
        if capsule.run_id != orphan.run_id:
            raise ValueError(f"it is the capsule of call {capsule.run_id!r:.40}")
    except (ValueError, TypeError, OverflowError) as exc:
        log.warning("call %s: its journal's capsule is damaged (%s); not restored",
                    orphan.run_id, exc)
        return []
    capsules = session.capsules()
    if any(c.run_id == capsule.run_id for c in capsules):
        return []
    note = "restored by a later run: the run that made it was killed before writing it"
    seq = capsule.seq
    if any(c.seq == seq for c in capsules):
        seq = next_seq(capsules)
    restored = Capsule.make(**{**dataclasses.asdict(capsule), "seq": seq,
                               "notes": (*capsule.notes[:5], note)})
    session.append(restored)
    return [f"session {session.id!r}: restored capsule {seq} (call {orphan.run_id}) that a "
            "killed run had not written"]
