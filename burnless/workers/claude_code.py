"""What burnless knows about Claude Code (``claude``) as a worker: which flags the installed
client accepts, and the environment it runs in (``worker_env``: no auto memory, and no per-call
billing header in front of a prefix cache that is not Anthropic's).

Claude Code rejects an option it does not know (``error: unknown option '--x'``, so every call
of the tier would fail); ``flags`` reads ``claude --help`` once per installed binary (cached
under ``$BURNLESS_HOME/cache``) so ``doctor`` and ``init`` can say which flags a tier uses that
the client lacks. A few flags work without being listed in ``--help``: ``HIDDEN_FLAGS``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Accepted by Claude Code 2.1.x but not listed in its --help.
HIDDEN_FLAGS = frozenset({"--append-system-prompt-file", "--system-prompt-file"})
# The flags of burnless's lean tiers, with how many values each takes: what init may drop
# when the installed client lacks one (the tier still works, only less lean).
LEAN_FLAGS: Mapping[str, int] = {
    "--exclude-dynamic-system-prompt-sections": 0,
    "--disable-slash-commands": 0,
    "--strict-mcp-config": 0,
    "--tools": 1,
}
ATTRIBUTION_ENV = "CLAUDE_CODE_ATTRIBUTION_HEADER"
MEMORY_ENV = "CLAUDE_CODE_DISABLE_AUTO_MEMORY"
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
_HELP_TIMEOUT_S = 30


def is_claude(argv: Sequence[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "claude"


def flags(program: str, cache_dir: Path | None = None) -> frozenset[str] | None:
    """The long options ``program --help`` lists (plus ``HIDDEN_FLAGS``); None when it cannot
    be run. Cached per binary (its resolved path, size and mtime) in ``cache_dir``."""
    found = shutil.which(program)
    if found is None:
        return None
    real = Path(found).resolve()
    try:
        st = real.stat()
    except OSError:
        return None
    key = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    cached = (cache_dir / f"claude-help-{key}.txt") if cache_dir else None
    text: str | None = None
    if cached is not None:
        try:
            text = cached.read_text(encoding="utf-8")
        except OSError:
            text = None
    if text is None:
        try:
            p = subprocess.run([str(real), "--help"], capture_output=True, text=True,
                               timeout=_HELP_TIMEOUT_S, env=_help_env(), stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if p.returncode != 0 or not p.stdout.lstrip().startswith("Usage:"):
            return None  # not a help text: nothing is known, rather than every flag missing
        text = p.stdout
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(text, encoding="utf-8")
            except OSError:
                pass  # a read-only home only costs the next call another --help
    return frozenset(_FLAG.findall(text)) | HIDDEN_FLAGS


def _help_env() -> dict[str, str]:
    # --help reads no credentials and needs no network: nothing of the caller's beyond these.
    keep = ("PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER")
    return {k: v for k, v in os.environ.items() if k in keep}


def used_flags(argv: Sequence[str]) -> list[str]:
    """The long options a command passes (``--x`` and ``--x=value``), in order, once each."""
    seen: list[str] = []
    for arg in argv[1:]:
        if arg.startswith("--") and len(arg) > 2:
            name = arg.split("=", 1)[0]
            if name not in seen:
                seen.append(name)
    return seen


def missing_flags(argv: Sequence[str], known: frozenset[str]) -> list[str]:
    return [f for f in used_flags(argv) if f not in known]


def drop_flags(command: str, names: Sequence[str]) -> str:
    """``command`` (config text: one line, or a YAML folded scalar over several) without the
    lean flags ``names`` and their values; indentation and line structure are kept."""
    for name in names:
        arity = LEAN_FLAGS.get(name)
        if arity is None:
            continue
        value = r"""(?:=\S*|[ \t]+(?:"[^"]*"|'[^']*'|[^\s"']+))""" if arity else r"(?:=\S*)?"
        flag = rf"(?<![\w-]){re.escape(name)}{value}"
        command = re.sub(rf"(?m)^[ \t]*{flag}[ \t]*\n", "", command)  # alone on its line
        command = re.sub(rf"(?m)^([ \t]*){flag}[ \t]+", r"\1", command)  # first on its line
        command = re.sub(rf"[ \t]+{flag}(?=[ \t\n]|$)", "", command)  # after another word
    return command


def not_anthropic(base_url: str | None) -> bool:
    """Whether requests go to a server other than Anthropic's API (a gateway, a proxy, a
    simulator): its prefix cache does not know to skip Claude Code's per-call billing header."""
    if not base_url:
        return False
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host != "api.anthropic.com" and not host.endswith(".anthropic.com")


def worker_env(argv: Sequence[str], env: dict[str, str]) -> dict[str, str]:
    """The environment of a Claude Code worker, unless its tier set these variables itself:

    - ``CLAUDE_CODE_DISABLE_AUTO_MEMORY=1``. Claude Code's auto memory has the model keep
      notes under ``~/.claude/projects/…/memory/`` and load them into later calls: writes
      outside the working directory that the audit cannot see, prompts that change with
      whatever an earlier call chose to remember, and a session memory burnless keeps itself
      (plan and capsules). Its instructions are also about 3,000 tokens of the system prompt,
      read on every request (2.1.197 on Sonnet: 26.9k characters of system prompt with them,
      14.0k without).
    - ``CLAUDE_CODE_ATTRIBUTION_HEADER=0`` when it talks to a server other than Anthropic's.
      Claude Code's first system block (``x-anthropic-billing-header: …; cch=…``) is derived
      from the first user message, so it differs between calls; Anthropic's API ignores it
      when caching, any other prefix cache misses on every call because of it.
    """
    if not is_claude(argv):
        return env
    extra: dict[str, str] = {}
    if MEMORY_ENV not in env:
        extra[MEMORY_ENV] = "1"
    if ATTRIBUTION_ENV not in env and not_anthropic(env.get("ANTHROPIC_BASE_URL")):
        extra[ATTRIBUTION_ENV] = "0"
    return {**env, **extra} if extra else env
