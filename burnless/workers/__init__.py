"""Workers: how a tier is called. ``command`` runs a program; ``anthropic_api`` and
``openai_api`` call a provider's API.

Both take a ``Call`` and give back a ``Reply``; the turn pipeline does not care which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from burnless.config import Tier
from burnless.envelope import Envelope
from burnless.formats import WorkerOutput
from burnless.prompt import Prompt


@dataclass(frozen=True)
class Call:
    tier: Tier  # the effective tier (pinned command and model applied)
    prompt: Prompt  # exactly what is sent (already redacted where policy says so)
    session: str
    run_id: str
    workspace: Path
    state_dir: Path
    timeout: float
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # burnless's own additions
    redact: Callable[[str], str] | None = None  # applied to every line written to the log
    on_line: Callable[[str], None] | None = None  # the worker's latest output line (progress)


@dataclass(frozen=True)
class Reply:
    output: WorkerOutput
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False
    error: str = ""  # why the call failed, when it did

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.timed_out or self.interrupted

    def turn_status(self, envelope: Envelope | None) -> str:
        """The turn's status: the envelope's, unless the call itself says otherwise."""
        if self.failed:
            if envelope is not None and envelope.status == "ok":
                return "partial"  # it says ok, but the process failed
            return envelope.status if envelope is not None else "failed"
        if self.output.is_error:
            return "failed" if envelope is None or envelope.status == "ok" else envelope.status
        return envelope.status if envelope is not None else "ok"


def dispatch(call: Call) -> Reply:
    if call.tier.api == "openai":
        from burnless.workers import openai_api

        return openai_api.dispatch(call)
    if call.tier.api is not None:
        from burnless.workers import anthropic_api

        return anthropic_api.dispatch(call)
    from burnless.workers import command

    return command.dispatch(call)
