"""Worker-reported model names are bounded and checked where they are parsed, and the ``model``
label of /metrics has bounded cardinality (issue 10, finding 10)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from burnless.accounting import ledger
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.metrics import MAX_OTHER_MODELS, OTHER_MODEL, exposition, families_for
from burnless.accounting.tokens import Tokens
from burnless.formats import parse_output
from burnless.formats.output import MAX_MODEL_NAME, WorkerOutput
from tests.conftest import Workspace, parse_metrics, quoted

HUGE = "m" * 200_000


def claude_result(model_usage: dict[str, Any], **extra: Any) -> str:
    return json.dumps({
        "type": "result", "subtype": "success", "is_error": False, "result": "done",
        "usage": {"input_tokens": 10, "output_tokens": 5},
        "modelUsage": model_usage, "total_cost_usd": 0.01, **extra,
    })


def usage_entry() -> dict[str, Any]:
    return {"inputTokens": 10, "outputTokens": 5, "costUSD": 0.01}


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        claude_result({HUGE: usage_entry()}),  # Claude Code json: the modelUsage key
        "\n".join([  # Claude Code stream-json: the init event
            json.dumps({"type": "system", "subtype": "init", "model": HUGE}),
            claude_result({}),
        ]),
        json.dumps({"response": "done", "stats": {"models": {  # Gemini CLI json
            HUGE: {"tokens": {"prompt": 10, "candidates": 5}}}}}),
    ],
    ids=["claude-json", "claude-stream-json", "gemini-json"],
)
def test_an_overlong_reported_model_is_dropped_with_a_bounded_finding(raw: str) -> None:
    out = parse_output(raw)
    assert out.model is None  # the caller falls back to the tier's configured model
    notes = [f for f in out.findings if "invalid model name" in f]
    assert len(notes) == 1 and "200000 characters" in notes[0] and len(notes[0]) < 200
    assert out.usage is not None and out.text == "done"  # nothing else is lost


@pytest.mark.parametrize(
    "name",
    ["claude-sonnet-4-6", "anthropic/claude-opus-4.8", "models/gemini-2.5-pro",
     "qwen2.5-coder:7b", "gpt-5.1-codex@2025-11-13", "a" * MAX_MODEL_NAME],
)
def test_real_model_names_are_kept(name: str) -> None:
    assert parse_output(claude_result({name: usage_entry()})).model == name


@pytest.mark.parametrize(
    "name",
    ["a" * (MAX_MODEL_NAME + 1), "claude\nsonnet", "claude sonnet", 'x"} 1\n# HELP', "модель",
     "claude-{evil}", ""],
)
def test_names_outside_the_alphabet_or_bound_are_dropped(name: str) -> None:
    out = WorkerOutput(text="", format="text", usage=None, cost_usd=None, model=name,
                       is_error=False)
    assert out.model is None
    assert bool(out.findings) == bool(name)  # an empty name is no report, not an invalid one


def test_surrounding_blanks_are_trimmed() -> None:
    assert parse_output(claude_result({" claude-sonnet-4-6\n": usage_entry()})).model == (
        "claude-sonnet-4-6")


# -- end to end: the ledger and /metrics stay small -------------------------------------------


def test_a_worker_reporting_a_huge_model_leaves_a_small_ledger_line(
    ws: Workspace, tmp_path: Path
) -> None:
    envelope = json.dumps({"status": "ok", "kind": "thought", "summary": "done", "files": []})
    script = tmp_path / "worker.py"
    script.write_text(
        "import json, sys\nsys.stdin.read()\n"
        f"print(json.dumps({{'type': 'result', 'subtype': 'success', 'is_error': False, "
        f"'result': {envelope!r}, 'usage': {{'input_tokens': 10, 'output_tokens': 5}}, "
        f"'modelUsage': {{'m' * 200000: {{'inputTokens': 10, 'outputTokens': 5}}}}}}))\n",
        encoding="utf-8",
    )
    ws.config(f"tiers:\n  silver: {{command: {quoted(f'{sys.executable} {script}')}, "
              "model: claude-sonnet-4-6}\nplanner: null\n")
    p = ws.run("run", "go")
    assert p.returncode == 0, p.stderr
    line = (ws.state / "ledger.jsonl").read_bytes().splitlines()[-1]
    assert len(line) < 4096
    assert json.loads(line)["model"] == "claude-sonnet-4-6"
    metrics = ws.run("metrics")
    assert metrics.returncode == 0 and len(metrics.stdout) < 20_000
    assert "m" * 200 not in metrics.stdout


# -- /metrics label cardinality ---------------------------------------------------------------


def record(model: str | None, tier: str = "silver", cost: float = 0.01) -> LedgerRecord:
    return LedgerRecord(run_id="r-20261128T120000-abcdef", session="s", role="execution",
                        tier=tier, model=model, status="ok", tokens=Tokens(100, 10, 0, 0),
                        cost_usd=cost, cost_source="reported", audit="passed")


def model_labels(text: str) -> set[str]:
    return {dict(labels)["model"] for (name, labels) in parse_metrics(text)
            if name == "burnless_cost_usd_total"}


def test_unknown_model_labels_beyond_a_cap_fold_into_other(ws: Workspace) -> None:
    for i in range(MAX_OTHER_MODELS + 30):
        for _ in range(2 if i < 5 else 1):  # the five busiest keep their label for sure
            ledger.record_call(ws.state, record(f"local-model-{i:03d}"))
    ledger.record_call(ws.state, record("claude-sonnet-4-6"))  # in the price table
    ledger.record_call(ws.state, record("x" * 5000))  # written by an older burnless
    ledger.record_call(ws.state, record("my-finetune", tier="bronze"))  # a configured tier's model

    text = exposition(families_for(ws.state, known_models=["my-finetune", None]))
    labels = model_labels(text)
    assert {"claude-sonnet-4-6", "my-finetune", OTHER_MODEL} <= labels
    assert {f"local-model-{i:03d}" for i in range(5)} <= labels
    assert len(labels) == MAX_OTHER_MODELS + 3
    assert "x" * 129 not in text
    samples = parse_metrics(text)
    total = sum(v for (name, _), v in samples.items() if name == "burnless_cost_usd_total")
    assert total == pytest.approx(0.01 * (MAX_OTHER_MODELS + 30 + 5 + 3))  # nothing lost


def test_the_cli_folds_too(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: 'true', model: claude-sonnet-4-6}\n")
    for i in range(MAX_OTHER_MODELS + 10):
        ledger.record_call(ws.state, record(f"local-model-{i:03d}"))
    ledger.record_call(ws.state, record("bad model\nname"))
    p = ws.run("metrics")
    assert p.returncode == 0, p.stderr
    labels = model_labels(p.stdout)
    assert OTHER_MODEL in labels and len(labels) == MAX_OTHER_MODELS + 1
