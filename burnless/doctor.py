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
    from burnless.safety.policy import Policy
    from burnless.workers import check_available
    from burnless.workers.command import adapt_argv

    policy = Policy(cfg)  # one redactor for every tier's command
    out = [_check("config", "ok", f"{cfg.path} ({len(cfg.tiers)} tiers; planner "
                                  f"{cfg.planner or 'none'}, executor {cfg.executor})"),
           _check("workspace", "ok", f"{cfg.workspace} (workers run here; state in "
                                     f"{cfg.state_dir})")]
    for name, tier in cfg.tiers.items():
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
    out.append(_writable(cfg.state_dir))
    out.extend(_cacheable(cfg))
    return out


def _writable(state_dir: Any) -> dict[str, str]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return _check("state dir", "fail", f"{state_dir} is not writable: {exc}")
    return _check("state dir", "ok", f"{state_dir} is writable")


def _cacheable(cfg: Any) -> list[dict[str, str]]:
    """Warn when the stable prefix is below the model's minimum cacheable length."""
    from burnless.accounting import pricing
    from burnless.accounting.tokens import estimate_tokens
    from burnless.prompt import header, project_block, read_prefix

    try:
        prefix_md = read_prefix(cfg.state_dir)
    except (OSError, UnicodeDecodeError):
        prefix_md = ""
    out = []
    for name, tier in cfg.tiers.items():
        if tier.local:
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
