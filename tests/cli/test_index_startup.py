"""Start-up: the SQLite index is imported only by the commands that read it."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.conftest import Workspace, fake


def imported(ws: Workspace, *args: str) -> list[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", *args],
                       cwd=ws.root, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return [ln.rsplit("|", 1)[-1].strip() for ln in p.stderr.splitlines()
            if ln.startswith("import time:")]


@pytest.mark.in_process
def test_run_without_a_budget_and_help_never_import_sqlite(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(fake('honest')).decode()}}}\n")
    modules = imported(ws, "run", "write a.txt hi")
    assert "burnless.agent" in modules  # the measurement saw the run path
    assert not [m for m in modules if "sqlite" in m]
    assert not [m for m in imported(ws, "--help") if "sqlite" in m]
    assert not (ws.state / "cache" / "ledger-index.sqlite").exists()


@pytest.mark.in_process
def test_run_with_a_budget_reads_the_index(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {orjson.dumps(fake('honest')).decode()}, "
              "price: 1}\nbudget: {max_cost_per_day: 5}\n")
    modules = imported(ws, "run", "write a.txt hi")
    assert "burnless.accounting.index" in modules and "sqlite3" in modules
    assert (ws.state / "cache" / "ledger-index.sqlite").is_file()
