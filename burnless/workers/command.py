"""Command tiers: a worker program run as a subprocess (Claude Code, Codex, Ollama, a script).

The prompt goes on stdin (or replaces ``{prompt}`` with ``input: arg``). When the command uses
``{prefix_file}``, the stable prefix is written to a content-addressed file and only the
context and task go on stdin, so the prefix is not sent twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import orjson

from burnless import process
from burnless.errors import TierUnavailable, UsageError
from burnless.formats import parse_output
from burnless.safety.environment import scrubbed_env
from burnless.settings import PLACEHOLDER_RE, Config, Tier
from burnless.storage.atomic import write_atomic
from burnless.workers import Call, Reply, claude_code

# Linux refuses a single argument longer than MAX_ARG_STRLEN (32 pages).
MAX_ARG_BYTES = 131072 - 1


def adapt_argv(argv: list[str]) -> list[str]:
    """Make known agent CLIs print machine-readable output with usage.

    ``claude --model X`` (the seed config) runs interactively and reports no usage; burnless
    runs it as ``claude -p --output-format json --model X``. Likewise ``codex exec`` gets
    ``--json`` and ``gemini`` gets ``--output-format json``. Explicit flags are left alone.
    """
    if not argv:
        return argv
    prog = Path(argv[0]).name
    out = list(argv)
    if prog == "claude":
        if not {"-p", "--print"} & set(out):
            out.insert(1, "-p")
        if not any(a == "--output-format" or a.startswith("--output-format=") for a in out):
            out += ["--output-format", "json"]
        elif "stream-json" in out and "--verbose" not in out:
            out.append("--verbose")
    elif prog == "codex" and len(out) > 1 and out[1] == "exec" and "--json" not in out:
        out.insert(2, "--json")
    elif prog == "gemini" and not any(a.startswith("--output-format") or a == "-o" for a in out):
        out += ["--output-format", "json"]
    return out


def prefix_file(state_dir: Path, text: str) -> Path:
    """The stable prefix as a content-addressed file: the same prefix is the same file."""
    data = text.encode("utf-8")
    path = state_dir / "cache" / "prefix" / f"{hashlib.sha256(data).hexdigest()[:32]}.md"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    return path


def build(call: Call) -> tuple[list[str], bytes | None]:
    """argv and stdin bytes for a call."""
    tier = call.tier
    prompt = call.prompt
    pfile = prefix_file(call.state_dir, prompt.stable_prefix) if tier.uses_prefix_file else None
    body = (prompt.context + prompt.task) if pfile is not None else prompt.text
    values = {
        "prefix_file": str(pfile) if pfile is not None else "",
        "model": tier.model or "",
        "session": call.session,
        "run_id": call.run_id,
        "prompt": body,
    }
    if tier.input == "arg" and len(body.encode("utf-8")) > MAX_ARG_BYTES:
        raise UsageError(
            f"tier {tier.name!r}: the prompt is {len(body.encode('utf-8'))} bytes, too long for "
            f"one command-line argument (limit {MAX_ARG_BYTES}); use input: stdin"
        )
    argv = [PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], a) for a in adapt_argv(tier.argv)]
    return argv, (body.encode("utf-8") if tier.input == "stdin" else None)


class CostWatch:
    """Stops a Claude Code ``stream-json`` call once the usage it reports, priced, passes the
    call's ceiling (``max_cost_per_call``, or what its budget reservation holds)."""

    def __init__(self, tier: Tier, ceiling: float) -> None:
        self.tier = tier
        self.ceiling = ceiling
        self.spent = 0.0
        self._messages: dict[str, float] = {}

    def __call__(self, line: bytes) -> str | None:
        if b'"assistant"' not in line or b'"usage"' not in line:
            return None
        from burnless.accounting import pricing
        from burnless.formats.claude import usage_event

        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        event = usage_event(obj) if isinstance(obj, dict) else None
        if event is None:
            return None
        mid, model, tokens = event
        price = pricing.tier_price(self.tier, model)
        if price is None:
            return None
        cost = pricing.cost_usd(tokens, price)
        key = mid or f"#{len(self._messages)}"  # no id: counted as a message of its own
        before = self._messages.get(key, 0.0)
        if cost > before:  # a message's usage only grows; a smaller figure changes nothing
            self._messages[key] = cost
            self.spent += cost - before  # a running total: summing every event is quadratic
        if self.spent > self.ceiling:
            return (f"stopped: the usage it reported so far costs ${self.spent:.4f}, past the "
                    f"call's ceiling of ${self.ceiling:.4f} (max_cost_per_call or the budget "
                    "it reserved)")
        return None


