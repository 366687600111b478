"""The configuration's schema: what ``.burnless/config.yaml`` may say, as typed, frozen records.

``burnless.config`` finds, loads, merges and validates the files into these: a key the YAML
gives that is not a field is an error with a did-you-mean, and values are checked against the
field types. The comments on the fields are their documentation.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless.errors import UsageError

STATE_DIR = ".burnless"
CONFIG_NAME = "config.yaml"
FORMATS = ("auto", "claude-json", "claude-stream-json", "codex-jsonl", "gemini-json", "text")
TIER_KINDS = ("worker", "check")
PLACEHOLDERS = ("prefix_file", "prompt", "model", "session", "run_id")
AGENT_CLIS = ("claude", "codex", "gemini")
AGENT_FORMATS = ("claude-json", "claude-stream-json", "codex-jsonl", "gemini-json")
PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# The key variable of an api tier when `api_key_env` is not given.
DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
KEY_SOURCES = ("env", "client")  # `key: client` forwards the gateway caller's own key


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
    """A tier: the worker command or API model that serves it, and its limits."""
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
    api_key_env: str = ""  # "" = the kind's default (DEFAULT_KEY_ENV)
    max_cost_per_call: float | None = None  # USD one call may cost (enforced where it can be)
    fallback: tuple[str, ...] = ()  # tiers that serve when this one fails (gateway failover)
    key: str = "env"  # env: api_key_env; client: the gateway caller's own credentials

    def __post_init__(self) -> None:
        if not self.api_key_env:  # the kind's own variable (OPENAI_API_KEY for api: openai)
            object.__setattr__(self, "api_key_env",
                               DEFAULT_KEY_ENV.get(self.api or "", "ANTHROPIC_API_KEY"))
    # ``check``: a deterministic check script (the page audit), not a general worker. It
    # serves only the routing rules that name it (as the first rung of their cascade); it is
    # never the executor, the planner, the compactor, a rung of routing.ladder, or the local
    # tier policy hands sensitive work to.
    kind: str = "worker"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command or "")

    @property
    def agent_loop(self) -> bool:
        """An agent CLI (Claude Code, Codex, Gemini CLI): one call is many model requests."""
        if self.command is None:
            return False
        program = Path(self.argv[0]).name if self.argv else ""
        return program in AGENT_CLIS or self.format in AGENT_FORMATS

    @property
    def general(self) -> bool:
        """May serve any work (the definition every 'a check is not a worker' rule uses)."""
        return self.kind != "check"

    @property
    def deterministic(self) -> bool:
        """A tier-0: a check, or local and free (a script, not a model); it reads no plan."""
        rates = self.price.as_mapping() if self.price else {}
        return not self.general or (self.local and bool(rates) and not any(rates.values()))

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
    """A routing rule: its conditions (all must hold) and the tier it sends a task to."""
    tier: str = ""
    keywords: tuple[str, ...] = ()
    regex: str | None = None
    labels: tuple[str, ...] = ()
    min_chars: int | None = None
    max_chars: int | None = None
    cascade: bool = False
    name: str | None = None
    # false: keywords match the task's prose only, not a file path (`docs/architecture.md`
    # names a file; it does not ask for architecture work). True keeps `readme` matching
    # `README.md`.
    in_paths: bool = True


@dataclass(frozen=True)
class BreakerSettings:
    """When a tier's breaker opens (consecutive failures) and how long it stays open."""
    failures: int = 3
    cooldown: float = 600.0


@dataclass(frozen=True)
class EmbedSettings:
    """An embedding program for routing by example: texts on stdin, one vector per line out."""

    command: str = ""
    local: bool = False  # true: runs on this machine; may see sensitive tasks
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingSettings:
    """``routing``: rules, the ladder, pinning, the breaker, and routing by example."""
    rules: tuple[RuleSettings, ...] = ()
    ladder: tuple[str, ...] = ()
    pin: bool = True
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    # Routing by example: labelled tasks per tier (also read from .burnless/examples/<tier>.txt)
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    learn: bool = False  # also learn examples from the ledger's audited outcomes
    # Learned examples kept per tier (and as many counter-examples). Each learning event
    # rebuilds the learned index: ~0.4 s of CPU at 300 x 3 tiers x 2 kinds.
    learn_max: int = 300
    min_similarity: float = 0.15
    embed: EmbedSettings | None = None  # None: the built-in vectoriser (no model, no network)


@dataclass(frozen=True)
class SessionSettings:
    """``session``: how long a turn waits for the session's lock."""
    lock_timeout: float = 600.0


@dataclass(frozen=True)
class CompactionSettings:
    """``compaction``: when older capsules are folded, how many stay, and which tier folds them."""
    max_context_tokens: int = 12000
    keep_recent: int = 6
    tier: str | None = None


@dataclass(frozen=True)
class BudgetSettings:
    """``budget``: cost and call limits (None: no limit)."""
    max_cost_per_task: float | None = None
    max_cost_per_session: float | None = None
    max_cost_per_day: float | None = None
    max_calls_per_session: int | None = None
    # Seconds a shared reservation (state.backend: redis) outlives a process that stopped
    # renewing it (it died); None: the tier's timeout + 60 s.
    reservation_ttl: float | None = None

    @property
    def any_cost_limit(self) -> bool:
        return any(
            v is not None
            for v in (self.max_cost_per_task, self.max_cost_per_session, self.max_cost_per_day)
        )


