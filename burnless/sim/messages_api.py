"""The Anthropic Messages API dialect: ``POST /v1/messages`` (JSON or SSE) and
``/v1/messages/count_tokens``, billed by Anthropic's prompt-caching rules (``PromptCache``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from burnless.sim.billing import CacheControlError, PromptCache, split_blocks
from burnless.sim.dialogue import next_turn
from burnless.sim.wire import Answer, ApiError, chunks, limited, sse, stable_id

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ROLES = ("user", "assistant", "system")
_DELTA_USAGE = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def error_body(status: int, message: str) -> dict[str, Any]:
    error_type = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": error_type, "message": message}}


def count_tokens(body: Mapping[str, Any]) -> Answer:
    validate(body, count_only=True)
    try:
        total = sum(b.tokens for b in split_blocks(body))
    except CacheControlError as e:
        raise ApiError(400, str(e)) from None
    return Answer(200, {"input_tokens": total}, {"input_tokens": total})


def messages(cache: PromptCache, body: Mapping[str, Any], *, fail_rate: float = 0.0) -> Answer:
    validate(body, count_only=False)
    try:
        billed = cache.bill(body)
    except CacheControlError as e:
        raise ApiError(400, str(e)) from None
    turn, output_tokens = limited(next_turn(body, fail_rate=fail_rate), int(body["max_tokens"]))
    usage = billed.with_output(output_tokens).to_api()
    message = {
        "id": stable_id("msg_sim_", body),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": list(turn.content),
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return Answer(200, message, usage)
    return Answer(200, message, usage, events=tuple(_events(message)))


def validate(body: Mapping[str, Any], *, count_only: bool) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "model: Field required")
    if not isinstance(body.get("tools") or [], list):
        raise ApiError(400, "tools: Input should be a valid list")
    if not isinstance(body.get("system") or "", (str, list)):
        raise ApiError(400, "system: Input should be a string or a list of blocks")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: Field required (a non-empty list)")
    for i, m in enumerate(messages):
        # Claude Code 2.1.197 sends a `role: "system"` message on claude-opus-4-8, which the
        # API accepts: it is system text, billed where it stands.
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise ApiError(400, f"messages.{i}.role: must be 'user', 'assistant' or 'system'")
        if not isinstance(m.get("content"), (str, list)):
            raise ApiError(400, f"messages.{i}.content: Field required")
    if all(m["role"] == "system" for m in messages):
        raise ApiError(400, "messages: at least one 'user' or 'assistant' message is required")
    if count_only:
        return
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise ApiError(400, "max_tokens: Field required (a non-negative integer)")


def _events(message: Mapping[str, Any]) -> Iterator[bytes]:
    final = message["usage"]
    start = dict(message, content=[], stop_reason=None)
    start["usage"] = dict(final, output_tokens=min(1, final["output_tokens"]))
    yield sse({"type": "message_start", "message": start}, "message_start")
    yield sse({"type": "ping"}, "ping")
    for index, block in enumerate(message["content"]):
        for event in _block_events(index, block):
            yield sse(event, str(event["type"]))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {k: final[k] for k in _DELTA_USAGE},
    }
    yield sse(delta, "message_delta")
    yield sse({"type": "message_stop"}, "message_stop")


def _block_events(index: int, block: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    if block["type"] == "tool_use":
        empty = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield {"type": "content_block_start", "index": index, "content_block": empty}
        for part in chunks(orjson.dumps(block["input"]).decode()):
            delta = {"type": "input_json_delta", "partial_json": part}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
    else:
        start = {"type": "text", "text": ""}
        yield {"type": "content_block_start", "index": index, "content_block": start}
        for part in chunks(str(block.get("text", ""))):
            delta = {"type": "text_delta", "text": part}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}
