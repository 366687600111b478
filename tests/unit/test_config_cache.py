"""The parsed-config cache: never copies a secret written into the config; used, but not trusted
when damaged, from another version or older than an edit; an unusable cache costs only speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from burnless.config import load_config
from tests.conftest import OK, Workspace

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


def age(path: Path, seconds: float = 60) -> None:
    """Backdate ``path`` so the parsed-config cache may hold it."""
    t = time.time() - seconds
    os.utime(path, (t, t))



# --------------------------------------------------------------------------- damage, edits


def cache_file(ws: Workspace) -> Path:
    return ws.state / "cache" / "config.json"


def test_cache_is_used_and_survives_damage(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    load_config(cwd=ws.root)
    assert cache_file(ws).is_file()
    for junk in (b"", b"{not json", b"[]", b'{"key": 1}', b'{"key": null, "data": []}'):
        cache_file(ws).write_bytes(junk)
        assert set(load_config(cwd=ws.root).tiers) == {"silver"}


def test_cache_from_another_version_or_with_bad_data_is_not_trusted(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    load_config(cwd=ws.root)
    blob = orjson.loads(cache_file(ws).read_bytes())
    # Same key, data that no longer validates (a cache written by an older burnless):
    # the YAML is read again, and it is fine.
    cache_file(ws).write_bytes(orjson.dumps({"key": blob["key"], "data": {"tiers": {}}}))
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    # Another version's key: ignored.
    blob["key"][0] = "0.0.0-other"
    blob["data"]["tiers"]["gold"] = {"command": "stale"}
    cache_file(ws).write_bytes(orjson.dumps(blob))
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}


def test_edit_within_the_same_second_is_seen(ws: Workspace) -> None:
    """An edit that keeps size and mtime (coarse clocks, `cp -p`, `touch -r`) still shows."""
    cfg_path = ws.state / "config.yaml"
    ws.config("tiers:\n  silver: {command: aaaa}\n")
    age(cfg_path)
    assert load_config(cwd=ws.root).tiers["silver"].command == "aaaa"
    assert cache_file(ws).is_file()
    st = cfg_path.stat()
    ws.config("tiers:\n  silver: {command: bbbb}\n")
    os.utime(cfg_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cfg_path.stat().st_size == st.st_size
    assert load_config(cwd=ws.root).tiers["silver"].command == "bbbb"


def test_a_freshly_written_config_is_not_cached(ws: Workspace) -> None:
    ws.config(OK)
    load_config(cwd=ws.root)
    assert not cache_file(ws).exists()


def test_unusable_cache_dir_costs_only_speed(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    (ws.state / "cache").write_text("a file where the cache dir goes")
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    (ws.state / "cache").unlink()
    cache_file(ws).mkdir(parents=True)  # a directory where the cache file goes
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}


def test_a_fifo_in_place_of_the_cache_does_not_hang(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    cache_file(ws).parent.mkdir(parents=True)
    os.mkfifo(cache_file(ws))
    p = ws.run("route", "x", timeout=20)
    assert p.returncode == 0 and p.stdout.strip() == "silver"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_cache_dir(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    (ws.state / "cache").mkdir()
    (ws.state / "cache").chmod(0o555)
    try:
        assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    finally:
        (ws.state / "cache").chmod(0o755)
