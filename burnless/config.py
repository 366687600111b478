"""Configuration: find, load, merge and validate ``.burnless/config.yaml`` into typed records.

The schema is ``burnless.settings``' dataclasses: a key the YAML gives that is not a field is an
error with a did-you-mean, and values are checked against the field types. Every error names
the file, line and key path
(``config.yaml:4: tiers.silver.comand: unknown key; did you mean 'command'?``).

Lookup order: ``--config`` / ``BURNLESS_CONFIG``, else ``.burnless/config.yaml`` found by walking
up from the cwd. ``$BURNLESS_HOME/config.yaml`` (``BURNLESS_HOME`` defaults to
``$XDG_CONFIG_HOME/burnless``) supplies defaults that the project file overrides, except its
``budget`` limits: those are the user's, for every project. A project can lower them, never
raise or remove them (a higher value is clamped with a warning, ``null`` is no project limit),
and while the user file sets one, every project's calls are also recorded in a ledger under
``$BURNLESS_HOME``, against which the user's ``max_cost_per_day`` is checked.

The workspace (where workers run and state is written) is ``--workspace`` /
``BURNLESS_WORKSPACE``, else the project the cwd is in: the folder holding the config found by
walking up, or with an explicit config, the nearest folder up from the cwd holding a
``.burnless/`` directory, else the cwd. An explicit config only chooses the configuration: a
config shared by several projects (a CI file) never moves their state to its own folder.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import re
import shlex
import stat
import types
import typing
from pathlib import Path
from typing import Any

from burnless.errors import ConfigError, UsageError
from burnless.resident import home_dir
from burnless.settings import (
    CONFIG_NAME,
    FORMATS,
    KEY_NAME_RE,
    KEY_SOURCES,
    LABEL_RE,
    NAMESPACE_RE,
    PLACEHOLDERS,
    STATE_BACKENDS,
    STATE_DIR,
    TIER_KINDS,
    BudgetSettings,
    Config,
    GatewaySettings,
    KeySettings,
    PriceSettings,
    RoutingSettings,
    Tier,
    suggest,
)
from burnless.workers.kinds import API_KINDS
from burnless.yamlfile import Source, fail, kind_of, read_yaml

log = logging.getLogger("burnless")


# --------------------------------------------------------------------------- finding


def global_config_path() -> Path:
    return Path(home_dir()) / CONFIG_NAME


def explicit_config(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """The config named by the caller or ``BURNLESS_CONFIG`` (None: find it by walking up)."""
    chosen = explicit or os.environ.get("BURNLESS_CONFIG")
    return str(chosen) if chosen else None


def find_config(start: Path | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The project config path: explicit › ``BURNLESS_CONFIG`` › walk up from ``start``."""
    chosen = explicit_config(explicit)
    if chosen:
        p = Path(chosen).expanduser().resolve()
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{p}: is a directory; --config names the config file itself "
                              f"(such as {p / STATE_DIR / CONFIG_NAME})")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{p}: not a regular file; the config must be a YAML file")
        return p
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / STATE_DIR / CONFIG_NAME
        if _is_file(candidate):
            return candidate
    raise ConfigError(
        f"no {STATE_DIR}/{CONFIG_NAME} in {here} or any parent directory; "
        "run `burnless init` to create one, or pass --config"
    )


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a directory on the way we may not search: as if there were no file
        return False


def workspace_for(config_path: Path) -> Path:
    """The workspace holding a config found by walking up: the parent of its ``.burnless``."""
    parent = config_path.parent
    return parent.parent if parent.name == STATE_DIR else parent


