"""The OpenAI dialects: ``POST /v1/chat/completions``, ``POST /v1/responses`` (what Codex
calls) and ``GET /v1/models``, over the same deterministic model.

A request is translated into the Messages API shape the model reads (``next_turn``): system
and developer messages (and ``instructions``) are system text, ``tool_calls`` /
``function_call`` items are ``tool_use`` blocks, ``tool`` messages / ``*_call_output`` items are
``tool_result`` blocks. Usage follows OpenAI's conventions: the prompt's tokens include the
cached ones (``prompt_tokens_details.cached_tokens`` / ``input_tokens_details.cached_tokens``),
billed by automatic prefix caching (``billing.PrefixCache``); a thinking model's reasoning
tokens are part of its output tokens. Models that bill cache writes (the GPT-5.6 family and
later) also report the prompt tokens newly written to the cache, ``cache_write_tokens``, inside
the same prompt figure.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

from burnless.sim.billing import Block, PrefixBill, PrefixCache, Section, plain_block
from burnless.sim.dialogue import Turn, next_turn
from burnless.sim.wire import (
    Answer,
    ApiError,
    chunks,
    limited,
    reasoning_tokens,
    sse,
    stable_id,
    text_of,
    tool_uses,
)

# status -> (error type, error code), as OpenAI's error bodies spell them
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout_error", None),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "overloaded"),
    529: ("server_error", "overloaded"),
}
_CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_NO_LIMIT = 1 << 30
# A tool result that reports a failure: Codex's "exit code" metadata, a non-zero exit.
_EXIT = re.compile(r"""(?:exit(?:ed with)?[ _]code|"exit_code")["']?\s*[:=]?\s*(-?\d+)""", re.I)
_GPT_VERSION = re.compile(r"gpt-(\d+)(?:\.(\d+))?(?![\d.])")


def bills_cache_writes(model_id: str) -> bool:
    """Whether OpenAI bills (and reports) cache writes for this model: from the GPT-5.6 family
    on (OpenAI's prompt-caching guide: "cache writes have no additional fee on models before
    the GPT-5.6 family")."""
    m = _GPT_VERSION.match(model_id.lower())
    return m is not None and (int(m.group(1)), int(m.group(2) or 0)) >= (5, 6)


def _input_details(model_id: str, bill: PrefixBill) -> dict[str, int]:
    details = {"cached_tokens": bill.cached_tokens}
    if bills_cache_writes(model_id):
        details["cache_write_tokens"] = bill.written_tokens
    return details


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    error_type, code = _ERRORS.get(
        status, ("invalid_request_error" if status < 500 else "server_error", None)
    )
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


# -- /v1/models ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def simulated_models() -> tuple[tuple[str, str], ...]:
    """(model id, provider) of every model in burnless's price table: the simulated models."""
    raw = resources.files("burnless").joinpath("data").joinpath("prices.json").read_bytes()
    models = orjson.loads(raw).get("models") or {}
    return tuple((str(k), str(v.get("provider", ""))) for k, v in models.items())


