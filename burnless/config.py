"""Configuration: find, load, merge and validate ``.burnless/config.yaml`` into typed records.

The dataclasses below are the schema: a key the YAML gives that is not a field is an error with
a did-you-mean, and values are checked against the field types. Every error names the file,
line and key path (``config.yaml:4: tiers.silver.comand: unknown key; did you mean 'command'?``).

Lookup order: ``--config`` / ``BURNLESS_CONFIG``, else ``.burnless/config.yaml`` found by walking
up from the cwd. ``$BURNLESS_HOME/config.yaml`` (``BURNLESS_HOME`` defaults to
``$XDG_CONFIG_HOME/burnless``) supplies defaults that the project file overrides, except its
``budget`` limits: those are the user's, for every project. A project can lower them, never
raise or remove them (a higher value is clamped with a warning, ``null`` is no project limit),
and while the user file sets one, every project's calls are also recorded in a ledger under
``$BURNLESS_HOME``, against which the user's ``max_cost_per_day`` is checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import math
import os
import re
import shlex
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless.errors import ConfigError, UsageError
from burnless.workers.kinds import API_KINDS
from burnless.yamlfile import Source, fail, kind_of, read_yaml

STATE_DIR = ".burnless"
CONFIG_NAME = "config.yaml"
FORMATS = ("auto", "claude-json", "claude-stream-json", "codex-jsonl", "gemini-json", "text")
PLACEHOLDERS = ("prefix_file", "prompt", "model", "session", "run_id")
PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
log = logging.getLogger("burnless")


@dataclass(frozen=True)
class PriceSettings:
    """A tier's price override, USD per million tokens; unset rates come from the table."""

    input: float | None = None
    output: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    cache_read: float | None = None

    def as_mapping(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Tier:
    name: str = ""
    command: str | None = None
    api: str | None = None
    model: str | None = None
    format: str = "auto"
    input: str = "stdin"
    timeout: float = 600.0
    max_output_tokens: int = 8192
    local: bool = False
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    price: PriceSettings | None = None
    base_url: str | None = None
    api_key_env: str = "ANTHROPIC_API_KEY"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command or "")

    @property
    def deterministic(self) -> bool:
        """A tier-0: local and free (a script, not a model)."""
        rates = self.price.as_mapping() if self.price else {}
        return self.local and bool(rates) and not any(rates.values())

    @property
    def uses_prefix_file(self) -> bool:
        return self.command is not None and "{prefix_file}" in self.command

    def env_value(self, name: str) -> str | None:
        """``name`` as this tier's worker sees it (the scrubbed-environment rule): the caller's
        value when ``pass_env`` lists it, else the tier's ``env``; None when unset or empty."""
        passed = os.environ.get(name) if name in self.pass_env else None
        return passed or self.env.get(name) or None


@dataclass(frozen=True)
class RuleSettings:
    tier: str = ""
    keywords: tuple[str, ...] = ()
    regex: str | None = None
    labels: tuple[str, ...] = ()
    min_chars: int | None = None
    max_chars: int | None = None
    cascade: bool = False
    name: str | None = None


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 3
    cooldown: float = 600.0


@dataclass(frozen=True)
class RoutingSettings:
    rules: tuple[RuleSettings, ...] = ()
    ladder: tuple[str, ...] = ()
    pin: bool = True
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


@dataclass(frozen=True)
class SessionSettings:
    lock_timeout: float = 600.0


@dataclass(frozen=True)
class CompactionSettings:
    max_context_tokens: int = 12000
    keep_recent: int = 6
    tier: str | None = None


@dataclass(frozen=True)
class BudgetSettings:
    max_cost_per_task: float | None = None
    max_cost_per_session: float | None = None
    max_cost_per_day: float | None = None
    max_calls_per_session: int | None = None

    @property
    def any_cost_limit(self) -> bool:
        return any(
            v is not None
            for v in (self.max_cost_per_task, self.max_cost_per_session, self.max_cost_per_day)
        )


@dataclass(frozen=True)
class AuditSettings:
    verify: tuple[str, ...] = ()
    strict: bool = False
    ignore: tuple[str, ...] = (".git", ".burnless", "node_modules", ".venv", "__pycache__")


@dataclass(frozen=True)
class CacheSettings:
    prefix_cache: bool = True
    session_state: str = "capsules"
    responses: bool = False
    ttl: float = 86400.0


@dataclass(frozen=True)
class PolicySettings:
    redact_secrets: bool = True
    sensitive_patterns: tuple[str, ...] = ()
    sensitive_paths: tuple[str, ...] = ()
    max_depth: int = 2


