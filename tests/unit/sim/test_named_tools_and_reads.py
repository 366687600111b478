"""The simulated model calls a named tool when the task asks for it, and reads files."""

from __future__ import annotations

from typing import Any

import orjson

from burnless.sim.dialogue import next_turn
from burnless.sim.model import FileAction, ToolUse, parse_actions, parse_tool_uses

READ = {"name": "Read", "input_schema": {"properties": {"file_path": {"type": "string"}}}}
WRITE = {"name": "Write", "input_schema": {"properties": {"file_path": {}, "content": {}}}}
RUN = {"name": "mcp__burnless__run", "input_schema": {"properties": {"task": {}}}}


def _request(text: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "tools": tools,
        "system": [{"type": "text", "text": " - Primary working directory: /w"}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>agents</system-reminder>"},
            {"type": "text", "text": text}]}],
    }


def _answer(request: dict[str, Any], turn: Any, result: str, is_error: bool = False) -> None:
    request["messages"] += [
        {"role": "assistant", "content": list(turn.content)},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": turn.content[-1]["id"],
                                      "content": [{"type": "text", "text": result}],
                                      "is_error": is_error}]},
    ]


def _envelope(turn: Any) -> dict[str, Any]:
    text = turn.content[0]["text"]
    body: dict[str, Any] = orjson.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    return body


def test_grammar_of_tool_calls_and_reads() -> None:
    assert parse_tool_uses('call tool mcp__burnless__run with {"task": "a; b", "n": 2}') == (
        ToolUse("mcp__burnless__run", {"task": "a; b", "n": 2}),)
    assert parse_tool_uses("please call the tool mcp__x__usage.") == (ToolUse("mcp__x__usage", {}),)
    assert parse_tool_uses("call tool t with {not json}") == (
        ToolUse("t", {"input": "{not json}"}),)
    assert parse_tool_uses("we should call tool t later") == ()  # not at the start of a line
    assert parse_actions("read files src/a.py, src/b.py and docs/c.md; what is X?") == (
        FileAction("read", "src/a.py"), FileAction("read", "src/b.py"),
        FileAction("read", "docs/c.md"))
    assert parse_actions("I read src/a.py yesterday") == ()  # not an instruction


def test_a_named_tool_is_called_and_its_result_ends_up_in_the_answer() -> None:
    task = 'call tool mcp__burnless__run with {"task": "create file a.txt with content hi"}'
    request = _request(task, [READ, WRITE, RUN])
    first = next_turn(request)
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    # The tool named, with the JSON given; no Write for the task inside it.
    assert call["name"] == "mcp__burnless__run"
    assert call["input"] == {"task": "create file a.txt with content hi"}
    assert next_turn(request) == first  # deterministic
    _answer(request, first, '{"ok": true, "status": "ok", "audit": "passed"}')
    final = next_turn(request)
    assert final.stop_reason == "end_turn"
    env = _envelope(final)
    assert env["status"] == "ok" and env["files"] == []
    assert env["summary"].startswith('mcp__burnless__run returned: {"ok": true')


def test_a_tool_error_or_a_tool_not_offered_fails_the_answer() -> None:
    task = "call tool mcp__burnless__run with {}"
    request = _request(task, [RUN])
    first = next_turn(request)
    _answer(request, first, "BudgetExceeded: over the limit", is_error=True)
    env = _envelope(next_turn(request))
    assert env["status"] == "failed" and "BudgetExceeded" in env["summary"]
    missing = next_turn(_request(task, [READ]))
    assert missing.stop_reason == "end_turn"
    env = _envelope(missing)
    assert env["status"] == "failed" and "no tool named mcp__burnless__run" in env["summary"]


def test_reads_are_tool_calls_that_claim_nothing() -> None:
    request = _request("read files src/a.py and b.md; what do they define?", [READ, WRITE])
    paths = []
    for _ in range(2):
        turn = next_turn(request)
        assert turn.stop_reason == "tool_use" and turn.content[-1]["name"] == "Read"
        paths.append(turn.content[-1]["input"]["file_path"])
        _answer(request, turn, "     1\tX = 1\n")
    assert paths == ["/w/src/a.py", "/w/b.md"]
    final = next_turn(request)
    env = _envelope(final)
    assert final.stop_reason == "end_turn"
    assert env["kind"] == "thought" and env["status"] == "ok" and env["files"] == []


def test_reads_then_a_write_and_reads_without_a_read_tool() -> None:
    request = _request("read file src/a.py; create file out.txt with content done", [READ, WRITE])
    first = next_turn(request)
    assert first.content[-1]["name"] == "Read"
    _answer(request, first, "x")
    second = next_turn(request)
    assert second.content[-1]["name"] == "Write"
    assert second.content[-1]["input"] == {"file_path": "/w/out.txt", "content": "done"}
    _answer(request, second, "File created successfully at: /w/out.txt")
    env = _envelope(next_turn(request))
    assert env["kind"] == "execution" and [f["path"] for f in env["files"]] == ["out.txt"]
    # A shell stands in for a read tool; with no tool at all the model answers from the task.
    bash = next_turn(_request("read file a b.py", [{"name": "Bash", "input_schema": {}}]))
    assert bash.content[-1]["input"]["command"] == "cat -- b.py"
    bare = next_turn(_request("read file src/a.py", [WRITE]))
    assert bare.stop_reason == "end_turn" and _envelope(bare)["status"] == "ok"
