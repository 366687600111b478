"""The exception tree of burnless and the exit code each maps to.

    BurnlessError                 1  the task could not be carried out
    ├── RecordFailed              1  a call was made, but its record could not be written yet
    ├── UsageError                2  bad arguments; nothing dispatched
    │   └── ConfigError           2  bad configuration (file, line, key path)
    │       └── TierUnavailable   2  a tier's command is not on PATH
    ├── BudgetExceeded            4  a budget refused the call; nothing dispatched
    ├── PolicyRefused             5  policy refused the work; nothing sent
    ├── SessionBusy               6  the session's lock could not be taken
    └── Interrupted             130  Ctrl-C / SIGTERM; the worker's process group was killed

Outcomes that are not refusals (a worker that failed, an audit that failed) are not
exceptions: they come back as a ``RunResult`` whose ``exit_code`` says 1 or 3.
Exit codes are used only at the CLI edge (``burnless.cli``).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUDIT = 3
EXIT_BUDGET = 4
EXIT_POLICY = 5
EXIT_BUSY = 6
EXIT_INTERRUPTED = 130

# What each exit code means: `burnless --help` prints it, the README's table says the same.
EXIT_MEANINGS: dict[int, str] = {
    EXIT_OK: "success: status ok, audit passed",
    EXIT_FAILED: "the task failed or is partial (worker status, non-zero exit, timeout, "
                 "escalate)",
    EXIT_USAGE: "usage or configuration error; nothing dispatched",
    EXIT_AUDIT: "the audit failed: the worker's claims do not hold",
    EXIT_BUDGET: "refused by a budget; nothing dispatched",
    EXIT_POLICY: "refused by policy; nothing sent",
    EXIT_BUSY: "session busy (lock timeout, or a nested run on the session that called it)",
    EXIT_INTERRUPTED: "interrupted; the worker's process group was killed and the ledger "
                      "records it",
}


class BurnlessError(Exception):
    """Base of every error burnless raises on purpose."""

    exit_code = EXIT_FAILED


class RecordFailed(BurnlessError):
    """A call was made (and may have been paid for, or changed files) but its ledger record or
    capsule could not be written: a full disk, an immutable file. The call's journal keeps
    them; a later run writes them (``accounting.inflight``)."""


class UsageError(BurnlessError):
    """Bad arguments (a session id that is not one, an unknown tier...)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Invalid configuration. The message names the file, line and key path."""

    exit_code = EXIT_USAGE


class TierUnavailable(ConfigError):
    """A tier's command cannot be found; raised before anything is dispatched."""


class BudgetExceeded(BurnlessError):
    """A budget limit would be broken by the call; nothing was dispatched."""

    exit_code = EXIT_BUDGET


class PolicyRefused(BurnlessError):
    """Policy forbids sending this work anywhere configured; nothing was sent."""

    exit_code = EXIT_POLICY


class SessionBusy(BurnlessError):
    """Another run holds the session's lock."""

    exit_code = EXIT_BUSY


class Interrupted(BurnlessError):
    """The run was interrupted; the worker's process group was killed."""

    exit_code = EXIT_INTERRUPTED
