"""Workers: how a tier is called. One seam for every kind of tier.

A kind is a module under ``burnless.workers`` named in ``kinds.KINDS`` whose ``WORKER`` implements
``Worker``: ``check`` (before anything is dispatched: the program is on PATH, the key is set)
and ``dispatch`` (a ``Call`` in, a ``Reply`` out). A tier with ``command:`` is of kind
``command``; a tier with ``api: <kind>`` is of that kind. Adding a kind of tier is one new
module and one line in ``KINDS``; the turn pipeline does not care which kind serves it.
Modules here stay light to import: a kind imports its SDK inside ``dispatch``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from burnless.errors import TierUnavailable
from burnless.workers.kinds import KINDS

if TYPE_CHECKING:  # annotations only: the config loader imports this package (kinds)
    from burnless.envelope import Envelope
    from burnless.formats import WorkerOutput
    from burnless.prompt import Prompt
    from burnless.settings import Config, Tier
    from burnless.vocab import Status


@dataclass(frozen=True)
class Call:
    """Everything a worker needs for one call."""
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
    max_cost: float | None = None  # USD the call may cost: stopped past it where it can be


@dataclass(frozen=True)
class Reply:
    """What a worker gave back: its output, exit, and how the call ended."""
    output: WorkerOutput
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False
    error: str = ""  # why the call failed, when it did

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.timed_out or self.interrupted

    def turn_status(self, envelope: Envelope | None) -> Status:
        """The turn's status: the envelope's, unless the call itself says otherwise."""
        if self.failed:
            if envelope is not None and envelope.status == "ok":
                return "partial"  # it says ok, but the process failed
            return envelope.status if envelope is not None else "failed"
        if self.output.is_error:
            return "failed" if envelope is None or envelope.status == "ok" else envelope.status
        return envelope.status if envelope is not None else "ok"


class Worker(Protocol):
    """A kind of tier."""

    def check(self, cfg: Config, tier: Tier) -> None:
        """Raise ``TierUnavailable`` (with how to fix it) when the tier cannot be called now."""
        ...

    def dispatch(self, call: Call) -> Reply:
        """Make the call; failures of the worker are a ``Reply``, not an exception."""
        ...


def kind_of(tier: Tier) -> str:
    return tier.api if tier.api is not None else "command"


def worker_for(tier: Tier) -> Worker:
    worker: Worker = importlib.import_module(KINDS[kind_of(tier)]).WORKER
    return worker


def dispatch(call: Call) -> Reply:
    return worker_for(call.tier).dispatch(call)


def check_available(cfg: Config, names: Sequence[str]) -> None:
    """Fail before dispatching anything if a tier of ``names`` cannot be called (a command not
    on PATH, an API tier without its key or SDK)."""
    for name in names:
        tier = cfg.tier(name)
        worker_for(tier).check(cfg, tier)


def require_key(cfg: Config, tier: Tier, package: str | None = None) -> None:
    """An API tier's check: its SDK (``package``, when it needs one) is installed and its key
    reaches the worker (the scrubbed-environment rule: ``pass_env`` or the tier's ``env``)."""
    import importlib.util

    name = tier.name
    if package is not None and importlib.util.find_spec(package) is None:
        raise TierUnavailable(
            f"tier {name!r}: api {tier.api} needs the {package} package: pip install {package}"
        )
    if tier.key == "client":
        raise TierUnavailable(
            f"tier {name!r} forwards the gateway caller's key (key: client): it serves "
            f"`burnless serve` only; a run has no caller's key to send (set tiers.{name}.key: "
            f"env and give it a key in {tier.api_key_env})")
    var = tier.api_key_env
    if tier.env_value(var):
        return
    if os.environ.get(var):
        how = (f"${var} is set here, but workers get a scrubbed environment: add {var} to "
               f"tiers.{name}.pass_env in {cfg.path}")
    else:
        how = (f"${var} is not set: export {var}=<your key> and list it in "
               f"tiers.{name}.pass_env (or set tiers.{name}.env.{var}) in {cfg.path}")
    raise TierUnavailable(f"tier {name!r}: api {tier.api} needs an API key; {how}")
