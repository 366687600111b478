"""The parsed-config cache never copies a secret written into the config."""

from __future__ import annotations

import os
import time

from burnless.config import load_config
from tests.conftest import Workspace

KEY = "sk-ant-api03-" + "Zx9" * 30


def test_a_config_holding_a_secret_is_not_cached(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: 'echo --x-api-key {KEY}'}}\n")
    old = time.time() - 60  # old enough for the cache (files edited in the last 2 s are not)
    os.utime(ws.state / "config.yaml", (old, old))
    for _ in range(2):
        assert load_config(cwd=ws.root).tiers["silver"].command.endswith(KEY)
    cache = ws.state / "cache" / "config.json"
    assert not cache.exists() or KEY not in cache.read_text()


def test_a_config_without_secrets_is_cached(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: echo}\n")
    old = time.time() - 60
    os.utime(ws.state / "config.yaml", (old, old))
    load_config(cwd=ws.root)
    assert (ws.state / "cache" / "config.json").exists()


def test_a_config_with_a_tier_env_secret_is_not_cached(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: echo, env: {DB_TOKEN: 'not-a-known-shape-123'}}\n")
    old = time.time() - 60
    os.utime(ws.state / "config.yaml", (old, old))
    load_config(cwd=ws.root)
    cache = ws.state / "cache" / "config.json"
    assert not cache.exists() or "not-a-known-shape-123" not in cache.read_text()
