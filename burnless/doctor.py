"""Workspace checks behind ``burnless doctor``: one dict per check (name, status, detail)."""

from __future__ import annotations

import tempfile
from typing import Any

from burnless.errors import ConfigError


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail}


def run_checks(config_path: str | None = None) -> list[dict[str, str]]:
    from burnless.config import load_config

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        return [_check("config", "fail", str(exc))]
    from burnless import agent_clis
    from burnless.safety.policy import Policy
    from burnless.workers import check_available
    from burnless.workers.command import adapt_argv

    policy = Policy(cfg)  # one redactor for every tier's command
    out = [_check("config", "ok", f"{cfg.path} ({len(cfg.tiers)} tiers; planner "
                                  f"{cfg.planner or 'none'}, executor {cfg.executor})"),
           _check("workspace", "ok", f"{cfg.workspace} (workers run here; state in "
                                     f"{cfg.state_dir})")]
    for name, tier in cfg.tiers.items():
        if tier.key == "client":  # a gateway upstream: the caller brings the key
            out.append(_check(f"tier {name}", "ok", f"api {tier.api}, model {tier.model}, "
                              "the gateway caller's own key (key: client; not for run)"))
            continue
        try:
            check_available(cfg, [name])  # the program on PATH; for API tiers, the SDK and key
        except ConfigError as exc:
            out.append(_check(f"tier {name}", "fail", str(exc)))
            continue
        if tier.api is not None:
            out.append(_check(f"tier {name}", "ok", f"api {tier.api}, model {tier.model}, "
                                                    f"key in ${tier.api_key_env}"))
            continue
        shown = " ".join(adapt_argv(tier.argv))
        masked = policy.mask(shown)
        out.append(_check(f"tier {name}", "ok", masked))
        if masked != shown:
            out.append(_check(f"tier {name}", "warn", "its command holds a secret: move it to "
                              "the tier's env or pass_env (any user can read a command line "
                              "with ps, and burnless pins commands in session.json)"))
        unpinned = agent_clis.model_warning(tier)
        if unpinned:
            out.append(_check(f"tier {name}", "warn", unpinned))
        flags = _claude_flags(name, adapt_argv(tier.argv))
        if flags is not None:
            out.append(flags)
    gemini = [n for n, t in cfg.tiers.items() if agent_clis.program(t) == "gemini"]
    if gemini:
        out.append(_gemini_context(cfg.workspace, gemini))
    out.append(_writable(cfg.state_dir))
    keys = _virtual_keys(cfg)
    if keys is not None:
        out.append(keys)
    if cfg.state.shared:
        out.append(_shared_state(cfg))
    out.extend(_cacheable(cfg))
    out.append(_resident())
    return out


def _resident() -> dict[str, str]:
    """Whether ``burnless daemon`` runs, and takes this burnless's runs."""
    from burnless import __version__, resident

    path = resident.socket_path()
    running = resident.pong(resident.ask(path, "PING", timeout=2.0))
    if running is None:
        return _check("resident process", "ok", "not running: each run imports burnless "
                      "(about 80 ms); `burnless daemon start` makes runs start about 3x faster")
    pid, version, _ = running
    if version != __version__:
        return _check("resident process", "warn", f"pid {pid} runs burnless {version}, "
                      f"not {__version__}: runs do not go through it (burnless daemon stop, "
                      "then start)")
    return _check("resident process", "ok", f"pid {pid} at {path}: runs go through it")


def _virtual_keys(cfg: Any) -> dict[str, str] | None:
    """The gateway's virtual keys (``keys.json`` and ``gateway.keys``): readable, and kept from
    other users. None when there are none."""
    from burnless.gateway.keys import all_keys, store_path

    name = "virtual keys"
    path = store_path(cfg)
    if not path.exists() and not cfg.gateway.keys:
        return None
    try:
        keys = all_keys(cfg)
    except ConfigError as exc:
        return _check(name, "fail", f"{exc}; `burnless serve` refuses to start until it is "
                                    "fixed")
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    if mode & 0o077:
        return _check(name, "warn", f"{path} is mode {mode:o}: other users can read the keys' "
                                    f"hashes; chmod 600 {path}")
    limited = sum(1 for k in keys.values() if k.limits.limited)
    return _check(name, "ok", f"{len(keys)} key(s), {limited} with limits of their own: every "
                              "gateway request must carry one")


def _shared_state(cfg: Any) -> dict[str, str]:
    """Whether the team's state server (``state.backend``) answers."""
    from burnless.errors import UsageError
    from burnless.state import Unreachable, shared

    name = "shared state"
    try:
        backend = shared(cfg)
        assert backend is not None
        backend.ping()
    except UsageError as exc:
        return _check(name, "fail", str(exc))
    except Unreachable as exc:
        return _check(name, "fail", f"{exc}; budgeted calls are refused until it answers")
    return _check(name, "ok", f"{backend.shown} (namespace {cfg.state.namespace}): budgets, "
                              "breakers, pins, the response cache and ledger copies are shared")


def _gemini_context(workspace: Any, tiers: list[str]) -> dict[str, str]:
    """Whether the Gemini CLI's project settings keep its context stable between calls."""
    from burnless.agent_clis import check_gemini_settings, settings_snippet

    check = check_gemini_settings(workspace)
    name = f"gemini context ({', '.join(tiers)})"
    fix = (f"add {settings_snippet()} to {check.path} (`burnless init --cli gemini` does), "
           "or every call re-bills what follows the CLI's changing context")
    if check.unreadable:
        return _check(name, "warn", f"{check.path}: {check.unreadable}; {fix}")
    if check.missing or check.overridden:
        off = ", ".join((*check.missing, *check.overridden))
        return _check(name, "warn", f"{off} not false: the CLI's context lists the directory "
                                    f"tree (every file a worker writes) or the skills in a "
                                    f"changing order; {fix}")
    return _check(name, "ok", f"{check.path} keeps the CLI's context stable")


