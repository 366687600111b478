"""A tiny stand-in for ``claude -p --output-format json``, talking to the simulator.

    python -m burnless.sim.agent --model MODEL [--system-file PATH] [--max-turns N] < prompt

Reads the prompt from stdin, sends it to ``$ANTHROPIC_BASE_URL`` with ``$ANTHROPIC_API_KEY``
(cache breakpoints on the system block and on the last user block), runs the ``Write``,
``Append`` and ``Delete`` tool calls for real inside its working directory, loops until the
model ends its turn, and prints one JSON object shaped like Claude Code's result (without
``total_cost_usd``: burnless prices usage itself). Exit 0 on success, 1 on error.
Stdlib and orjson only, so it starts fast.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

ANTHROPIC_VERSION = "2023-06-01"
MAX_OUTPUT_TOKENS = 8192
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "Write",
        "description": "Write a file (created or replaced) inside the working directory.",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["file_path", "content"],
        },
    },
    {
        "name": "Append",
        "description": "Append text to a file inside the working directory.",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["file_path", "content"],
        },
    },
    {
        "name": "Delete",
        "description": "Delete a file inside the working directory.",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}},
            "required": ["file_path"],
        },
    },
)


class AgentError(Exception):
    """The call could not be completed; the message says why."""


class ToolError(Exception):
    """A tool call that is refused or fails; reported to the model as ``is_error``."""


def run_tool(name: str, tool_input: dict[str, Any], root: Path) -> str:
    """Carry out one tool call inside ``root``; the text returned is the tool result."""
    raw = tool_input.get("file_path")
    if not isinstance(raw, str) or not raw:
        raise ToolError("file_path is required")
    root = root.resolve()
    path = (root / raw).resolve()
    if path != root and root not in path.parents:
        raise ToolError(f"refused: {raw} is outside the working directory {root}")
    try:
        if name == "Delete":
            if not path.is_file():
                raise ToolError(f"no such file: {raw}")
            path.unlink()
            return f"Deleted {raw}"
        content = tool_input.get("content")
        if not isinstance(content, str):
            raise ToolError("content is required")
        existed = path.exists()
        if name == "Write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode("utf-8"))
        elif name == "Append":
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(content.encode("utf-8"))
        else:
            raise ToolError(f"unknown tool {name!r}")
    except OSError as e:
        raise ToolError(f"{name} {raw}: {e.strerror or e}") from None
    data = path.read_bytes()
    verb = "updated" if existed else "created"
    return f"File {verb}: {raw} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})"


def call_api(base_url: str, api_key: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/messages; raises AgentError with a clear message on any failure."""
    url = base_url.rstrip("/") + "/v1/messages"
    request = urllib.request.Request(
        url,
        data=orjson.dumps(body),
        method="POST",
        headers={
            "content-type": "application/json",
            "x-api-key": api_key,
            "anthropic-version": ANTHROPIC_VERSION,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            payload = orjson.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = str(orjson.loads(detail)["error"]["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
        raise AgentError(f"API error {e.code} from {url}: {detail}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ConnectionRefusedError):
            raise AgentError(
                f"cannot connect to {base_url}: connection refused "
                "(is `burnless sim serve` running there?)"
            ) from None
        raise AgentError(f"cannot reach {base_url}: {reason}") from None
    except (OSError, orjson.JSONDecodeError) as e:
        raise AgentError(f"bad answer from {url}: {e}") from None
    if not isinstance(payload, dict):
        raise AgentError(f"bad answer from {url}: not a JSON object")
    return payload


def run(
    prompt: str,
    *,
    model: str,
    base_url: str,
    api_key: str,
    system: str | None = None,
    max_turns: int = 10,
    root: Path | None = None,
) -> dict[str, Any]:
    """Run the agent loop and return Claude Code's result object (``is_error`` on failure)."""
    root = root or Path.cwd()
    started = time.monotonic()
    api_ms = 0
    usage = dict.fromkeys(_USAGE_KEYS, 0)
    creation = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": prompt}]}
    ]
    body: dict[str, Any] = {"model": model, "max_tokens": MAX_OUTPUT_TOKENS, "tools": list(TOOLS)}
    if system:
        body["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    turns, text, subtype, error = 0, "", "success", ""
    try:
        while True:
            if turns >= max_turns:
                subtype, error = "error_max_turns", f"stopped after {max_turns} turns"
                break
            turns += 1
            sent = time.monotonic()
            answer = call_api(base_url, api_key, dict(body, messages=_with_breakpoint(messages)))
            api_ms += int((time.monotonic() - sent) * 1000)
            _add_usage(usage, creation, answer.get("usage"))
            content = [b for b in answer.get("content") or [] if isinstance(b, dict)]
            text = "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
            calls = [b for b in content if b.get("type") == "tool_use"]
            if answer.get("stop_reason") != "tool_use" or not calls:
                break
            messages.append({"role": "assistant", "content": content})
            messages.append({"role": "user", "content": [_tool_result(b, root) for b in calls]})
    except AgentError as e:
        subtype, error = "error_during_execution", str(e)
    result: dict[str, Any] = {
        "type": "result",
        "subtype": subtype,
        "is_error": bool(error),
        "duration_ms": int((time.monotonic() - started) * 1000),
        "duration_api_ms": api_ms,
        "num_turns": turns,
        "result": error or text,
        "session_id": str(uuid.uuid4()),
        "usage": dict(usage, cache_creation=creation),
        "modelUsage": {
            model: {
                "inputTokens": usage["input_tokens"],
                "outputTokens": usage["output_tokens"],
                "cacheReadInputTokens": usage["cache_read_input_tokens"],
                "cacheCreationInputTokens": usage["cache_creation_input_tokens"],
            }
        },
        "permission_denials": [],
    }
    return result


def _with_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with a cache breakpoint on the last block of the last user message."""
    out = [dict(m) for m in messages]
    last = out[-1]
    blocks = [dict(b) for b in last["content"]]
    blocks[-1]["cache_control"] = {"type": "ephemeral"}
    last["content"] = blocks
    return out


def _tool_result(call: dict[str, Any], root: Path) -> dict[str, Any]:
    tool_input = call.get("input") if isinstance(call.get("input"), dict) else {}
    try:
        text = run_tool(str(call.get("name")), tool_input or {}, root)
        return {"type": "tool_result", "tool_use_id": call.get("id"), "content": text}
    except ToolError as e:
        return {
            "type": "tool_result",
            "tool_use_id": call.get("id"),
            "content": str(e),
            "is_error": True,
        }


def _add_usage(usage: dict[str, int], creation: dict[str, int], reported: Any) -> None:
    if not isinstance(reported, dict):
        return
    for key in _USAGE_KEYS:
        value = reported.get(key)
        if isinstance(value, int):
            usage[key] += value
    detail = reported.get("cache_creation")
    if isinstance(detail, dict):
        for key in creation:
            value = detail.get(key)
            if isinstance(value, int):
                creation[key] += value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m burnless.sim.agent",
        description="A stand-in for `claude -p --output-format json` against burnless sim.",
    )
    parser.add_argument("--model", required=True, help="model id sent to the simulator")
    parser.add_argument("--system-file", type=Path, help="file holding the system prompt")
    parser.add_argument("--max-turns", type=int, default=10, help="model turns allowed (10)")
    args = parser.parse_args(argv)
    base_url = os.environ.get("ANTHROPIC_BASE_URL", "")
    if not base_url:
        print("burnless sim agent: ANTHROPIC_BASE_URL is not set", file=sys.stderr)
        return 1
    system = None
    if args.system_file is not None:
        try:
            system = args.system_file.read_text(encoding="utf-8")
        except OSError as e:
            print(f"burnless sim agent: cannot read {args.system_file}: {e}", file=sys.stderr)
            return 1
    prompt = sys.stdin.read()
    result = run(
        prompt,
        model=args.model,
        base_url=base_url,
        api_key=os.environ.get("ANTHROPIC_API_KEY", ""),
        system=system,
        max_turns=args.max_turns,
    )
    if result["is_error"]:
        print(f"burnless sim agent: {result['result']}", file=sys.stderr)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 1 if result["is_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
