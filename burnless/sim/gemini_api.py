"""The Gemini API dialect: ``POST /v1beta/models/<model>:generateContent``,
``:streamGenerateContent`` (``?alt=sse``) and ``:countTokens``, over the same model.

``systemInstruction`` is system text, ``functionCall`` parts are ``tool_use`` blocks and
``functionResponse`` parts ``tool_result`` blocks (matched by ``id``, else by name to the last
unanswered call). ``usageMetadata``: ``promptTokenCount`` includes the cached tokens
(``cachedContentTokenCount``, from automatic prefix caching), ``candidatesTokenCount`` the
answer, ``thoughtsTokenCount`` a thinking model's reasoning, ``totalTokenCount`` their sum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from burnless.sim.billing import Block, PrefixCache, plain_block
from burnless.sim.dialogue import next_turn
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

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ROLES = ("user", "model", "function", "tool")
_NO_LIMIT = 1 << 30


def error_body(status: int, message: str) -> dict[str, Any]:
    name = STATUS.get(status, "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE")
    return {"error": {"code": status, "message": message, "status": name}}


def count_tokens(model: str, body: Mapping[str, Any]) -> Answer:
    inner = body.get("generateContentRequest")
    request = inner if isinstance(inner, Mapping) else body
    _validate(request)
    total = sum(b.tokens for b in _blocks(request))
    payload = {
        "totalTokens": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
    }
    return Answer(200, payload, {"totalTokens": total})


def generate(
    cache: PrefixCache,
    model: str,
    body: Mapping[str, Any],
    *,
    stream: bool,
    fail_rate: float = 0.0,
) -> Answer:
    _validate(body)
    request = _request(model, body)
    bill = cache.bill(model, _blocks(body))
    config = body.get("generationConfig") or body.get("generation_config") or {}
    limit = _limit(config)
    thoughts = min(reasoning_tokens(model, orjson.dumps(request).decode()), limit)
    turn, visible = limited(next_turn(request, fail_rate=fail_rate), limit - thoughts)
    usage = {
        "promptTokenCount": bill.prompt_tokens,
        "cachedContentTokenCount": bill.cached_tokens,
        "candidatesTokenCount": visible,
        "thoughtsTokenCount": thoughts,
        "totalTokenCount": bill.prompt_tokens + visible + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": bill.prompt_tokens}],
    }
    calls = tool_uses(turn)
    parts: list[dict[str, Any]]
    if calls:
        parts = [
            {"functionCall": {"name": c["name"], "args": c["input"], "id": c["id"]}} for c in calls
        ]
    else:
        parts = [{"text": text_of(turn)}]
    finish = "MAX_TOKENS" if turn.stop_reason == "max_tokens" else "STOP"
    answer = {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": stable_id("sim", body, 20),
    }
    if not stream:
        return Answer(200, answer, usage)
    return Answer(200, answer, usage, events=tuple(_events(answer)))


def _events(answer: Mapping[str, Any]) -> Iterator[bytes]:
    """One chunk per piece of text (the last with ``finishReason`` and ``usageMetadata``), or
    one chunk holding the function calls; Google ends each event with CRLF CRLF."""
    candidate = answer["candidates"][0]
    parts = candidate["content"]["parts"]
    pieces = chunks(parts[0]["text"]) if "text" in parts[0] else []
    head = {"modelVersion": answer["modelVersion"], "responseId": answer["responseId"]}
    for piece in pieces[:-1]:
        content = {"role": "model", "parts": [{"text": piece}]}
        yield sse(dict(head, candidates=[{"content": content, "index": 0}]), crlf=True)
    last_parts = [{"text": pieces[-1] if pieces else ""}] if "text" in parts[0] else parts
    last = dict(candidate, content={"role": "model", "parts": last_parts})
    yield sse(dict(head, candidates=[last], usageMetadata=answer["usageMetadata"]), crlf=True)


def _validate(body: Mapping[str, Any]) -> None:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
    for i, c in enumerate(contents):
        if not isinstance(c, dict) or c.get("role", "user") not in _ROLES:
            raise ApiError(400, f"* GenerateContentRequest.contents[{i}].role: invalid role")
        parts = c.get("parts")
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            raise ApiError(400, f"* GenerateContentRequest.contents[{i}].parts: required")
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) for t in tools)
    ):
        raise ApiError(400, "* GenerateContentRequest.tools: a list of Tool objects")
    system = _system(body)
    if system is not None and not isinstance(system, (str, dict)):
        raise ApiError(400, "* GenerateContentRequest.system_instruction: a Content object")
    config = body.get("generationConfig") or body.get("generation_config") or {}
    if not isinstance(config, dict):
        raise ApiError(400, "* GenerateContentRequest.generation_config: an object")
    _limit(config)


def _limit(config: Mapping[str, Any]) -> int:
    value = config.get("maxOutputTokens", config.get("max_output_tokens"))
    if value is None:
        return _NO_LIMIT
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiError(400, "* GenerationConfig.max_output_tokens: a positive integer")
    return value


def _system(body: Mapping[str, Any]) -> Any:
    return body.get("systemInstruction", body.get("system_instruction"))


def _request(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The Messages API request the model reads for a Gemini request."""
    system = _system(body)
    system_texts = [system] if isinstance(system, str) else _texts(system)
    messages: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (name, id) of calls not yet answered
    for content in body["contents"]:
        role = "assistant" if content.get("role") == "model" else "user"
        blocks: list[dict[str, Any]] = []
        for part in content["parts"]:
            if isinstance(part.get("text"), str) and not part.get("thought"):
                blocks.append({"type": "text", "text": part["text"]})
            elif isinstance(part.get("functionCall"), Mapping):
                call = part["functionCall"]
                name = str(call.get("name"))
                call_id = str(call.get("id") or f"call_{len(pending)}_{name}")
                pending.append((name, call_id))
                args = call.get("args") if isinstance(call.get("args"), Mapping) else {}
                blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
            elif isinstance(part.get("functionResponse"), Mapping):
                blocks.append(_tool_result(part["functionResponse"], pending))
        messages.append({"role": role, "content": blocks})
    tools = [
        {"name": d["name"], "input_schema": d.get("parametersJsonSchema") or d.get("parameters")}
        for t in body.get("tools") or []
        for d in t.get("functionDeclarations") or t.get("function_declarations") or []
        if isinstance(d, Mapping) and isinstance(d.get("name"), str)
    ]
    return {
        "model": model,
        "system": [{"type": "text", "text": t} for t in system_texts],
        "messages": messages,
        "tools": tools,
    }


