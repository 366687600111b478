"""`python -m burnless.sim.agent` as a real subprocess against the simulator on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from burnless.sim.server import sim_server

MODEL = "claude-sonnet-4-6"  # caches from 1024 tokens
SYSTEM = (
    '<burnless-protocol role="executor" version="1">\n'
    + "Follow the plan. Report every file you touch in the envelope. " * 80
    + "\n</burnless-protocol>\n"
)  # about 1300 tokens


@pytest.fixture
def url():
    with sim_server() as base:
        yield base


def run_agent(
    url: str,
    cwd: Path,
    task: str,
    *,
    system: str | None = SYSTEM,
    extra: tuple[str, ...] = (),
    key: str = "dummy",
) -> tuple[int, dict, str]:
    args = [sys.executable, "-m", "burnless.sim.agent", "--model", MODEL, *extra]
    if system is not None:
        system_file = cwd.parent / f"{cwd.name}-system.md"
        system_file.write_text(system)
        args += ["--system-file", str(system_file)]
    env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": key}
    proc = subprocess.run(
        args,
        input=f"<task>\n{task}\n</task>\n",
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=30,
    )
    result = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, result, proc.stderr


def envelope(text: str) -> dict:
    return json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    work = tmp_path / "ws"
    work.mkdir()
    return work


def test_agent_writes_the_file_and_prints_claude_json(url: str, ws: Path) -> None:
    code, result, stderr = run_agent(url, ws, "create file notes/a.txt with content hello sim")
    assert code == 0, stderr
    assert (ws / "notes" / "a.txt").read_text() == "hello sim"
    assert result["type"] == "result"
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["num_turns"] == 2  # the Write call, then the answer
    assert "total_cost_usd" not in result
    usage = result["usage"]
    # Breakpoints on the system block and the last user block: every input token is a
    # cache write or read, none is billed as plain input.
    assert usage["input_tokens"] == 0
    assert usage["cache_creation_input_tokens"] > 1000
    assert usage["cache_read_input_tokens"] > 1000  # turn 2 reads what turn 1 wrote
    assert usage["output_tokens"] > 0
    assert set(usage["cache_creation"]) == {
        "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens",
    }
    assert result["modelUsage"][MODEL]["inputTokens"] == usage["input_tokens"]
    env = envelope(result["result"])
    assert env["status"] == "ok"
    assert env["files"] == [
        {
            "path": "notes/a.txt",
            "action": "created",
            "bytes": 9,
            "sha256": hashlib.sha256(b"hello sim").hexdigest(),
        }
    ]


def test_second_call_with_the_same_system_prompt_reads_the_cache(url: str, ws: Path) -> None:
    _, first, _ = run_agent(url, ws, "explain what a capsule is")
    code, second, _ = run_agent(url, ws, "explain what the ledger is")
    assert code == 0
    assert first["usage"]["cache_creation_input_tokens"] > 1000
    assert second["usage"]["cache_read_input_tokens"] >= 1000
    assert second["usage"]["cache_creation_input_tokens"] < 100


def test_a_short_system_prompt_is_never_cached(url: str, ws: Path) -> None:
    for task in ("explain a", "explain b"):
        code, result, _ = run_agent(url, ws, task, system="Be brief.")
        assert code == 0
        assert result["usage"]["cache_read_input_tokens"] == 0
        assert result["usage"]["cache_creation_input_tokens"] == 0


def test_append_and_delete_run_for_real(url: str, ws: Path) -> None:
    (ws / "log.txt").write_text("one\n")
    (ws / "old.txt").write_text("bye")
    code, result, _ = run_agent(url, ws, "append 'two\\n' to log.txt; delete old.txt")
    assert code == 0
    assert (ws / "log.txt").read_text() == "one\ntwo\n"
    assert not (ws / "old.txt").exists()
    files = envelope(result["result"])["files"]
    assert files == [
        {
            "path": "log.txt",
            "action": "modified",
            "bytes": 8,
            "sha256": hashlib.sha256(b"one\ntwo\n").hexdigest(),
        },
        {"path": "old.txt", "action": "deleted"},
    ]


def test_a_path_outside_the_cwd_is_refused(url: str, ws: Path) -> None:
    code, result, _ = run_agent(url, ws, "create file ../escape.txt with content x")
    assert code == 0  # the call worked; the model reports the refusal
    assert not (ws.parent / "escape.txt").exists()
    env = envelope(result["result"])
    assert env["status"] == "failed"
    assert "outside the working directory" in env["summary"]


def test_a_lying_model_claims_a_file_it_never_wrote(url: str, ws: Path) -> None:
    code, result, _ = run_agent(url, ws, "create file a.txt with content hi (lie)")
    assert code == 0
    assert result["num_turns"] == 1
    assert not (ws / "a.txt").exists()
    assert envelope(result["result"])["files"][0]["path"] == "a.txt"


def test_a_size_lie_writes_the_file_but_claims_wrong_bytes(url: str, ws: Path) -> None:
    code, result, _ = run_agent(url, ws, "create file b.txt with content abc (lie:size)")
    assert code == 0
    assert (ws / "b.txt").read_text() == "abc"
    claim = envelope(result["result"])["files"][0]
    assert (claim["bytes"], claim["sha256"]) == (4, hashlib.sha256(b"abc").hexdigest())


def test_max_turns_ends_with_an_error(url: str, ws: Path) -> None:
    code, result, _ = run_agent(
        url, ws, "create file a.txt with content hi", extra=("--max-turns", "1")
    )
    assert code == 1
    assert result["subtype"] == "error_max_turns"
    assert result["is_error"] is True
    assert (ws / "a.txt").read_text() == "hi"  # the tool ran, as Claude Code's does


def test_an_api_error_is_reported(url: str, ws: Path) -> None:
    code, result, stderr = run_agent(url, ws, "explain", key="")
    assert code == 1
    assert result["is_error"] is True
    assert "401" in result["result"]
    assert "401" in stderr


def test_connection_refused_is_a_clear_error(ws: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the agent connects
    code, result, stderr = run_agent(f"http://127.0.0.1:{port}", ws, "explain")
    assert code == 1
    assert "connection refused" in stderr
    assert result["is_error"] is True


def test_the_agent_does_not_import_the_anthropic_sdk() -> None:
    code = "import sys, burnless.sim.agent; print('anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
