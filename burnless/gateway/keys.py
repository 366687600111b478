"""Virtual keys for the gateway: named keys that clients send as their API key.

A key is ``blk_<id>_<secret>``: ``id`` (8 hex digits) finds its entry, ``secret`` (256 random
bits) proves it. Only ``sha256:<id>:<salt>:<digest>`` is stored, digest = SHA-256(salt ‖
secret) with a per-key random salt. A slow password hash (scrypt, PBKDF2) protects secrets a
person chose, which can be guessed; 256 random bits cannot be, so it would only add its cost to
every request (the whole check, with the stat that notices a revocation, takes about 5 µs;
``benchmarks/gateway_keys.py``; scrypt would take about 90 ms).

Keys live in two places, one set: ``.burnless/keys.json`` (mode 0600), which ``burnless keys
create|revoke`` manage, and ``gateway.keys`` in config.yaml (the same fields, for replicas that
share a config). While any key exists, every gateway request must carry a valid one; the
gateway re-reads the store when it changes, so a revoked key is refused from its next request.

Nothing here imports the HTTP stack: ``burnless keys`` stays light.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from burnless.accounting.budget import KeyLimits
from burnless.config import check_key, convert
from burnless.errors import ConfigError, UsageError
from burnless.settings import KEY_NAME_RE, LABEL_RE, Config, KeySettings
from burnless.yamlfile import Source

STORE_NAME = "keys.json"
PREFIX = "blk_"
HASH_RE = re.compile(r"sha256:([0-9a-f]{8}):([0-9a-f]{32}):([0-9a-f]{64})")
KEY_RE = re.compile(r"blk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
LOCK_TIMEOUT = 30.0


@dataclass(frozen=True)
class VirtualKey:
    """One key as the gateway checks it: its settings, and where it is defined."""

    name: str
    settings: KeySettings
    source: Path  # keys.json, or the config file that declares it

    @property
    def id(self) -> str:
        return self.settings.hash.split(":")[1]

    @property
    def limits(self) -> KeyLimits:
        s = self.settings
        return KeyLimits(self.name, s.max_cost_per_day, s.max_cost_per_month)

    def allows(self, tier: str) -> bool:
        return not self.settings.tiers or tier in self.settings.tiers

    def matches(self, secret: str) -> bool:
        _, _, salt, digest = self.settings.hash.split(":")
        return hmac.compare_digest(_digest(bytes.fromhex(salt), secret), digest)


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("ascii")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its hash: ``(blk_<id>_<secret>, sha256:<id>:<salt>:<digest>)``."""
    key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
    return f"{PREFIX}{key_id}_{secret}", f"sha256:{key_id}:{salt.hex()}:{_digest(salt, secret)}"


def looks_like_key(value: str) -> bool:
    """Whether a credential is a burnless virtual key (by its shape: it is never forwarded)."""
    return value.startswith(PREFIX)


# --------------------------------------------------------------------------- the store


def store_path(cfg: Config) -> Path:
    return cfg.state_dir / STORE_NAME


def read_store(path: Path, tiers: Mapping[str, object] | None = None) -> dict[str, KeySettings]:
    """The keys of ``keys.json`` (none when it does not exist). A damaged file is a
    ConfigError that says where: the gateway must not guess which keys are valid."""
    from burnless.storage.atomic import open_regular

    try:
        with open_regular(path) as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the virtual keys: {exc.strerror or exc}") from None
    src = Source(default_file=path)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: damaged (not JSON: {exc}); restore it or remove it and "
                          "create the keys again") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("keys"), dict):
        raise ConfigError(f"{path}: damaged (expected {{\"v\": 1, \"keys\": {{...}}}}); restore "
                          "it or remove it and create the keys again")
    out: dict[str, KeySettings] = {}
    for name, body in data["keys"].items():
        ks: KeySettings = convert(KeySettings, body, ("keys", name), src)
        check_key(name, ks, None, src, ("keys", name))  # a tier removed since: it never matches
        out[name] = ks
    return out