def explicit_workspace(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The workspace named by ``--workspace`` / ``BURNLESS_WORKSPACE``: an existing directory."""
    chosen = explicit or os.environ.get("BURNLESS_WORKSPACE")
    if not chosen:
        return None
    p = Path(chosen).expanduser().resolve()
    if not p.is_dir():
        what = "does not exist" if not p.exists() else "is not a directory"
        raise UsageError(f"workspace {p} {what}; --workspace (or $BURNLESS_WORKSPACE) names "
                         "the project folder that holds (or will hold) .burnless/")
    return p


def project_of(start: Path | None = None) -> Path:
    """The nearest folder up from ``start`` (the cwd) holding a ``.burnless/`` directory; else
    ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        try:
            if (d / STATE_DIR).is_dir():
                return d
        except OSError:
            continue  # a directory on the way we may not search
    return here


def find_workspace(
    config_path: Path, *, start: Path | None = None,
    config: str | os.PathLike[str] | None = None,
    workspace: str | os.PathLike[str] | None = None,
) -> Path:
    """Where workers run and state goes (see the module docstring)."""
    ws = explicit_workspace(workspace)
    if ws is not None:
        return ws
    if explicit_config(config):
        return project_of(start)
    return workspace_for(config_path)


# --------------------------------------------------------------------------- loading


def _merge(
    base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    out = dict(base)
    if len(path) == 2 and path[0] == "tiers" and {"command", "api"} & over.keys():
        # Alternatives: a tier the project makes an api tier is no longer a command tier.
        out = {k: v for k, v in out.items() if k not in ("command", "api")}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, (*path, str(k)))
        else:
            out[k] = v
    return out


def load_config(
    path: str | os.PathLike[str] | None = None, *, cwd: Path | None = None,
    workspace: str | os.PathLike[str] | None = None,
) -> Config:
    """Find, read, merge (global defaults › project) and validate the configuration.

    ``path`` (or ``BURNLESS_CONFIG``) chooses the file; ``workspace`` (or
    ``BURNLESS_WORKSPACE``) the project; ``cwd`` is where discovery starts (default: the cwd).
    """
    ws_explicit = explicit_workspace(workspace)
    project = find_config(ws_explicit or cwd, path)
    ws = find_workspace(project, start=cwd, config=path, workspace=ws_explicit)
    src = Source(default_file=project)
    glob = global_config_path()
    user_file = _is_file(glob) and glob.resolve() != project
    files = [glob, project] if user_file else [project]
    key = _fingerprint(files)
    cache = ws / STATE_DIR / "cache" / "config.json"
    hit = _cached(cache, key)
    if hit is not None:
        data, user = hit
        try:
            return build_config(data, src, project, ws, user=user, user_file=glob)
        except ConfigError:
            pass  # said again below from the YAML itself, with line numbers
    user = read_yaml(glob, src) if user_file else {}
    user_src = Source(dict(src.lines), glob)  # the user file's own lines, for its errors
    data = _merge(user, read_yaml(project, src))
    cfg = build_config(data, src, project, ws, user=user, user_file=glob, user_src=user_src)
    _store(cache, key, data, user)
    return cfg


# Parsed YAML is cached as JSON next to the state, keyed by the config files' metadata, so a
# run does not import and run the YAML parser (~15 ms) when nothing changed. Validation still
# runs on every load; the cache only ever holds data that validated.


def _fingerprint(files: list[Path]) -> list[Any] | None:
    import time

    from burnless import __version__

    key: list[Any] = [__version__]
    for f in files:
        try:
            st = f.stat()
        except OSError:
            return None  # gone or unreadable: reading it says why
        if time.time_ns() - st.st_mtime_ns < 2_000_000_000:
            return None  # just edited: metadata alone cannot prove the next edit differs
        key.append([str(f), st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino])
    return key


def _cached(cache: Path, key: list[Any] | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if key is None:
        return None
    import orjson

    from burnless.storage.atomic import open_regular

    try:
        with open_regular(cache) as f:  # a FIFO planted here must not hang every run
            blob = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(blob, dict) or blob.get("key") != key:
        return None
    if not isinstance(blob.get("data"), dict) or not isinstance(blob.get("user"), dict):
        return None
    data: dict[str, Any] = blob["data"]
    user: dict[str, Any] = blob["user"]
    return data, user


# an env name that says its value is a credential (as ``safety.policy`` reads it)
_SECRET_NAME = re.compile(r"(?i)(?:^|[^a-z])(?:key|apikey|token|secret|password|passwd|pwd|pass"
                          r"|creds?|credentials?|auth)(?:$|[^a-z])")


def _store(cache: Path, key: list[Any] | None, data: dict[str, Any],
           user: dict[str, Any]) -> None:
    if key is None:
        return
    import orjson

    from burnless.storage.atomic import write_atomic

    if not cache.parent.parent.is_dir():
        return  # no state dir yet: a cache alone does not create one (`route` writes nothing)
    try:
        blob = orjson.dumps({"key": key, "data": data, "user": user})
        from burnless.safety.secrets import find_secrets, looks_random

        env_values = [v for tier in (data.get("tiers") or {}).values() if isinstance(tier, dict)
                      for k, v in (tier.get("env") or {}).items() if isinstance(v, str)
                      and (_SECRET_NAME.search(str(k)) or looks_random(v))]
        if env_values or find_secrets(blob.decode("utf-8")):
            return  # a secret written into the config is not copied to disk: parse each time
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, blob, mode=0o600)  # a copy of the config: it may hold a tier's env
    except (OSError, TypeError):
        pass  # not JSON-representable, or a read-only workspace: parse the YAML each time


def load_config_data(data: dict[str, Any], path: Path) -> Config:
    """Validate an in-memory mapping (as if read from ``path``)."""
    return build_config(data, Source(default_file=path), path)


# --------------------------------------------------------------------------- validation


def build_config(
    data: dict[str, Any], src: Source, path: Path, workspace: Path | None = None, *,
    user: dict[str, Any] | None = None, user_file: Path | None = None,
    user_src: Source | None = None,
) -> Config:
    """Validate ``data`` (the merged files); ``user`` is the user file's own content, whose
    budget limits bound the project's."""
    if "tiers" not in data:
        raise fail(src, (), "the 'tiers' section is required (at least one tier)")
    raw = dict(data)
    tiers_raw = raw.pop("tiers")
    if not isinstance(tiers_raw, dict) or not tiers_raw:
        raise fail(src, ("tiers",), "must be a mapping of tier names to tier settings")
    tiers: dict[str, Tier] = {}
    for key, body in tiers_raw.items():
        name = str(key)
        if isinstance(key, bool) or key is None:
            raise fail(src, ("tiers", name), "a tier name must be text; quote it in YAML "
                        "(on, off, yes, no and null are not names there)")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise fail(src, ("tiers", name), "a tier name is letters, digits, '_', '-', '.'")
        if not isinstance(body, dict):
            raise fail(src, ("tiers", name), f"must be a mapping, not {kind_of(body)}")
        if "name" in body:
            raise fail(src, ("tiers", name, "name"),
                        "unknown key (a tier's name is its key under 'tiers')")
        tier = convert(Tier, {**body, "name": name}, ("tiers", name), src)
        tiers[name] = _check_tier(tier, ("tiers", name), src)
    cfg: Config = convert(Config, raw, (), src)
    general = [name for name, t in tiers.items() if t.general]
    if not general:
        raise fail(src, ("tiers",), "every tier is kind: check; define a tier that does general "
                    "work (the executor)")
    # A tier named `plan` plans (init's no-tools planner), else `gold`.
    planner = cfg.planner if "planner" in raw else next(
        (t for t in ("plan", "gold") if t in general), None)
    executor = cfg.executor if cfg.executor is not None else (
        "silver" if "silver" in general else general[0])
    for key, value in (("planner", planner), ("executor", executor),
                       ("compaction.tier", cfg.compaction.tier)):
        if value is not None and value not in tiers:
            raise fail(src, tuple(key.split(".")),
                        f"names tier {value!r}, which is not defined{suggest(value, tiers)}")
        if value is not None and not tiers[value].general:
            raise fail(src, tuple(key.split(".")), _not_general(value))
    ladder = cfg.routing.ladder or tuple(t for t in ("bronze", "silver", "gold") if t in general)
    for i, t in enumerate(cfg.routing.ladder):
        if t not in tiers:
            raise fail(src, ("routing", "ladder", str(i)),
                        f"names tier {t!r}, which is not defined{suggest(t, tiers)}")
        if not tiers[t].general:
            raise fail(src, ("routing", "ladder", str(i)), _not_general(t))
        if t in cfg.routing.ladder[:i]:
            raise fail(src, ("routing", "ladder", str(i)),
                        f"names tier {t!r} twice; a ladder climbs each rung once")
    for i, rule in enumerate(cfg.routing.rules):
        where = ("routing", "rules", str(i))
        if rule.tier not in tiers:
            raise fail(src, (*where, "tier"), f"names tier {rule.tier!r}, which is not "
                        f"defined{suggest(rule.tier, tiers)}")
        if rule.regex is not None:
            try:
                re.compile(rule.regex)
            except re.error as exc:
                raise fail(src, (*where, "regex"), f"invalid regex: {exc}") from None
        for j, word in enumerate(rule.keywords):
            if not word.strip():
                raise fail(src, (*where, "keywords", str(j)), "is empty")
        if (rule.min_chars is not None and rule.max_chars is not None
                and rule.min_chars > rule.max_chars):
            raise fail(src, (*where, "min_chars"), f"is above max_chars ({rule.min_chars} > "
                        f"{rule.max_chars}): the rule could never match")
    for name, tier in tiers.items():
        for i, t in enumerate(tier.fallback):
            at = ("tiers", name, "fallback", str(i))
            if t not in tiers:
                raise fail(src, at, f"names tier {t!r}, which is not defined"
                            f"{suggest(t, tiers)}")
            if t == name:
                raise fail(src, at, "names the tier itself: a tier cannot be its own fallback")
            if t in tier.fallback[:i]:
                raise fail(src, at, f"names tier {t!r} twice")
    _check_gateway(cfg.gateway, tiers, src)
    _check_state(cfg, src)
    _check_examples(cfg.routing, tiers, src)
    for i, cmd in enumerate(cfg.audit.verify):
        problem = command_problem(cmd)
        if problem:
            raise fail(src, ("audit", "verify", str(i)), problem)
    for i, pat in enumerate(cfg.policy.sensitive_patterns):
        try:
            re.compile(pat)
        except re.error as exc:
            raise fail(src, ("policy", "sensitive_patterns", str(i)),
                        f"invalid regex: {exc}") from None
    if cfg.compaction.keep_recent < 0 or cfg.compaction.max_context_tokens < 1:
        raise fail(src, ("compaction",), "keep_recent must be >= 0, max_context_tokens >= 1")
    _check_ranges(cfg, src)
    user_budget = BudgetSettings()
    if user and "budget" in user:
        usrc = user_src or Source(default_file=user_file or path)
        user_budget = convert(BudgetSettings, user["budget"], ("budget",), usrc)
        _check_budget(user_budget, usrc)
    limited = any(v is not None for v in dataclasses.astuple(user_budget))
    return dataclasses.replace(
        cfg,
        tiers=tiers,
        planner=planner,
        executor=executor,
        routing=dataclasses.replace(cfg.routing, ladder=ladder),
        budget=_bounded(cfg.budget, user_budget, path, user_file),
        path=path,
        workspace=workspace if workspace is not None else workspace_for(path),
        user_budget=user_budget,
        user_dir=user_file.parent if limited and user_file is not None else None,
        project_budget=cfg.budget,
    )


def _bounded(budget: BudgetSettings, user: BudgetSettings, path: Path,
             user_file: Path | None) -> BudgetSettings:
    """The project's limits within the user's: the lower of the two where both are set, the
    user's where the project sets none (``null`` included), with a warning for a project value
    above the user's (it is not the one that applies)."""
    out = {}
    for f in dataclasses.fields(BudgetSettings):
        mine, theirs = getattr(budget, f.name), getattr(user, f.name)
        if theirs is not None and mine is not None and mine > theirs:
            log.warning("%s: budget.%s = %s is above the user limit %s in %s; %s applies "
                        "(a project can lower a user limit, not raise it)", path, f.name,
                        f"{mine:g}", f"{theirs:g}", user_file, f"{theirs:g}")
        out[f.name] = theirs if mine is None else mine if theirs is None else min(mine, theirs)
    return BudgetSettings(**out)


def _check_budget(budget: BudgetSettings, src: Source) -> None:
    for f in dataclasses.fields(budget):
        value = getattr(budget, f.name)
        if value is not None and value < 0:
            raise fail(src, ("budget", f.name), f"must be >= 0, not {value:g}")


def _check_gateway(gw: GatewaySettings, tiers: dict[str, Tier], src: Source) -> None:
    if gw.passthrough is not None:
        where = ("gateway", "passthrough")
        if gw.passthrough not in tiers:
            raise fail(src, where, f"names tier {gw.passthrough!r}, which is not defined"
                        f"{suggest(gw.passthrough, tiers)}")
        if tiers[gw.passthrough].api is None:
            raise fail(src, where, f"tier {gw.passthrough!r} is a command tier; the gateway "
                        "passes requests through to an api tier (api: anthropic or openai)")
    for i, glob in enumerate(gw.route_models):
        if not glob.strip():
            raise fail(src, ("gateway", "route_models", str(i)), "is empty")
    positive: list[tuple[str, float]] = [
        ("max_sessions", gw.max_sessions), ("max_body_bytes", gw.max_body_bytes),
        ("request_timeout", gw.request_timeout), ("connect_timeout", gw.connect_timeout),
    ]
    for key, value in positive:
        if value <= 0:
            raise fail(src, ("gateway", key), f"must be > 0, not {value:g}")
    for key, value in (("affinity_ttl", gw.affinity_ttl), ("max_retry_wait", gw.max_retry_wait)):
        if value < 0:
            raise fail(src, ("gateway", key), f"must be >= 0, not {value:g}")
    for name, ks in gw.keys.items():
        check_key(name, ks, tiers, src, ("gateway", "keys", name))


def check_key(name: str, ks: KeySettings, tiers: dict[str, Tier] | None, src: Source,
              where: tuple[str, ...]) -> None:
    """A virtual key's settings (``tiers``: the tiers it may name; None: not checked)."""
    from burnless.gateway.keys import HASH_RE

    if not KEY_NAME_RE.fullmatch(name):
        raise fail(src, where, "a key name is 1-64 letters, digits, '_', '-', '.'")
    if not HASH_RE.fullmatch(ks.hash):
        raise fail(src, (*where, "hash"), "must be the key's hash as `burnless keys create "
                   "--json` prints it (sha256:<id>:<salt>:<digest>), never the key itself")
    for field_name in ("max_cost_per_day", "max_cost_per_month"):
        value = getattr(ks, field_name)
        if value is not None and value < 0:
            raise fail(src, (*where, field_name), f"must be >= 0, not {value:g}")
    for i, t in enumerate(ks.tiers):
        if tiers is not None and t not in tiers:
            raise fail(src, (*where, "tiers", str(i)), f"names tier {t!r}, which is not "
                       f"defined{suggest(t, tiers)}")
    for i, label in enumerate(ks.labels):
        if not LABEL_RE.fullmatch(label):
            raise fail(src, (*where, "labels", str(i)), f"{label!r} is not a label (1-64 "
                       "letters, digits, '_', '.', ':', '/', '-')")


def _check_state(cfg: Config, src: Source) -> None:
    st = cfg.state
    if st.backend != "local" and not _redis_url(st.backend):
        raise fail(src, ("state", "backend"), f"must be 'local' or a Redis URL (redis://host:"
                   f"port/db, rediss://... for TLS, unix:///path.sock), not {st.shown!r}")
    if not NAMESPACE_RE.fullmatch(st.namespace):
        raise fail(src, ("state", "namespace"), f"{st.namespace!r} is not a namespace (1 to 64 "
                   "letters, digits, '_', '-', '.')")
    for key, value in (("retention_days", st.retention_days), ("timeout", st.timeout)):
        if value <= 0:
            raise fail(src, ("state", key), f"must be > 0, not {value:g}")
    ttl = cfg.budget.reservation_ttl
    if ttl is not None and ttl <= 0:
        raise fail(src, ("budget", "reservation_ttl"), f"must be > 0 seconds, not {ttl:g}")


def _redis_url(url: str) -> bool:
    """A URL the Redis client can connect to (checked without importing it)."""
    from urllib.parse import urlsplit

    if not url.startswith(STATE_BACKENDS):
        return False
    try:
        u = urlsplit(url)
        u.port  # noqa: B018  (raises ValueError for a port that is not one)
    except ValueError:
        return False
    if u.scheme == "unix":
        return bool(u.path)
    db = u.path.lstrip("/")
    return bool(u.hostname) and (db == "" or db.isdigit())


def _not_general(name: str) -> str:
    return (f"names tier {name!r}, which is kind: check; a check serves only the routing "
            "rules that name it (as the first rung of their cascade)")


def _check_examples(routing: RoutingSettings, tiers: dict[str, Tier], src: Source) -> None:
    for name, tasks in routing.examples.items():
        where = ("routing", "examples", name)
        if name not in tiers:
            raise fail(src, where, f"names tier {name!r}, which is not defined"
                        f"{suggest(name, tiers)}")
        for j, task in enumerate(tasks):
            if not task.strip():
                raise fail(src, (*where, str(j)), "is empty")
    if not 0.0 <= routing.min_similarity <= 1.0:
        raise fail(src, ("routing", "min_similarity"), "must be between 0 and 1 (a cosine "
                    f"similarity), not {routing.min_similarity:g}")
    if routing.learn_max < 1:
        raise fail(src, ("routing", "learn_max"), f"must be >= 1, not {routing.learn_max}")
    embed = routing.embed
    if embed is not None:
        problem = command_problem(embed.command)
        if problem:
            raise fail(src, ("routing", "embed", "command"), problem)
        if embed.timeout <= 0:
            raise fail(src, ("routing", "embed", "timeout"), "must be positive")
        for i, name in enumerate(embed.pass_env):
            if not ENV_NAME_RE.fullmatch(name):
                raise fail(src, ("routing", "embed", "pass_env", str(i)),
                            f"{name!r} is not an environment variable name (no '=', not empty)")


def _check_ranges(cfg: Config, src: Source) -> None:
    """Numbers that cannot be negative, and the few settings with one valid value."""
    if cfg.version != 1:
        raise fail(src, ("version",), f"unsupported config version {cfg.version}; "
                    "this burnless reads version 1")
    if cfg.cache.session_state != "capsules":
        raise fail(src, ("cache", "session_state"),
                    f"must be 'capsules' (the only session state), not {cfg.cache.session_state!r}")
    minimums: list[tuple[str, float | None]] = [
        ("routing.breaker.failures", cfg.routing.breaker.failures),
        ("routing.breaker.cooldown", cfg.routing.breaker.cooldown),
        ("session.lock_timeout", cfg.session.lock_timeout),
        ("cache.ttl", cfg.cache.ttl),
        ("policy.max_depth", cfg.policy.max_depth),
        ("policy.max_task_bytes", cfg.policy.max_task_bytes),
        ("metrics.port", cfg.metrics.port),
        *((f"budget.{f.name}", getattr(cfg.budget, f.name))
          for f in dataclasses.fields(cfg.budget)),
    ]
    for i, rule in enumerate(cfg.routing.rules):
        minimums += [(f"routing.rules.{i}.min_chars", rule.min_chars),
                     (f"routing.rules.{i}.max_chars", rule.max_chars)]
    for key, value in minimums:
        if value is not None and value < 0:
            raise fail(src, tuple(key.split(".")), f"must be >= 0, not {value:g}")
    if cfg.metrics.port > 65535:
        raise fail(src, ("metrics", "port"),
                    f"must be a TCP port (0-65535), not {cfg.metrics.port}")
    if not cfg.metrics.host.strip():
        raise fail(src, ("metrics", "host"), "is empty (127.0.0.1 serves this machine only)")


# An environment variable name: no '=' (it ends the name) and no NUL (it ends the string).
ENV_NAME_RE = re.compile(r"[^=\x00]+")


def _check_tier(tier: Tier, where: tuple[str, ...], src: Source) -> Tier:
    if (tier.command is None) == (tier.api is None):
        raise fail(src, where, "give exactly one of 'command' (a program to run) or 'api'")
    if tier.api is not None and tier.api not in API_KINDS:
        raise fail(src, (*where, "api"),
                    f"unknown api {tier.api!r}; known: {', '.join(API_KINDS)}")
    if tier.key not in KEY_SOURCES:
        raise fail(src, (*where, "key"), f"must be 'env' (the key in api_key_env) or "
                    f"'client' (the gateway caller's own key), not {tier.key!r}")
    if tier.key == "client" and tier.api is None:
        raise fail(src, (*where, "key"), "key: client needs an api tier (api: anthropic or "
                    "openai): a command tier has no caller's key to forward")

    if tier.format not in FORMATS:
        raise fail(src, (*where, "format"),
                    f"unknown format {tier.format!r}{suggest(tier.format, FORMATS)}; "
                    f"known: {', '.join(FORMATS)}")
    if tier.kind not in TIER_KINDS:
        raise fail(src, (*where, "kind"), f"must be 'worker' (the default) or 'check' (a "
                    f"deterministic check script), not {tier.kind!r}")
    if tier.input not in ("stdin", "arg"):
        raise fail(src, (*where, "input"), f"must be 'stdin' or 'arg', not {tier.input!r}")
    if tier.timeout <= 0 or tier.max_output_tokens <= 0:
        raise fail(src, where, "timeout and max_output_tokens must be positive")
    if tier.max_cost_per_call is not None and tier.max_cost_per_call <= 0:
        raise fail(src, (*where, "max_cost_per_call"),
                   f"must be a positive number of USD, not {tier.max_cost_per_call:g}")
    if tier.price is not None and any(v < 0 for v in tier.price.as_mapping().values()):
        raise fail(src, (*where, "price"), "prices must be >= 0")
    if tier.api is not None and not tier.model:
        raise fail(src, (*where, "model"),
                    "required for an api tier (the model id, e.g. claude-sonnet-4-5)")
    if tier.base_url is not None and not re.match(r"https?://[^/]", tier.base_url):
        raise fail(src, (*where, "base_url"),
                    f"must be an http:// or https:// URL, not {tier.base_url!r}")
    names: list[tuple[tuple[str, ...], str]] = [(("env", k), k) for k in tier.env]
    names += [(("pass_env", str(i)), k) for i, k in enumerate(tier.pass_env)]
    names.append((("api_key_env",), tier.api_key_env))
    for sub, name in names:
        if not ENV_NAME_RE.fullmatch(name):
            raise fail(src, (*where, *sub),
                        f"{name!r} is not an environment variable name (no '=', not empty)")
    for k, v in tier.env.items():
        if "\x00" in v:
            raise fail(src, (*where, "env", k), "contains a NUL byte")
    model = tier.model
    if tier.command is not None:
        problem = command_problem(tier.command)
        if problem:
            raise fail(src, (*where, "command"), problem)
        argv = shlex.split(tier.command)
        for word in re.findall(r"(?<!\$)\{([A-Za-z_][\w-]*)\}", tier.command):  # not ${VAR}
            if word not in PLACEHOLDERS:
                raise fail(src, (*where, "command"), f"unknown placeholder {{{word}}}"
                            f"{suggest(word, PLACEHOLDERS)}; known: "
                            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        has_prompt = any("{prompt}" in a for a in argv)
        if tier.input == "arg" and not has_prompt:
            raise fail(src, (*where, "command"), "input: arg needs a {prompt} placeholder")
        if tier.input == "stdin" and has_prompt:
            raise fail(src, (*where, "input"), "the command uses {prompt}: set input: arg")
        model = model or model_from_argv(argv)
    return dataclasses.replace(tier, model=model)


def command_problem(command: str) -> str | None:
    """Why ``command`` cannot be run as an argv (empty, unbalanced quotes, a NUL byte)."""
    if "\x00" in command:
        return "contains a NUL byte"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"cannot split into arguments: {exc}"
    return None if argv else "is empty"


def model_from_argv(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a in ("--model", "-m") and i + 1 < len(argv) and "{" not in argv[i + 1]:
            return argv[i + 1]
        if a.startswith("--model="):
            return a.split("=", 1)[1]
    if argv and Path(argv[0]).name == "ollama" and len(argv) >= 3 and argv[1] == "run":
        return argv[2]
    return None


def convert(cls: Any, data: Any, path: tuple[str, ...], src: Source) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and value types."""
    if not isinstance(data, dict):
        raise fail(src, path, f"must be a mapping, not {kind_of(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    internal = ("path", "workspace", "user_budget", "user_dir", "project_budget")  # derived
    public = [n for n in fields if n not in ("name", "tiers", *internal)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key not in fields or (key in internal and cls is Config):
            raise fail(src, (*path, key), f"unknown key{suggest(key, public)}")
        kwargs[key] = _value(hints[key], value, (*path, key), src)
    return cls(**kwargs)


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # ~0.3 ms each: once per class, not per load


def _value(tp: Any, value: Any, path: tuple[str, ...], src: Source) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _value(args[0], value, path, src)
    if tp is PriceSettings and isinstance(value, (int, float)) and not isinstance(value, bool):
        # `price: 0` is the zero-cost tier-0: one number sets the input and output rates.
        return PriceSettings(input=float(value), output=float(value))
    if dataclasses.is_dataclass(tp):
        return convert(tp, value, path, src)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str) and item_tp is str:
            value = [value]
        if not isinstance(value, list):
            raise fail(src, path, f"must be a list, not {kind_of(value)}")
        return tuple(_value(item_tp, v, (*path, str(i)), src) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(src, path, f"must be a mapping, not {kind_of(value)}")
        (_, val_tp) = typing.get_args(tp)
        if val_tp is not str:
            return {str(k): _value(val_tp, v, (*path, str(k)), src) for k, v in value.items()}
        for k, v in value.items():
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                hint = " (quote it in YAML: 'true', 'yes', '1.10')" if isinstance(
                    v, (bool, float)) else ""
                raise fail(src, (*path, str(k)), f"must be a string, not {kind_of(v)}{hint}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(src, path, f"must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(src, path, f"must be a whole number, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(src, path, f"must be a number, not {value!r}")
        if not math.isfinite(value):
            raise fail(src, path, f"must be a finite number, not {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (bool, float)):
            # YAML reads `on`/`yes`/`no` as booleans and `4.10` as the number 4.1.
            raise fail(src, path, f"must be a string, not {kind_of(value)} ({value!r}); "
                        "quote it in YAML")
        if not isinstance(value, (str, int)):
            raise fail(src, path, f"must be a string, not {kind_of(value)}")
        return str(value)
    raise AssertionError(f"unhandled config type {tp!r}")  # pragma: no cover
