"""A failed Codex or Gemini CLI call, replayed from the real clients' captured output through
``burnless run``: the ledger records what was billed (nothing, or unknown) and the error the
client reported, not an estimate and not its last stderr line."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import Workspace

FIXTURES = Path(__file__).parent.parent / "fixtures" / "formats"

# Prints a captured stdout and stderr and exits with the captured status, as the client did.
REPLAY = """\
import sys
out, err, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.stdin.read()
sys.stdout.write(open(out, encoding="utf-8").read() if out != "-" else "")
sys.stderr.write(open(err, encoding="utf-8").read() if err != "-" else "")
sys.exit(code)
"""


def replay_tier(tmp_path: Path, stdout: str, stderr: str, code: int, model: str) -> str:
    script = tmp_path / "replay.py"
    script.write_text(REPLAY, encoding="utf-8")
    argv = [sys.executable, str(script), stdout, stderr, str(code)]
    return orjson.dumps({"tiers": {"silver": {"command": shlex.join(argv), "model": model}},
                         "planner": None}).decode()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("stdout", "stderr", "code", "reason"),
    [
        ("codex_0.171_wrong_key.jsonl", "Reading additional input from stdin...\n", 1,
         "exit 1: unexpected status 401 Unauthorized: Incorrect API key provided."),
        ("codex_0.171_missing_key.jsonl", "Reading additional input from stdin...\n", 1,
         "exit 1: Missing environment variable: `SIM_KEY`."),
        ("-", "gemini_0.61_wrong_key.stderr", 144,
         "exit 144: 400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key."),
        ("-", "gemini_0.61_missing_key.stderr", 41,
         "exit 41: When using Gemini API, you must specify the GEMINI_API_KEY"),
    ],
)
def test_a_refused_key_is_recorded_unbilled_with_the_clients_error(
    ws: Workspace, tmp_path: Path, stdout: str, stderr: str, code: int, reason: str
) -> None:
    out = str(FIXTURES / stdout) if stdout != "-" else "-"
    err = (str(FIXTURES / stderr) if stderr.endswith(".stderr")
           else write(tmp_path, "stderr.txt", stderr))
    model = "gpt-5-codex" if stdout.startswith("codex") else "gemini-2.5-flash"
    ws.config(replay_tier(tmp_path, out, err, code, model))
    exit_code, res = ws.json("run", "create file notes/a.txt with content hello")
    assert exit_code == 1 and res["status"] == "failed", res
    [rec] = ws.ledger()
    assert rec["tokens"] == {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}
    assert (rec["cost_usd"], rec["cost_source"]) == (0.0, "reported")
    assert rec["reason"].startswith(reason), rec["reason"]
    assert rec["exit"] == code


def test_a_failure_that_may_have_billed_is_recorded_as_unknown(
    ws: Workspace, tmp_path: Path
) -> None:
    events = (FIXTURES / "codex_0.171_cache_write.jsonl").read_text(encoding="utf-8")
    cut = "\n".join(events.splitlines()[:-1]) + (
        '\n{"type":"error","message":"stream disconnected before completion"}'
        '\n{"type":"turn.failed","error":{"message":"stream disconnected before completion"}}\n')
    ws.config(replay_tier(tmp_path, write(tmp_path, "out.jsonl", cut), "-", 1, "gpt-5-codex"))
    exit_code, _ = ws.json("run", "create file notes/a.txt with content hello")
    assert exit_code == 1
    [rec] = ws.ledger()
    assert (rec["cost_usd"], rec["cost_source"]) == (None, "unknown")
    assert rec["reason"] == "exit 1: stream disconnected before completion"