@contextmanager
def _locked(cfg: Config) -> Iterator[dict[str, KeySettings]]:
    """The store under its lock, for a change; the caller's changes to the dict are saved."""
    from burnless.storage.atomic import write_atomic
    from burnless.storage.locks import file_lock

    path = store_path(cfg)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cfg.state_dir / "keys.lock", LOCK_TIMEOUT):
        keys = read_store(path)
        before = dict(keys)
        yield keys
        if keys != before:
            body = {"v": 1, "keys": {n: _to_dict(k) for n, k in keys.items()}}
            write_atomic(path, orjson.dumps(body, option=orjson.OPT_INDENT_2), mode=0o600)


def _to_dict(k: KeySettings) -> dict[str, Any]:
    return {"hash": k.hash, "max_cost_per_day": k.max_cost_per_day,
            "max_cost_per_month": k.max_cost_per_month, "tiers": list(k.tiers),
            "labels": list(k.labels), "created": k.created}


def create(cfg: Config, name: str, *, max_cost_per_day: float | None = None,
           max_cost_per_month: float | None = None, tiers: tuple[str, ...] = (),
           labels: tuple[str, ...] = ()) -> tuple[str, VirtualKey]:
    """A new key named ``name`` in the store: the key (shown once, never stored) and its entry."""
    from burnless.runs import now_iso

    _check_args(cfg, name, max_cost_per_day, max_cost_per_month, tiers, labels)
    key, hashed = new_key()
    ks = KeySettings(hash=hashed, max_cost_per_day=max_cost_per_day,
                     max_cost_per_month=max_cost_per_month, tiers=tiers, labels=labels,
                     created=now_iso())
    if name in cfg.gateway.keys:
        raise UsageError(f"key {name!r} is already declared in {cfg.path} (gateway.keys); "
                         "choose another name")
    with _locked(cfg) as keys:
        if name in keys:
            raise UsageError(f"key {name!r} exists already; revoke it first "
                             f"(burnless keys revoke {name}) or choose another name")
        keys[name] = ks
    return key, VirtualKey(name, ks, store_path(cfg))


