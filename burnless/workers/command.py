"""Command tiers: a worker program run as a subprocess (Claude Code, Codex, Ollama, a script).

The prompt goes on stdin (or replaces ``{prompt}`` with ``input: arg``). When the command uses
``{prefix_file}``, the stable prefix is written to a content-addressed file and only the
context and task go on stdin, so the prefix is not sent twice.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Callable
from pathlib import Path

from burnless import process
from burnless.config import PLACEHOLDER_RE, Tier
from burnless.errors import UsageError
from burnless.formats import parse_output
from burnless.storage.atomic import write_atomic
from burnless.workers import Call, Reply

# Linux refuses a single argument longer than MAX_ARG_STRLEN (32 pages).
MAX_ARG_BYTES = 131072 - 1
KEPT_ENV = ("PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER", "SHELL")


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


def scrubbed_env(tier: Tier, extra: dict[str, str]) -> dict[str, str]:
    """PATH, HOME, LANG/LC_*, TERM, TMPDIR, USER, SHELL + the tier's env and pass_env."""
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV or k.startswith("LC_")}
    env.update(tier.env)
    for name in tier.pass_env:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


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


def dispatch(call: Call) -> Reply:
    argv, stdin = build(call)
    call.log_path.parent.mkdir(parents=True, exist_ok=True)
    result = process.run(
        argv,
        cwd=call.workspace,
        env=scrubbed_env(call.tier, call.env),
        stdin=stdin,
        timeout=call.timeout,
        log_path=call.log_path,
        redact=call.redact,
        on_line=call.on_line,
    )
    output = parse_output(result.stdout, call.tier.format)
    error = ""
    if result.start_error:
        error = result.start_error
    elif result.timed_out:
        error = f"timed out after {call.timeout:g}s; process group killed"
    elif result.interrupted:
        error = "interrupted; process group killed"
    elif result.exit_code != 0:
        tail = (result.stderr_tail.strip().splitlines() or [""])[-1]
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


def run_verify_command(
    cmd: str, workspace: Path, tier: Tier, log_path: Path, redact: Callable[[str], str] | None
) -> tuple[int | None, str]:
    """Run an ``audit.verify`` command like a worker (argv, scrubbed env, its own group).

    Returns the exit code (None on timeout) and the last line it printed.
    """
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        return 2, f"cannot split command: {exc}"
    if not argv:
        return 2, "empty command"
    res = process.run(argv, cwd=workspace, env=scrubbed_env(tier, {}), timeout=tier.timeout,
                      log_path=log_path, redact=redact)
    if res.interrupted:  # Ctrl-C stops the run, not just this command (its group is killed)
        raise KeyboardInterrupt
    tail = (res.stderr_tail or res.stdout).strip().splitlines()
    last = tail[-1] if tail else res.start_error
    return res.exit_code, (redact(last) if redact is not None else last)[:200]
