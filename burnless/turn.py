"""One ``run`` invocation in flight: the task it carries and what it has done so far.

``Task`` is fixed when the run starts (the text, its masked form, its sensitivity); ``Turn`` is
what the pipeline in ``agent`` accumulates as it goes: the ledger records of its calls (the
same records the ledger holds, in order) and the warnings the user will see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from burnless.accounting.ledger import LedgerRecord
from burnless.safety.nesting import Tree
from burnless.session.pins import PinBook
from burnless.session.store import Session


@dataclass(frozen=True)
class Task:
    """The task of a run: as given, as it may be stored, and where it sits in a delegation tree."""
    text: str  # as given (may hold secrets; never stored)
    stored: str  # masked: what capsules, the ledger and logs may hold
    id: str  # groups the calls of one run in the ledger
    labels: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()  # why the work is sensitive (empty: it is not)
    tree: Tree = Tree()  # where the run sits in a delegation tree (empty: at the top)

    @property
    def tree_id(self) -> str:
        """The delegation tree's id: the top-level run's task id."""
        return self.tree.tree or self.id


@dataclass
class Turn:
    """One run in progress: its session, task, pins, and the calls made so far."""
    session: Session
    task: Task
    pins: PinBook
    calls: list[LedgerRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def spent(self) -> float:
        """What the run's calls have cost so far (calls of unknown cost add nothing: with a
        cost limit set, they are refused before they are made)."""
        return sum(c.cost_usd or 0.0 for c in self.calls)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
