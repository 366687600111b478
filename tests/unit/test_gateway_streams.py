"""The gateway's pure parts: masks put back in split deltas, the SSE reader, stream rewriting."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from burnless.gateway.masking import Restorer
from burnless.gateway.protocols import CHAT, MESSAGES, RESPONSES, SSEReader, Usage, well_formed
from burnless.gateway.upstream import StreamRewrite, _StreamState

MASK = "[REDACTED:github:0a1b2c3d]"
SECRET = 'ghp_sec"ret\nline'  # needs escaping inside JSON text
TEXT = f"before {MASK} middle [not a mask] [REDACTED:other:ffffffff] {MASK}! array[0]"
RESTORED = TEXT.replace(MASK, SECRET)


def stream(restorer: Restorer, parts: list[str], json_text: bool = False) -> str:
    out = "".join(restorer.delta("ch", p, json_text) for p in parts)
    tail, _ = restorer.flush("ch")
    return out + tail


def test_every_split_of_a_mask_is_put_back() -> None:
    for i in range(len(TEXT) + 1):
        for j in range(i, len(TEXT) + 1):
            parts = [TEXT[:i], TEXT[i:j], TEXT[j:]]
            assert stream(Restorer({MASK: SECRET}), parts) == RESTORED, (i, j)
    assert stream(Restorer({MASK: SECRET}), list(TEXT)) == RESTORED  # one character a delta


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=8))
def test_any_chunking_gives_the_restored_text(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(TEXT)]
    parts = [TEXT[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert stream(Restorer({MASK: SECRET}), parts) == RESTORED


def test_json_text_gets_the_secret_escaped() -> None:
    args = orjson.dumps({"content": f"key={MASK}"}).decode()
    out = stream(Restorer({MASK: SECRET}), [args[:20], args[20:]], json_text=True)
    assert orjson.loads(out) == {"content": f"key={SECRET}"}


def test_held_text_is_bounded_and_plain_brackets_pass() -> None:
    r = Restorer({MASK: SECRET})
    assert r.delta("c", "x = a[0] + b[1]") == "x = a[0] + b[1]"
    assert r.delta("c", "see [REDACTED:") == "see "  # may still become a mask
    assert r.delta("c", "x" * 100) == "[REDACTED:" + "x" * 100  # it did not
    assert r.flush("c") == ("", False)


def test_objects_are_restored_but_signed_blocks_are_not() -> None:
    r = Restorer({MASK: SECRET})
    msg = {"content": [{"type": "text", "text": MASK},
                       {"type": "tool_use", "input": {"path": MASK}},
                       {"type": "thinking", "thinking": MASK, "signature": "sig"}],
           "tool_calls": [{"function": {"arguments": orjson.dumps({"a": MASK}).decode()}}]}
    out = r.obj(msg)
    assert out["content"][0]["text"] == SECRET and out["content"][1]["input"]["path"] == SECRET
    assert out["content"][2]["thinking"] == MASK
    assert orjson.loads(out["tool_calls"][0]["function"]["arguments"]) == {"a": SECRET}


def test_sse_reader_across_chunks_and_line_endings() -> None:
    raw = b"event: a\r\ndata: {\"x\": 1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n"
    for size in (1, 2, 5, len(raw)):
        reader = SSEReader()
        events = [e for i in range(0, len(raw), size) for e in reader.feed(raw[i:i + size])]
        assert [(e.name, e.data) for e in events] == [("a", b'{"x": 1}'), ("", b""),
                                                      ("", b"[DONE]")]
        assert b"".join(e.raw for e in events) == raw
    reader = SSEReader(max_event=100)
    (big,) = list(reader.feed(b"data: " + b"x" * 200))
    assert reader.garbled and big.data == b""
    assert not well_formed(big.__class__(b"garbage line\n\n", "", b""))


def events_of(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.split(b"\n\n"):
        for line in block.splitlines():
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                out.append(orjson.loads(line[6:]))
    return out


def run_stream(endpoint: Any, raw: list[bytes], restorer: Restorer,
               drop: bool = False) -> tuple[bytes, Usage]:
    usage = Usage()
    state = _StreamState(endpoint, StreamRewrite(restorer, drop), usage)
    reader = SSEReader()
    out = b"".join(state.process(e) for chunk in raw for e in reader.feed(chunk))
    return out + state.finish(), usage


def sse(data: dict[str, Any], name: str | None = None) -> bytes:
    return (f"event: {name}\n".encode() if name else b"") + b"data: " + orjson.dumps(data) + \
        b"\n\n"


def test_responses_stream_numbers_stay_in_sequence_when_a_delta_is_added() -> None:
    pieces = ["hello [RED", "ACTED:github:0a1b", "2c3d"]  # the stream ends holding a tail
    evs = [sse({"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
                "content_index": 0, "delta": p, "sequence_number": i}) for i, p in
           enumerate(pieces)]
    evs.append(sse({"type": "response.output_text.done", "item_id": "m", "output_index": 0,
                    "content_index": 0, "text": "hello " + MASK[:-1], "sequence_number": 3}))
    evs.append(sse({"type": "response.completed", "response": {"usage": {
        "input_tokens": 5, "output_tokens": 2}}, "sequence_number": 4}))
    out, usage = run_stream(RESPONSES, evs, Restorer({MASK: SECRET}))
    got = events_of(out)
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    deltas = "".join(e["delta"] for e in got if e["type"] == "response.output_text.delta")
    assert deltas == "hello " + MASK[:-1]  # never completed: an unknown tail stays as it was
    assert usage.complete and usage.tokens is not None and usage.tokens.input == 5


def test_chat_usage_chunk_dropped_and_tool_arguments_restored() -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    args = orjson.dumps({"content": MASK}).decode()
    evs = [sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": args[i:i + 4]}}]}, "finish_reason": None}]})
        for i in range(0, len(args), 4)]
    evs.append(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    evs.append(sse({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}))
    evs.append(b"data: [DONE]\n\n")
    out, usage = run_stream(CHAT, evs, Restorer({MASK: SECRET}), drop=True)
    got = events_of(out)
    assert all(e["choices"] for e in got)  # the usage chunk is gone ...
    assert usage.tokens is not None and usage.tokens.input == 9  # ... but was read
    joined = "".join(c["delta"]["tool_calls"][0]["function"]["arguments"]
                     for e in got for c in e["choices"] if c["delta"].get("tool_calls"))
    assert orjson.loads(joined) == {"content": SECRET}
    assert got[-1]["choices"][0]["finish_reason"] == "stop"


def test_anthropic_tail_is_sent_before_the_block_stops() -> None:
    evs = [sse({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": t}}, "content_block_delta")
           for t in ("x [REDACTED:git", "hub:0a1b2c3d")]
    evs.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    evs.append(sse({"type": "message_stop"}, "message_stop"))
    out, usage = run_stream(MESSAGES, evs, Restorer({MASK: SECRET}))
    got = events_of(out)
    text = "".join(e["delta"]["text"] for e in got if e["type"] == "content_block_delta")
    assert text == "x [REDACTED:github:0a1b2c3d"  # no closing bracket: not a mask, kept as is
    assert [e["type"] for e in got][-2:] == ["content_block_stop", "message_stop"]
    assert usage.complete