def _claude_flags(name: str, argv: list[str]) -> dict[str, str] | None:
    """For a Claude Code tier: the flags it uses that the installed client does not accept
    (``claude --help``, read once per installed binary and cached)."""
    from burnless.config import global_config_path
    from burnless.workers import claude_code

    if not claude_code.is_claude(argv):
        return None
    known = claude_code.flags(argv[0], global_config_path().parent / "cache")
    if known is None:
        return _check(f"flags {name}", "warn", f"could not read `{argv[0]} --help`; the "
                      "tier's flags are not checked")
    missing = claude_code.missing_flags(argv, known)
    if missing:
        return _check(f"flags {name}", "fail", "the installed claude does not accept "
                      f"{', '.join(missing)} (not in `claude --help`; it would refuse every "
                      f"call): update Claude Code or remove them from tiers.{name}.command")
    return _check(f"flags {name}", "ok", f"claude accepts all {len(claude_code.used_flags(argv))}"
                  " flags of the tier")


def _writable(state_dir: Any) -> dict[str, str]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return _check("state dir", "fail", f"{state_dir} is not writable: {exc}")
    return _check("state dir", "ok", f"{state_dir} is writable")


RECENT_CALLS = 5  # calls per tier that the cache report reads
LEDGER_TAIL_BYTES = 4 << 20  # the end of the ledger is enough to find them, and stays fast


def _cacheable(cfg: Any) -> list[dict[str, str]]:
    """What each tier's provider cache holds: from the usage its last calls reported when the
    ledger has some, else (for a tier other than Claude Code, whose own system prompt and tool
    definitions come before burnless's prefix) whether burnless's stable prefix alone reaches
    the model's minimum cacheable length."""
    from burnless.accounting import pricing
    from burnless.accounting.tokens import estimate_tokens
    from burnless.prompt import header, project_block, read_prefix
    from burnless.workers import claude_code

    try:
        prefix_md = read_prefix(cfg.state_dir)
    except (OSError, UnicodeDecodeError):
        prefix_md = ""
    recent = _recent_calls(cfg.state_dir, set(cfg.tiers))
    out = []
    for name, tier in cfg.tiers.items():
        if tier.local:
            continue
        calls = recent.get(name, [])
        if calls:
            out.append(_cache_report(name, tier.model, calls))
            continue
        if tier.command is not None and claude_code.is_claude(tier.argv):
            out.append(_check(f"cache {name}", "ok", "no call recorded yet; Claude Code's own "
                              "system prompt and tools come before burnless's prefix and are "
                              "cached with it (doctor reports the real figures after a call)"))
            continue
        minimum = pricing.min_cacheable_tokens(tier.model)
        if minimum is None:
            continue
        role = "planner" if name == cfg.planner else "executor"
        tokens = estimate_tokens(header(role) + project_block(prefix_md))
        if tokens < minimum:
            out.append(_check(
                f"cache {name}", "warn",
                f"stable prefix is ~{tokens} tokens, below {tier.model}'s minimum cacheable "
                f"length ({minimum}): the provider cache can never hit on it alone; grow "
                f".burnless/prefix.md or accept uncached prefixes"))
        else:
            out.append(_check(f"cache {name}", "ok",
                              f"stable prefix ~{tokens} tokens >= minimum {minimum}"))
    return out


def _recent_calls(state_dir: Any, tiers: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The last ``RECENT_CALLS`` billed calls of each tier that reported tokens, newest last,
    from the end of the ledger."""
    import orjson

    from burnless.accounting.index import billed
    from burnless.accounting.ledger import ledger_path

    path = ledger_path(state_dir)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - LEDGER_TAIL_BYTES))
            data = f.read()
    except OSError:
        return {}
    lines = data.split(b"\n")
    if size > LEDGER_TAIL_BYTES:
        lines = lines[1:]  # the first line was cut by the seek
    found: dict[str, list[dict[str, Any]]] = {}
    for line in reversed(lines):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # an empty or torn line
        if not isinstance(rec, dict) or not billed(rec.get("status"), rec.get("cached")):
            continue
        tier, tokens = rec.get("tier"), rec.get("tokens")
        if tier not in tiers or not isinstance(tokens, dict):
            continue
        bucket = found.setdefault(str(tier), [])
        if len(bucket) < RECENT_CALLS:
            bucket.insert(0, rec)
    return found


def _cache_report(name: str, model: str | None, calls: list[dict[str, Any]]) -> dict[str, str]:
    """The cached prefix as the provider reported it: per call, the tokens read from the cache
    and written to it, and the share of input tokens that were cache reads."""
    from statistics import median

    def figure(rec: dict[str, Any], key: str) -> int:
        value = rec["tokens"].get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    reads = [figure(r, "cache_read") for r in calls]
    writes = [figure(r, "cache_write") for r in calls]
    inputs = [figure(r, "input") for r in calls]
    total_in = sum(reads) + sum(writes) + sum(inputs)
    share = sum(reads) / total_in if total_in else 0.0
    detail = (f"last {len(calls)} call(s){f' on {model}' if model else ''}: "
              f"{int(median(reads)):,} tokens read from the cache and {int(median(writes)):,} "
              f"written per call (median; the last read {reads[-1]:,}), "
              f"{share:.0%} of input tokens were cache reads")
    if len(calls) > 1 and not any(reads[1:]):
        return _check(f"cache {name}", "warn", detail + "; nothing was read back after the "
                      "first call: the prefix changes between calls, is below the model's "
                      "minimum cacheable length, or the provider does not cache it")
    return _check(f"cache {name}", "ok", detail)