@dataclass(frozen=True)
class AuditSettings:
    """``audit``: commands that verify a turn, strictness, and paths the audit ignores."""
    verify: tuple[str, ...] = ()
    strict: bool = False
    ignore: tuple[str, ...] = (".git", ".burnless", "node_modules", ".venv", "__pycache__")


@dataclass(frozen=True)
class CacheSettings:
    """``cache``: the stable prompt prefix, session state, and the response cache."""
    prefix_cache: bool = True
    session_state: str = "capsules"
    responses: bool = False
    ttl: float = 86400.0


@dataclass(frozen=True)
class PolicySettings:
    """``policy``: secret redaction, sensitive work, delegation depth, task size."""
    redact_secrets: bool = True
    sensitive_patterns: tuple[str, ...] = ()
    sensitive_paths: tuple[str, ...] = ()
    max_depth: int = 2
    max_task_bytes: int = 1 << 20  # a bigger task is refused before anything is sent


@dataclass(frozen=True)
class MetricsSettings:
    """``metrics``: where ``burnless serve`` listens."""
    host: str = "127.0.0.1"
    port: int = 4356


STATE_BACKENDS = ("redis://", "rediss://", "unix://")
NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class StateSettings:
    """Where budgets, breakers, pins, the response cache and ledger copies are shared:
    ``local`` (files under .burnless/, nothing shared) or a Redis URL."""

    backend: str = "local"  # local | redis://host:port/db | rediss://... | unix:///path.sock
    namespace: str = "burnless"  # key prefix, so several teams can share one server
    retention_days: float = 35.0  # ledger copies older than this are trimmed from the stream
    timeout: float = 2.0  # seconds to connect or answer before the server counts as unreachable

    @property
    def shared(self) -> bool:
        return self.backend != "local"

    @property
    def shown(self) -> str:
        """The backend as messages show it: credentials in the URL (user info, a password
        query parameter) are masked."""
        shown = re.sub(r"://[^/@]*@", "://***@", self.backend)
        return re.sub(r"(?i)(password=)[^&]*", r"\1***", shown)


@dataclass(frozen=True)
class KeySettings:
    """A gateway virtual key (``gateway.keys.NAME``; ``burnless keys create`` writes the same
    fields to ``.burnless/keys.json``). Only the key's salted hash is stored, never the key."""

    hash: str = ""  # sha256:<id>:<salt>:<digest>, as `burnless keys create --json` prints it
    max_cost_per_day: float | None = None  # USD per UTC day, on top of the workspace's budget
    max_cost_per_month: float | None = None  # USD per calendar month (UTC)
    tiers: tuple[str, ...] = ()  # the tiers its requests may use; empty: every tier
    labels: tuple[str, ...] = ()  # added to each of its requests' labels (routing, policy)
    created: str = ""


KEY_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
LABEL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}")  # a routing label, no comma


@dataclass(frozen=True)
class GatewaySettings:
    """``burnless serve`` as a gateway for the provider APIs (the README: "Use it with Claude
    Code / any OpenAI client")."""

    route_models: tuple[str, ...] = ()  # client model ids (globs) the router may re-route
    passthrough: str | None = None  # tier whose upstream serves any other model id
    affinity_ttl: float = 600.0  # seconds a session stays pinned after its last request
    max_sessions: int = 10000  # pins kept (least recently used dropped first)
    max_body_bytes: int = 32 * 1024 * 1024  # largest request body accepted (413 above)
    request_timeout: float = 30.0  # seconds a client has for a request's headers, and its body
    connect_timeout: float = 10.0  # seconds to connect to an upstream before failing over
    max_retry_wait: float = 10.0  # longest retry-after honoured by waiting (else fail over)
    # Virtual keys declared here (hash only), next to those of `burnless keys create`; while
    # any exists, every request must carry one.
    keys: dict[str, KeySettings] = field(default_factory=dict)


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
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    state: StateSettings = field(default_factory=StateSettings)
    path: Path = Path()
    workspace: Path = Path()
    # The limits of $BURNLESS_HOME/config.yaml (``budget`` is already clamped to them), and
    # where that user's spend across projects is recorded (None: the user file sets no limit).
    user_budget: BudgetSettings = field(default_factory=BudgetSettings)
    user_dir: Path | None = None
    # The project file's own limits, before the user's bound them: with a shared backend the
    # team's day limit is the project's, the user's bounds the user's spend only.
    project_budget: BudgetSettings = field(default_factory=BudgetSettings)

    @property
    def state_dir(self) -> Path:
        return self.workspace / STATE_DIR

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise UsageError(f"unknown tier {name!r}{suggest(name, self.tiers)}; "
                             f"tiers defined in {self.path}: {', '.join(self.tiers)}") from None


def suggest(word: str, candidates: Any) -> str:
    """``; did you mean 'x'?`` for the candidate closest to ``word``, or nothing."""
    import difflib  # only when something is misspelled

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