def _check_args(cfg: Config, name: str, day: float | None, month: float | None,
                tiers: tuple[str, ...], labels: tuple[str, ...]) -> None:
    if not KEY_NAME_RE.fullmatch(name):
        raise UsageError(f"key name {name[:80]!r}: 1-64 letters, digits, '_', '-', '.' "
                         "(not starting with '-' or '.')")
    for option, value in (("--budget", day), ("--monthly", month)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{option} {value:g}: expected a number of USD >= 0")
    for t in tiers:
        if t not in cfg.tiers:
            raise UsageError(f"--tiers: no tier named {t!r} in {cfg.path} (tiers: "
                             f"{', '.join(cfg.tiers)})")
    for label in labels:
        if not LABEL_RE.fullmatch(label):
            raise UsageError(f"--label {label[:80]!r}: 1-64 letters, digits, '_', '.', ':', "
                             "'/', '-'")


def revoke(cfg: Config, name: str) -> VirtualKey:
    """Remove key ``name`` from the store: the gateway refuses it from its next request."""
    if name in cfg.gateway.keys:
        raise UsageError(f"key {name!r} is declared in {cfg.path} (gateway.keys): remove it "
                         "there, then restart burnless serve")
    with _locked(cfg) as keys:
        ks = keys.pop(name, None)
    if ks is None:
        known = ", ".join(all_keys(cfg)) or "none"
        raise UsageError(f"no key named {name!r} in {store_path(cfg)} (keys: {known})")
    return VirtualKey(name, ks, store_path(cfg))


def all_keys(cfg: Config) -> dict[str, VirtualKey]:
    """Every key, from the config and the store (a name in both is a configuration error)."""
    out = {n: VirtualKey(n, k, cfg.path) for n, k in cfg.gateway.keys.items()}
    path = store_path(cfg)
    for name, ks in read_store(path).items():
        if name in out:
            raise ConfigError(f"{path}: key {name!r} is also declared in {cfg.path} "
                              "(gateway.keys); a name means one key: revoke one of them")
        out[name] = VirtualKey(name, ks, path)
    return out


# --------------------------------------------------------------------------- the gateway


def presented(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The virtual key a request carries, and a problem with it: ``X-Burnless-Key`` when sent
    (the client's own credentials then stay free for ``key: client`` tiers), else whichever of
    ``x-api-key`` and ``Authorization: Bearer`` has a key's shape, else the first of them
    (refused as invalid). Two different keys in one request are refused: which one pays must
    never be the server's guess."""
    explicit = (headers.get("x-burnless-key") or "").strip()
    api_key = (headers.get("x-api-key") or "").strip()
    auth = headers.get("authorization") or ""
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    sent = [v for v in (explicit, api_key, bearer) if v]
    shaped = {v for v in sent if looks_like_key(v)}
    if len(shaped) > 1:
        return None, ("two different virtual keys in one request (X-Burnless-Key, x-api-key, "
                      "Authorization); send one")
    if explicit:
        return explicit, None
    if shaped:
        return shaped.pop(), None
    return (sent[0] if sent else None), None


def client_credentials(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The caller's own credentials that a ``key: client`` tier forwards: its ``x-api-key`` and
    ``Authorization``, but never one that holds a virtual key."""
    out = []
    for name in ("x-api-key", "authorization"):
        value = headers.get(name)
        if not value:
            continue
        token = value[7:].strip() if value[:7].lower() == "bearer " else value.strip()
        if not looks_like_key(token):
            out.append((name, value))
    return tuple(out)


class Keyring:
    """The keys a running gateway accepts, re-read whenever ``keys.json`` changes.

    ``required`` once set stays set: a gateway that started with keys (or beyond loopback)
    refuses every request after the last key is revoked, instead of opening to everyone."""

    def __init__(self, cfg: Config, *, required: bool = False) -> None:
        self.cfg = cfg
        self.path = store_path(cfg)
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, VirtualKey] = {}
        self.error: str | None = None
        self.required = required
        self.reload()
        self.required = self.required or bool(self._by_id)

    def reload(self) -> None:
        """Read the store again if it changed since the last read (one stat when it did not)."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        except OSError as exc:
            self._fail(f"{self.path}: {exc.strerror or exc}")
            return
        if stamp == self._stamp:
            return
        try:
            keys = all_keys(self.cfg)
        except ConfigError as exc:
            self._fail(str(exc))
            return
        self._stamp, self.error = stamp, None
        self._by_id = {k.id: k for k in keys.values()}
        self.required = self.required or bool(self._by_id)

    def _fail(self, error: str) -> None:
        # Fail closed: a store that cannot be read accepts no key (a revocation is not undone).
        self._stamp, self.error, self._by_id = None, error, {}
        self.required = True

    def check(self, presented: str) -> VirtualKey | None:
        """The key ``presented`` is, or None (malformed, unknown, revoked, wrong secret)."""
        m = KEY_RE.fullmatch(presented)
        if m is None:
            return None
        found = self._by_id.get(m.group(1))
        return found if found is not None and found.matches(m.group(2)) else None

    def __len__(self) -> int:
        return len(self._by_id)


def spending(cfg: Config, names: list[str], day: str) -> dict[str, tuple[float, float]]:
    """Each key's settled spend on ``day`` (UTC) and in its month: the team's, from the shared
    state server when there is one (what the key's limits are checked against), else this
    workspace's, from the ledger index."""
    from burnless.accounting.index import spend_for

    if cfg.state.shared:
        from burnless.state import Unreachable, shared

        backend = shared(cfg)
        assert backend is not None
        try:
            return {name: backend.key_spend(name, day) for name in names}
        except Unreachable as exc:
            import logging

            logging.getLogger("burnless").warning(
                "%s; showing this workspace's spend of each key only", exc)
    out = {}
    for name in names:
        s = spend_for(cfg.state_dir, session="", day=day, key=name)
        out[name] = (s.key_day_cost, s.key_month_cost)
    return out