@dataclass(frozen=True)
class MetricsSettings:
    host: str = "127.0.0.1"
    port: int = 4356


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``workspace`` is the directory holding ``.burnless/``."""

    tiers: dict[str, Tier] = field(default_factory=dict)
    version: int = 1
    planner: str | None = None
    executor: str | None = None
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    compaction: CompactionSettings = field(default_factory=CompactionSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    path: Path = Path()
    workspace: Path = Path()
    # The limits of $BURNLESS_HOME/config.yaml (``budget`` is already clamped to them), and
    # where that user's spend across projects is recorded (None: the user file sets no limit).
    user_budget: BudgetSettings = field(default_factory=BudgetSettings)
    user_dir: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.workspace / STATE_DIR

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise UsageError(f"unknown tier {name!r}{_suggest(name, self.tiers)}; "
                             f"tiers defined in {self.path}: {', '.join(self.tiers)}") from None


# --------------------------------------------------------------------------- finding


def global_config_path() -> Path:
    home = os.environ.get("BURNLESS_HOME")
    if home:
        return Path(home) / CONFIG_NAME
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "burnless" / CONFIG_NAME


def find_config(start: Path | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The project config path: explicit › ``BURNLESS_CONFIG`` › walk up from ``start``."""
    chosen = explicit or os.environ.get("BURNLESS_CONFIG")
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
    """The workspace holding the config: the parent of ``.burnless`` (else the file's dir)."""
    parent = config_path.parent
    return parent.parent if parent.name == STATE_DIR else parent


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
    path: str | os.PathLike[str] | None = None, *, cwd: Path | None = None
) -> Config:
    """Find, read, merge (global defaults › project) and validate the configuration."""
    project = find_config(cwd, path)
    src = Source(default_file=project)
    glob = global_config_path()
    user_file = _is_file(glob) and glob.resolve() != project
    files = [glob, project] if user_file else [project]
    key = _fingerprint(files)
    cache = workspace_for(project) / STATE_DIR / "cache" / "config.json"
    hit = _cached(cache, key)
    if hit is not None:
        data, user = hit
        try:
            return build_config(data, src, project, user=user, user_file=glob)
        except ConfigError:
            pass  # said again below from the YAML itself, with line numbers
    user = read_yaml(glob, src) if user_file else {}
    user_src = Source(dict(src.lines), glob)  # the user file's own lines, for its errors
    data = _merge(user, read_yaml(project, src))
    cfg = build_config(data, src, project, user=user, user_file=glob, user_src=user_src)
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


def _store(cache: Path, key: list[Any] | None, data: dict[str, Any],
           user: dict[str, Any]) -> None:
    if key is None:
        return
    import orjson

    from burnless.storage.atomic import write_atomic

    try:
        blob = orjson.dumps({"key": key, "data": data, "user": user})
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, blob)
    except (OSError, TypeError):
        pass  # not JSON-representable, or a read-only workspace: parse the YAML each time


def load_config_data(data: dict[str, Any], path: Path) -> Config:
    """Validate an in-memory mapping (as if read from ``path``)."""
    return build_config(data, Source(default_file=path), path)


# --------------------------------------------------------------------------- validation


def build_config(
    data: dict[str, Any], src: Source, path: Path, *, user: dict[str, Any] | None = None,
    user_file: Path | None = None, user_src: Source | None = None,
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
        tier = _convert(Tier, {**body, "name": name}, ("tiers", name), src)
        tiers[name] = _check_tier(tier, ("tiers", name), src)
    cfg: Config = _convert(Config, raw, (), src)
    planner = cfg.planner if "planner" in raw else ("gold" if "gold" in tiers else None)
    executor = cfg.executor if cfg.executor is not None else (
        "silver" if "silver" in tiers else next(iter(tiers)))
    for key, value in (("planner", planner), ("executor", executor),
                       ("compaction.tier", cfg.compaction.tier)):
        if value is not None and value not in tiers:
            raise fail(src, tuple(key.split(".")),
                        f"names tier {value!r}, which is not defined{_suggest(value, tiers)}")
    ladder = cfg.routing.ladder or tuple(t for t in ("bronze", "silver", "gold") if t in tiers)
    for i, t in enumerate(cfg.routing.ladder):
        if t not in tiers:
            raise fail(src, ("routing", "ladder", str(i)),
                        f"names tier {t!r}, which is not defined{_suggest(t, tiers)}")
        if t in cfg.routing.ladder[:i]:
            raise fail(src, ("routing", "ladder", str(i)),
                        f"names tier {t!r} twice; a ladder climbs each rung once")
    for i, rule in enumerate(cfg.routing.rules):
        where = ("routing", "rules", str(i))
        if rule.tier not in tiers:
            raise fail(src, (*where, "tier"), f"names tier {rule.tier!r}, which is not "
                        f"defined{_suggest(rule.tier, tiers)}")
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
        user_budget = _convert(BudgetSettings, user["budget"], ("budget",), usrc)
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
        workspace=workspace_for(path),
        user_budget=user_budget,
        user_dir=user_file.parent if limited and user_file is not None else None,
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
    if tier.format not in FORMATS:
        raise fail(src, (*where, "format"),
                    f"unknown format {tier.format!r}{_suggest(tier.format, FORMATS)}; "
                    f"known: {', '.join(FORMATS)}")
    if tier.input not in ("stdin", "arg"):
        raise fail(src, (*where, "input"), f"must be 'stdin' or 'arg', not {tier.input!r}")
    if tier.timeout <= 0 or tier.max_output_tokens <= 0:
        raise fail(src, where, "timeout and max_output_tokens must be positive")
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
                            f"{_suggest(word, PLACEHOLDERS)}; known: "
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


def _convert(cls: Any, data: Any, path: tuple[str, ...], src: Source) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and value types."""
    if not isinstance(data, dict):
        raise fail(src, path, f"must be a mapping, not {kind_of(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    internal = ("path", "workspace", "user_budget", "user_dir")  # not settings: derived
    public = [n for n in fields if n not in ("name", "tiers", *internal)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key not in fields or (key in internal and cls is Config):
            raise fail(src, (*path, key), f"unknown key{_suggest(key, public)}")
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
        return _convert(tp, value, path, src)
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


def _suggest(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