def _tool_result(response: Mapping[str, Any], pending: list[tuple[str, str]]) -> dict[str, Any]:
    name = str(response.get("name"))
    call_id = response.get("id")
    if call_id is None:  # no id: the last unanswered call of that name
        call_id = next((i for n, i in reversed(pending) if n == name), name)
    pending[:] = [(n, i) for n, i in pending if i != call_id]
    payload = response.get("response")
    failed = isinstance(payload, Mapping) and "error" in payload
    if isinstance(payload, Mapping) and isinstance(payload.get("output"), str):
        text = payload["output"]
    elif isinstance(payload, Mapping) and isinstance(payload.get("error"), str):
        text = payload["error"]
    else:
        text = orjson.dumps(payload).decode()
    return {"type": "tool_result", "tool_use_id": str(call_id), "content": text, "is_error": failed}


def _blocks(body: Mapping[str, Any]) -> list[Block]:
    blocks = [plain_block("tools", "", t) for t in body.get("tools") or []]
    system = _system(body)
    if isinstance(system, str):
        blocks.append(plain_block("system", "", system))
    elif isinstance(system, Mapping):
        blocks += [plain_block("system", "", _part(p)) for p in system.get("parts") or []]
    for content in body["contents"]:
        role = str(content.get("role", "user"))
        blocks += [plain_block("messages", role, _part(p)) for p in content["parts"]]
    return blocks


def _part(part: Any) -> Any:
    """A text part is billed as its text, any other part as its JSON."""
    if isinstance(part, Mapping) and isinstance(part.get("text"), str) and len(part) == 1:
        return part["text"]
    return part if isinstance(part, Mapping) else {"value": part}


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [
        str(p["text"])
        for p in (parts if isinstance(parts, list) else [])
        if isinstance(p, Mapping) and isinstance(p.get("text"), str)
    ]