def models() -> Answer:
    """The model list, readable by both the OpenAI and the Anthropic SDKs (fields of both)."""
    data = [_model(model_id, owner) for model_id, owner in simulated_models()]
    payload = {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return Answer(200, payload)


def model(model_id: str) -> Answer:
    owners = dict(simulated_models())
    return Answer(200, _model(model_id, owners.get(model_id, "burnless-sim")))


def _model(model_id: str, owner: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": "1970-01-01T00:00:00Z",
        "owned_by": owner,
        "display_name": f"{model_id} (simulated)",
    }


# -- /v1/chat/completions ---------------------------------------------------------------------


def chat_completions(
    cache: PrefixCache, body: Mapping[str, Any], *, fail_rate: float = 0.0
) -> Answer:
    _validate_chat(body)
    model_id = str(body["model"])
    request = _chat_request(body)
    bill = cache.bill(model_id, _chat_blocks(body))
    limit = _limit(body, "max_completion_tokens", "max_tokens")
    reasoning = min(reasoning_tokens(model_id, orjson.dumps(request).decode()), limit)
    turn, visible = limited(next_turn(request, fail_rate=fail_rate), limit - reasoning)
    usage = _chat_usage(bill.prompt_tokens, _input_details(model_id, bill), visible + reasoning,
                        reasoning)
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": orjson.dumps(b["input"]).decode()},
        }
        for b in tool_uses(turn)
    ]
    finish = {"tool_use": "tool_calls", "max_tokens": "length"}.get(turn.stop_reason, "stop")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if calls else text_of(turn),
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = calls
    completion = {
        "id": stable_id("chatcmpl-sim", body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_burnless_sim",
    }
    if not body.get("stream"):
        return Answer(200, completion, usage)
    options = body.get("stream_options")
    with_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
    events = tuple(_chat_events(completion, calls, with_usage))
    return Answer(200, completion, usage, events=events)


def _chat_events(
    completion: Mapping[str, Any], calls: Sequence[Mapping[str, Any]], with_usage: bool
) -> Iterator[bytes]:
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    if with_usage:
        base["usage"] = None

    def chunk(delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse(dict(base, choices=[choice]))

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    message = completion["choices"][0]["message"]
    for part in chunks(message["content"] or ""):
        yield chunk({"content": part})
    for index, call in enumerate(calls):
        head = dict(call, index=index, function={"name": call["function"]["name"], "arguments": ""})
        yield chunk({"tool_calls": [head]})
        for part in chunks(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, completion["choices"][0]["finish_reason"])
    if with_usage:
        yield sse(dict(base, choices=[], usage=completion["usage"]))
    yield sse("[DONE]")


def _validate_chat(body: Mapping[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: a non-empty array is required", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _CHAT_ROLES:
            raise ApiError(
                400,
                f"messages[{i}].role: must be one of {', '.join(_CHAT_ROLES)}",
                param=f"messages[{i}].role",
            )
        content = m.get("content")
        if content is None and m["role"] == "assistant":
            continue
        if not isinstance(content, (str, list)):
            raise ApiError(
                400,
                f"messages[{i}].content: a string or an array of parts",
                param=f"messages[{i}].content",
            )
    _validate_tools(body)
    _limit(body, "max_completion_tokens", "max_tokens")


def _chat_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Messages API request the model reads for a chat completion."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in body["messages"]:
        role, content = m["role"], m.get("content")
        if role in ("system", "developer"):
            system += _texts(content)
        elif role == "user":
            messages.append({"role": "user", "content": _text_blocks(content)})
        elif role == "assistant":
            blocks = _text_blocks(content)
            for call in _list(m.get("tool_calls")):
                if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                    fn = call["function"]
                    blocks.append(_tool_use(call.get("id"), fn.get("name"), fn.get("arguments")))
            messages.append({"role": "assistant", "content": blocks})
        else:  # tool (or the legacy function) result
            text = "\n".join(_texts(content))
            messages.append(
                {"role": "user", "content": [_tool_result(m.get("tool_call_id"), text)]}
            )
    return {
        "model": body["model"],
        "system": [{"type": "text", "text": t} for t in system],
        "messages": messages,
        "tools": _tools(body.get("tools")),
    }


def _chat_blocks(body: Mapping[str, Any]) -> list[Block]:
    blocks = [plain_block("tools", "", t) for t in body.get("tools") or []]
    for m in body["messages"]:
        role, content = str(m["role"]), m.get("content")
        section: Section = "system" if role in ("system", "developer") else "messages"
        parts = [content] if isinstance(content, str) else content or []
        blocks += [plain_block(section, role, p) for p in parts]
        blocks += [plain_block("messages", role, c) for c in _list(m.get("tool_calls"))]
    return blocks


def _chat_usage(
    prompt: int, details: dict[str, int], completion: int, reasoning: int
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {**details, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# -- /v1/responses ------------------------------------------------------------------------------


def responses(cache: PrefixCache, body: Mapping[str, Any], *, fail_rate: float = 0.0) -> Answer:
    _validate_responses(body)
    model_id = str(body["model"])
    request = _responses_request(body)
    bill = cache.bill(model_id, _responses_blocks(body))
    limit = _limit(body, "max_output_tokens")
    reasoning = min(reasoning_tokens(model_id, orjson.dumps(request).decode()), limit)
    turn, visible = limited(next_turn(request, fail_rate=fail_rate), limit - reasoning)
    output_tokens = visible + reasoning
    usage = {
        "input_tokens": bill.prompt_tokens,
        "input_tokens_details": _input_details(model_id, bill),
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": bill.prompt_tokens + output_tokens,
    }
    response_id = stable_id("resp_sim_", body)
    output = _output_items(turn, response_id, request)
    incomplete = turn.stop_reason == "max_tokens"
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model_id,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": bool(body.get("store", True)),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }
    if not body.get("stream"):
        return Answer(200, response, usage)
    return Answer(200, response, usage, events=tuple(_responses_events(response)))


def _output_items(turn: Turn, response_id: str, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    calls = tool_uses(turn)
    if not calls:
        message_id = "msg_" + response_id.removeprefix("resp_")
        part = {"type": "output_text", "text": text_of(turn), "annotations": [], "logprobs": []}
        return [
            {
                "id": message_id,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        ]
    items = []
    builtin = {t["name"] for t in request["tools"] if t.get("builtin")}
    for call in calls:
        suffix = str(call["id"]).removeprefix("toolu_")
        if call["name"] in builtin:  # the built-in local_shell tool has its own item type
            action = {"type": "exec", "command": call["input"].get("command"), "env": {}}
            items.append(
                {
                    "id": "lsh_" + suffix,
                    "type": "local_shell_call",
                    "call_id": call["id"],
                    "action": action,
                    "status": "completed",
                }
            )
            continue
        items.append(
            {
                "id": "fc_" + suffix,
                "type": "function_call",
                "status": "completed",
                "call_id": call["id"],
                "name": call["name"],
                "arguments": orjson.dumps(call["input"]).decode(),
            }
        )
    return items


def _responses_events(response: Mapping[str, Any]) -> Iterator[bytes]:
    seq = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        data = {"type": kind, "sequence_number": seq, **fields}
        seq += 1
        return sse(data, kind)

    pending = dict(response, status="in_progress", output=[], usage=None)
    pending["incomplete_details"] = None
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            added = dict(item, status="in_progress", content=[])
            yield event("response.output_item.added", output_index=index, item=added)
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **where, part=empty)
            for part in chunks(text):
                yield event("response.output_text.delta", **where, delta=part, logprobs=[])
            yield event("response.output_text.done", **where, text=text, logprobs=[])
            yield event("response.content_part.done", **where, part=item["content"][0])
        elif item["type"] == "function_call":
            added = dict(item, status="in_progress", arguments="")
            yield event("response.output_item.added", output_index=index, item=added)
            where = {"item_id": item["id"], "output_index": index}
            for part in chunks(item["arguments"]):
                yield event("response.function_call_arguments.delta", **where, delta=part)
            yield event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            yield event("response.output_item.added", output_index=index, item=item)
        yield event("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    yield event(final, response=response)


def _validate_responses(body: Mapping[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model")
    items = body.get("input")
    if not isinstance(items, (str, list)) or not items:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            raise ApiError(400, f"input[{i}]: an object is required", param=f"input[{i}]")
    if not isinstance(body.get("instructions") or "", str):
        raise ApiError(400, "instructions: a string is required", param="instructions")
    _validate_tools(body)
    _limit(body, "max_output_tokens")


def _responses_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Messages API request the model reads for a Responses API request."""
    system = [body["instructions"]] if body.get("instructions") else []
    messages: list[dict[str, Any]] = []
    items = body["input"]
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items:
        kind = str(item.get("type") or "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                system += _texts(item.get("content"))
            elif role in ("user", "assistant"):
                messages.append({"role": role, "content": _text_blocks(item.get("content"))})
        elif kind.endswith("_call_output"):
            text = _output_text(item.get("output"))
            messages.append({"role": "user", "content": [_tool_result(item.get("call_id"), text)]})
        elif kind.endswith("_call"):
            args = item.get("arguments", item.get("input", item.get("action")))
            call = _tool_use(item.get("call_id"), item.get("name") or kind[:-5], args)
            messages.append({"role": "assistant", "content": [call]})
    return {
        "model": body["model"],
        "system": [{"type": "text", "text": t} for t in system],
        "messages": messages,
        "tools": _tools(body.get("tools")),
    }


def _responses_blocks(body: Mapping[str, Any]) -> list[Block]:
    blocks = [plain_block("tools", "", t) for t in body.get("tools") or []]
    if body.get("instructions"):
        blocks.append(plain_block("system", "", str(body["instructions"])))
    items = body["input"]
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items:
        content = item.get("content")
        if str(item.get("type") or "message") == "message" and isinstance(content, (str, list)):
            role = str(item.get("role"))
            blocks += [plain_block("messages", role, p) for p in _listed(content)]
        else:
            blocks.append(plain_block("messages", "", item))
    return blocks


# -- shared -------------------------------------------------------------------------------------


def _validate_tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ApiError(400, "tools: an array is required", param="tools")
    for i, t in enumerate(tools or []):
        if not isinstance(t, dict):
            raise ApiError(400, f"tools[{i}]: an object is required", param=f"tools[{i}]")


def _limit(body: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ApiError(400, f"{key}: an integer of at least 1 is required", param=key)
        return value
    return _NO_LIMIT


def _tools(raw: Any) -> list[dict[str, Any]]:
    """Chat (``{type: function, function: {...}}``) and Responses (flat) tools, and the
    built-in ``local_shell``, as Messages API tools."""
    tools: list[dict[str, Any]] = []
    for t in raw if isinstance(raw, list) else []:
        if not isinstance(t, Mapping):
            continue
        inner = t.get("function")
        fn: Mapping[str, Any] = inner if isinstance(inner, Mapping) else t
        if t.get("type") == "local_shell":
            tools.append({"name": "local_shell", "input_schema": {}, "builtin": True})
        elif isinstance(fn.get("name"), str):
            schema = fn.get("parameters")
            tools.append({"name": fn["name"], "input_schema": schema or {}})
    return tools


def _tool_use(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    parsed: Any = arguments
    if isinstance(arguments, str):
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = {"input": arguments}
    return {"type": "tool_use", "id": str(call_id), "name": str(name), "input": parsed}


def _tool_result(call_id: Any, text: str) -> dict[str, Any]:
    """A tool result; OpenAI has no error flag, so a non-zero exit code or a leading
    ``error``/``refused`` marks a failure."""
    exits = _EXIT.findall(text)
    failed = bool(exits and int(exits[-1]) != 0) or text.lstrip().lower().startswith(
        ("error", "refused", "failed")
    )
    return {"type": "tool_result", "tool_use_id": str(call_id), "content": text, "is_error": failed}


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    texts = _texts(output)
    return "\n".join(texts) if texts else orjson.dumps(output).decode()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _listed(content: Any) -> list[Any]:
    return [content] if isinstance(content, str) else list(content)


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [
        str(p.get("text", ""))
        for p in (content if isinstance(content, list) else [])
        if isinstance(p, Mapping) and isinstance(p.get("text"), str)
    ]


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t} for t in _texts(content)]
