"""`burnless --help` is rendered once per version and width, then printed without typer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _help(tmp_path: Path, *flags: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "COLUMNS": columns}
    return subprocess.run([sys.executable, *flags, "-m", "burnless", "--help"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


def test_help_is_the_same_text_and_the_second_time_imports_no_typer(tmp_path: Path) -> None:
    first = _help(tmp_path)
    assert first.returncode == 0 and "Usage: burnless" in first.stdout
    assert "-h, --help" in first.stdout and "Exit codes:" in first.stdout
    cached = list((tmp_path / "cache" / "burnless").glob("help-*.txt"))
    assert len(cached) == 1
    second = _help(tmp_path, "-X", "importtime")
    assert second.stdout == first.stdout
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in second.stderr.splitlines()}
    assert "typer" not in imported and "burnless.cli" not in imported
    # the wrapping width is part of the key: a narrow terminal gets its own text
    narrow = _help(tmp_path, columns="60")
    assert narrow.returncode == 0 and narrow.stdout != first.stdout


def test_a_damaged_cache_is_rendered_again(tmp_path: Path) -> None:
    first = _help(tmp_path)
    (cached,) = (tmp_path / "cache" / "burnless").glob("help-*.txt")
    cached.write_bytes(b"\xff\xfe not utf-8")
    assert _help(tmp_path).stdout == first.stdout