def streams_usage(tier: Tier, argv: list[str]) -> bool:
    """Whether the call prints its usage as it goes (Claude Code ``stream-json``)."""
    return tier.format == "claude-stream-json" or (
        bool(argv) and Path(argv[0]).name == "claude" and "stream-json" in argv)


def dispatch(call: Call) -> Reply:
    argv, stdin = build(call)
    call.log_path.parent.mkdir(parents=True, exist_ok=True)
    result = process.run(
        argv,
        cwd=call.workspace,
        env=claude_code.worker_env(argv, scrubbed_env(call.tier, call.env)),
        stdin=stdin,
        timeout=call.timeout,
        log_path=call.log_path,
        redact=call.redact,
        on_line=call.on_line,
        watch=CostWatch(call.tier, call.max_cost) if call.max_cost is not None
        and streams_usage(call.tier, argv) else None,
    )
    output = parse_output(result.stdout, call.tier.format, stderr=result.stderr_tail)
    if result.log_error:  # the call went on; what it printed is in the answer, not the log
        output = dataclasses.replace(output, findings=(
            *output.findings, f"the run log could not be written whole: {result.log_error}"))
    error = ""
    if result.start_error:
        error = result.start_error
    elif result.stopped:
        error = result.stopped
    elif result.timed_out:
        error = f"timed out after {call.timeout:g}s; process group killed"
    elif result.interrupted:
        error = "interrupted; process group killed"
    elif result.exit_code != 0:
        # The error the worker reported (a 401, a missing key variable) says why; its last
        # stderr line is often a banner ("Reading prompt from stdin...") or a brace.
        tail = output.error or (result.stderr_tail.strip().splitlines() or [""])[-1]
        if call.redact is not None:
            tail = call.redact(tail)  # mask, then cut: a cut secret could no longer be found
        error = f"exit {result.exit_code}" + (f": {tail[:200]}" if tail else "")
    if error and call.redact is not None:
        error = call.redact(error)
    return Reply(
        output=output,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        timed_out=result.timed_out,
        interrupted=result.interrupted,
        error=error,
    )


def check(cfg: Config, tier: Tier) -> None:
    """The tier's program can be run: on PATH, or an executable file the command names."""
    if tier.command is None:
        return
    program = tier.argv[0]
    if PLACEHOLDER_RE.search(program):
        return
    problem = "not found"
    if os.sep in program:
        candidate = (cfg.workspace / program) if not os.path.isabs(program) else Path(program)
        if candidate.is_dir():
            problem = f"is a directory ({candidate})"
        elif candidate.is_file():
            if os.access(candidate, os.X_OK):
                return
            problem = (f"is not executable ({candidate}; chmod +x it, or run it with its "
                       "interpreter, e.g. python3 script.py)")
    elif shutil.which(program):
        return
    raise TierUnavailable(
        f"tier {tier.name!r}: command {program!r} {problem} (from {tier.command!r}). "
        f"Install it or put it on PATH, or change tiers.{tier.name}.command in {cfg.path}"
    )


class CommandWorker:
    """A program run as a subprocess (Claude Code, Codex, Gemini CLI, Ollama, a script)."""

    check = staticmethod(check)
    dispatch = staticmethod(dispatch)


WORKER = CommandWorker()
