"""`burnless init` over whatever is already there: a file named .burnless, a config of the
user's own, a broken symlink, an existing prefix; it never loses what the user wrote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson

from burnless.config import load_config
from tests.conftest import clean, honest_argv


def init(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*honest_argv(), "init", *args], cwd=root, capture_output=True,
                          text=True, timeout=30)


def test_init_where_burnless_is_a_file(tmp_path: Path) -> None:
    (tmp_path / ".burnless").write_text("my notes")
    p = init(tmp_path)
    clean(p)
    assert p.returncode == 2 and "is not a directory" in p.stderr
    assert (tmp_path / ".burnless").read_text() == "my notes"


def test_init_never_loses_the_users_config(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "config.yaml").write_text("mine: 1\n")
    (state / "prefix.md").write_text("my prefix\n")
    p = init(tmp_path)
    assert p.returncode == 2 and "already exists" in p.stderr
    assert (state / "config.yaml").read_text() == "mine: 1\n"
    assert init(tmp_path, "--force").returncode == 0
    assert (state / "config.yaml.bak").read_text() == "mine: 1\n"
    assert (state / "prefix.md.bak").read_text() == "my prefix\n"
    # The user edits again and forces again: the first backup is still there.
    (state / "config.yaml").write_text("mine: 2\n")
    assert init(tmp_path, "--force").returncode == 0
    assert (state / "config.yaml.bak").read_text() == "mine: 1\n"
    assert (state / "config.yaml.bak.1").read_text() == "mine: 2\n"
    # Forcing over an untouched example keeps no copy of it.
    assert init(tmp_path, "--force").returncode == 0
    assert not (state / "config.yaml.bak.2").exists()
    assert (state / "prefix.md.bak").read_text() == "my prefix\n"


def test_init_over_a_broken_symlink_or_directory(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "config.yaml").symlink_to(tmp_path / "dotfiles" / "burnless.yaml")
    p = init(tmp_path)
    assert p.returncode == 2 and "already exists" in p.stderr
    p = init(tmp_path, "--force", "--json")
    clean(p)
    assert p.returncode == 2 and "not a regular file" in orjson.loads(p.stdout)["error"]
    assert (state / "config.yaml").is_symlink()
    (state / "config.yaml").unlink()
    (state / "config.yaml").mkdir()
    p = init(tmp_path, "--force")
    clean(p)
    assert p.returncode == 2 and "not a regular file" in p.stderr


def test_init_keeps_an_existing_prefix_and_writes_a_loadable_config(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "prefix.md").write_text("my prefix\n")
    assert init(tmp_path).returncode == 0
    assert (state / "prefix.md").read_text() == "my prefix\n"
    assert set(load_config(cwd=tmp_path).tiers) >= {"gold", "silver", "bronze"}
