"""The prompt-caching billing model: one test (or more) per rule of docs/simulator.md."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnless.accounting.tokens import estimate_tokens
from burnless.sim.billing import (
    CacheControlError,
    PromptCache,
    Usage,
    cost_usd,
    minimum_cacheable_tokens,
    split_blocks,
)
from tests.unit.conftest import Sim
from tests.unit.sim.conftest import rules_message, send

MODEL = "claude-sonnet-4-6"  # minimum cacheable length 1024 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def text(tokens: int, tag: str, ttl: str | None = None) -> dict:
    """A text block of exactly `tokens` estimated tokens, distinct per tag."""
    body = f"{tag}:".ljust(tokens * 4, "x")
    block: dict = {"type": "text", "text": body}
    if ttl:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return block


def req(*blocks: dict, system=None, tools=None, model: str = MODEL, **extra) -> dict:
    r: dict = {"model": model, "max_tokens": 100, **extra}
    r["messages"] = [{"role": "user", "content": list(blocks)}]
    if system is not None:
        r["system"] = system
    if tools is not None:
        r["tools"] = tools
    return r


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> PromptCache:
    return PromptCache(clock)


# -- usage figures and block accounting ----------------------------------------------------


def test_first_call_writes_the_prefix_and_the_second_reads_it(cache: PromptCache) -> None:
    r = req(text(1500, "doc", "5m"), text(10, "question"))
    first = cache.bill(r)
    assert first == Usage(
        input_tokens=10, cache_creation_input_tokens=1500, ephemeral_5m_input_tokens=1500
    )
    second = cache.bill(r)
    assert second == Usage(input_tokens=10, cache_read_input_tokens=1500)


def test_text_blocks_count_their_text_and_other_blocks_their_canonical_json() -> None:
    tool = {"name": "Write", "input_schema": {"type": "object"}, "description": "d"}
    r = {
        "model": MODEL,
        "system": "You are terse.",
        "tools": [dict(tool, cache_control={"type": "ephemeral"})],
        "messages": [{"role": "user", "content": "hello there"}],
    }
    blocks = split_blocks(r)
    canonical = '{"description":"d","input_schema":{"type":"object"},"name":"Write"}'
    assert [b.tokens for b in blocks] == [
        estimate_tokens(canonical),  # sorted keys, no cache_control, no spaces
        estimate_tokens("You are terse."),
        estimate_tokens("hello there"),
    ]


def test_usage_reports_the_api_fields_and_converts_to_tokens() -> None:
    u = Usage(1, 6, 3, 4, ephemeral_5m_input_tokens=2, ephemeral_1h_input_tokens=4)
    api = u.to_api()
    assert api["cache_creation"] == {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 4}
    assert api["cache_creation_input_tokens"] == 6
    assert (api["input_tokens"], api["cache_read_input_tokens"], api["output_tokens"]) == (1, 3, 4)
    t = u.tokens()
    assert (t.input, t.output, t.cache_read, t.cache_write) == (1, 4, 3, 6)


# -- order: tools, then system, then messages ----------------------------------------------


def test_blocks_follow_the_api_order_whatever_the_key_order() -> None:
    r = {
        "messages": [{"role": "user", "content": [text(1, "m1"), text(1, "m2")]}],
        "system": [text(1, "s")],
        "tools": [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}],
        "model": MODEL,
    }
    assert [b.section for b in split_blocks(r)] == [
        "tools",
        "tools",
        "system",
        "messages",
        "messages",
    ]


def test_a_tool_change_invalidates_the_system_cache_but_a_message_change_does_not(
    cache: PromptCache,
) -> None:
    system = [text(1500, "system", "5m")]
    tools = [{"name": "Write", "input_schema": {"type": "object"}}]
    cache.bill(req(text(5, "q1"), system=system, tools=tools))
    same_prefix = cache.bill(req(text(5, "q2"), system=system, tools=tools))
    assert same_prefix.cache_read_input_tokens > 1500
    tools2 = [{"name": "Write", "input_schema": {"type": "object"}, "description": "new"}]
    changed_tool = cache.bill(req(text(5, "q1"), system=system, tools=tools2))
    assert changed_tool.cache_read_input_tokens == 0
    assert changed_tool.cache_creation_input_tokens > 1500


def test_the_same_text_in_another_role_or_section_is_another_prefix(cache: PromptCache) -> None:
    block = text(1500, "same", "5m")
    cache.bill(req(block))
    as_system = cache.bill(
        {"model": MODEL, "system": [block], "messages": [{"role": "user", "content": "q"}]}
    )
    as_assistant = cache.bill(
        {"model": MODEL, "messages": [{"role": "assistant", "content": [block]}]}
    )
    assert as_system.cache_read_input_tokens == 0
    assert as_assistant.cache_read_input_tokens == 0


# -- breakpoints: at most 4; writes only at breakpoints ------------------------------------


def test_four_breakpoints_are_accepted_and_five_are_a_400(cache: PromptCache) -> None:
    four = req(*(text(300, f"b{i}", "5m") for i in range(4)))
    cache.bill(four)
    five = req(*(text(300, f"b{i}", "5m") for i in range(5)))
    with pytest.raises(CacheControlError, match="maximum of 4 .*Found 5"):
        cache.bill(five)


def test_automatic_caching_uses_a_slot_and_the_last_block(cache: PromptCache) -> None:
    auto = req(text(1500, "doc"), text(10, "q"), cache_control={"type": "ephemeral"})
    assert cache.bill(auto).cache_creation_input_tokens == 1510
    assert cache.bill(auto).cache_read_input_tokens == 1510
    full = req(*(text(300, f"b{i}", "5m") for i in range(4)), cache_control={"type": "ephemeral"})
    full["messages"][0]["content"].append(text(5, "tail"))
    with pytest.raises(CacheControlError, match="maximum of 4"):
        cache.bill(full)


def test_no_write_happens_before_the_breakpoint(cache: PromptCache) -> None:
    # The breakpoint is on a block that changes every call: the stable blocks before it
    # were never written, so the lookback finds nothing (the docs' "common mistake").
    stable = [text(1500, "static")]
    cache.bill(req(*stable, text(10, "ts=1", "5m")))
    again = cache.bill(req(*stable, text(10, "ts=2", "5m")))
    assert again.cache_read_input_tokens == 0
    assert again.cache_creation_input_tokens == 1510


def test_a_breakpoint_inside_the_read_prefix_is_written_free(cache: PromptCache) -> None:
    # Request 2 reads blocks 1-10 through its second breakpoint; its first breakpoint (block 5)
    # had no entry: it is written at no charge, and request 3 can read it.
    blocks = [text(300, f"b{i}") for i in range(1, 11)]

    def marked(*at: int, tail: str = "q") -> dict:
        content = [
            dict(b, cache_control={"type": "ephemeral"}) if i + 1 in at else b
            for i, b in enumerate(blocks)
        ]
        return req(*content, text(5, tail))

    cache.bill(marked(10))
    second = cache.bill(marked(5, 10))
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (3000, 0)
    third = req(*blocks[:4], dict(blocks[4], cache_control={"type": "ephemeral"}), text(9, "new"))
    assert cache.bill(third).cache_read_input_tokens == 1500


def test_empty_text_blocks_cannot_carry_cache_control(cache: PromptCache) -> None:
    with pytest.raises(CacheControlError, match="empty text"):
        cache.bill(req({"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}))


# -- the 20-block lookback -----------------------------------------------------------------


def conversation(n: int, breakpoints: tuple[int, ...]) -> dict:
    """n blocks of 200 tokens; breakpoints are 1-based block numbers, as in the docs."""
    return req(
        *(text(200, f"block{i}", "5m" if i in breakpoints else None) for i in range(1, n + 1))
    )


def test_lookback_finds_the_previous_write_in_a_growing_conversation(cache: PromptCache) -> None:
    # The docs' example: turn 1 writes at block 10, turn 2 (breakpoint 15) reads it.
    cache.bill(conversation(10, (10,)))
    turn2 = cache.bill(conversation(15, (15,)))
    assert turn2.cache_read_input_tokens == 2000
    assert turn2.cache_creation_input_tokens == 1000


def test_lookback_stops_after_20_positions(cache: PromptCache) -> None:
    # Turn 3 of the docs' example: breakpoint on block 35 checks blocks 35..16 and misses
    # the entry at block 15; a second breakpoint at 15 starts a new window and finds it.
    cache.bill(conversation(15, (15,)))
    missed = cache.bill(conversation(35, (35,)))
    assert missed.cache_read_input_tokens == 0
    found = PromptCache(Clock())
    found.bill(conversation(15, (15,)))
    assert found.bill(conversation(35, (15, 35))).cache_read_input_tokens == 3000


def test_lookback_window_counts_the_breakpoint_itself(cache: PromptCache) -> None:
    cache.bill(conversation(16, (16,)))
    edge = cache.bill(conversation(35, (35,)))  # block 16 is the 20th position from 35
    assert edge.cache_read_input_tokens == 3200


def test_the_longest_cached_prefix_wins(cache: PromptCache) -> None:
    cache.bill(conversation(12, (12,)))
    cache.bill(conversation(14, (14,)))
    assert cache.bill(conversation(18, (18,))).cache_read_input_tokens == 2800


# -- TTL: 5 minutes (1 hour on request), refreshed by a hit --------------------------------


def test_a_5_minute_entry_expires(cache: PromptCache, clock: Clock) -> None:
    r = req(text(1500, "doc", "5m"), text(5, "q"))
    cache.bill(r)
    clock.now += 299
    assert cache.bill(r).cache_read_input_tokens == 1500
    clock.now += 300
    expired = cache.bill(r)
    assert expired.cache_read_input_tokens == 0
    assert expired.cache_creation_input_tokens == 1500


def test_a_hit_refreshes_the_lifetime(cache: PromptCache, clock: Clock) -> None:
    r = req(text(1500, "doc", "5m"), text(5, "q"))
    cache.bill(r)
    for _ in range(5):  # 20 minutes in all, never 5 minutes idle
        clock.now += 240
        assert cache.bill(r).cache_read_input_tokens == 1500


def test_a_1_hour_entry_outlives_5_minutes_and_bills_as_1h(
    cache: PromptCache, clock: Clock
) -> None:
    r = req(text(1500, "doc", "1h"), text(5, "q"))
    first = cache.bill(r)
    assert first.ephemeral_1h_input_tokens == 1500
    assert first.ephemeral_5m_input_tokens == 0
    clock.now += 3599
    assert cache.bill(r).cache_read_input_tokens == 1500
    clock.now += 3600
    assert cache.bill(r).cache_read_input_tokens == 0


def test_mixed_ttls_bill_1h_up_to_b_and_5m_from_b_to_c(cache: PromptCache) -> None:
    r = req(text(1500, "tools-ish", "1h"), text(500, "history", "5m"), text(5, "q"))
    u = cache.bill(r)
    assert (u.ephemeral_1h_input_tokens, u.ephemeral_5m_input_tokens) == (1500, 500)
    assert u.cache_creation_input_tokens == 2000
    assert u.input_tokens == 5


def test_a_1h_breakpoint_after_a_5m_one_is_a_400(cache: PromptCache) -> None:
    with pytest.raises(CacheControlError, match="1h"):
        cache.bill(req(text(1500, "a", "5m"), text(500, "b", "1h")))


# -- per model ------------------------------------------------------------------------------


def test_entries_are_per_model(cache: PromptCache) -> None:
    r = req(text(5000, "doc", "5m"), text(5, "q"))
    cache.bill(r)
    other = cache.bill(dict(r, model="claude-opus-4-8"))
    assert other.cache_read_input_tokens == 0
    assert other.cache_creation_input_tokens == 5000
    assert cache.bill(r).cache_read_input_tokens == 5000


# -- minimum cacheable length ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-sonnet-4-6", 1024),
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-opus-4-8", 1024),
        ("opus-4.8", 1024),
        ("claude-opus-4-1", 1024),
        ("claude-opus-4-7", 2048),
        ("claude-opus-4-6", 4096),
        ("claude-opus-4-5-20251101", 4096),
        ("claude-haiku-4-5", 4096),
        ("haiku-4.5", 4096),
        ("claude-3-5-haiku-20241022", 2048),
        ("claude-3-haiku-20240307", 2048),
        ("some-local-model", 1024),
    ],
)
def test_minimum_cacheable_length_by_model(model: str, minimum: int) -> None:
    assert minimum_cacheable_tokens(model) == minimum


def test_a_prefix_below_the_minimum_is_not_cached(cache: PromptCache) -> None:
    short = req(text(1023, "doc", "5m"), text(5, "q"))
    for _ in range(2):
        u = cache.bill(short)
        assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (0, 0)
        assert u.input_tokens == 1028
    enough = req(text(1024, "doc", "5m"), text(5, "q"))
    cache.bill(enough)
    assert cache.bill(enough).cache_read_input_tokens == 1024


def test_the_minimum_applies_to_the_whole_prefix_not_the_block(cache: PromptCache) -> None:
    # A short breakpoint block after a long unmarked system prompt is cacheable.
    r = req(text(10, "q", "5m"), system=[text(2000, "system")])
    assert cache.bill(r).cache_creation_input_tokens == 2010


def test_haiku_4_5_needs_4096_tokens(cache: PromptCache) -> None:
    r = req(text(3000, "doc", "5m"), model="claude-haiku-4-5")
    cache.bill(r)
    assert cache.bill(r).cache_read_input_tokens == 0


# -- the Claude Code billing header -------------------------------------------------------


def test_the_billing_header_block_is_ignored(cache: PromptCache) -> None:
    def with_header(cch: str) -> dict:
        header = {"type": "text", "text": f"x-anthropic-billing-header: cc_version=1; cch={cch};"}
        return req(text(5, "q"), system=[header, text(1500, "system", "5m")])

    cache.bill(with_header("aaaa"))
    assert cache.bill(with_header("bbbb")).cache_read_input_tokens == 1500


# -- prices -------------------------------------------------------------------------------


def test_price_multipliers() -> None:
    million = 1_000_000
    prices = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
    assert cost_usd(Usage(input_tokens=million), **prices) == pytest.approx(3.0)
    assert cost_usd(Usage(ephemeral_5m_input_tokens=million), **prices) == pytest.approx(3.75)
    assert cost_usd(Usage(ephemeral_1h_input_tokens=million), **prices) == pytest.approx(6.0)
    assert cost_usd(Usage(cache_read_input_tokens=million), **prices) == pytest.approx(0.30)
    assert cost_usd(Usage(output_tokens=million), **prices) == pytest.approx(15.0)


# -- a property: the four input figures never overlap and always add up ---------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(1, 800), st.sampled_from([None, None, "5m"]), st.integers(0, 3)),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_usage_always_adds_up_to_the_request(requests: list) -> None:
    cache = PromptCache(Clock())
    for spec in requests:
        blocks = [text(n, f"t{tag}-{i}", ttl) for i, (n, ttl, tag) in enumerate(spec)]
        if sum(1 for b in blocks if "cache_control" in b) > 4:
            continue
        total = sum(b.tokens for b in split_blocks(req(*blocks)))
        u = cache.bill(req(*blocks))
        parts = (u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens)
        assert min(parts) >= 0
        assert sum(parts) == total
        assert u.cache_creation_input_tokens == (
            u.ephemeral_5m_input_tokens + u.ephemeral_1h_input_tokens
        )


# --------------------------------------------------------------------------- refreshes, TTLs, HTTP


def request_body(*content: dict[str, Any], model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": list(content)}],
        **extra,
    }


def tool(name: str, tokens: int, ttl: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"name": name, "description": "d" * (tokens * 4), "input_schema": {}}
    if ttl:
        t["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return t


def test_five_breakpoints_across_tools_system_and_messages_are_a_400(sim: Sim) -> None:
    body = request_body(
        text(10, "m", "5m"),
        tools=[tool("a", 10, "1h"), tool("b", 10, "1h")],
        system=[text(10, "s1", "5m"), text(10, "s2", "5m")],
    )
    status, _, answer = send(sim.url, body)
    assert status == 400 and "Found 5" in answer["error"]["message"]
    assert sim.records()[-1]["usage"] is None  # nothing billed, nothing cached
    assert len(sim.server.state.cache) == 0


def test_a_lookback_hit_refreshes_the_entry_it_found() -> None:
    clock = Clock()
    cache = PromptCache(clock)

    def turn(n: int, bp: int) -> dict[str, Any]:
        return request_body(
            *(text(200, f"b{i}", "5m" if i == bp else None) for i in range(1, n + 1)))

    cache.bill(turn(10, 10))
    clock.now += 240
    assert cache.bill(turn(15, 15)).cache_read_input_tokens == 2000  # read at block 10
    clock.now += 240  # 8 minutes after block 10 was written, 4 after it was read
    assert cache.bill(turn(10, 10)).cache_read_input_tokens == 2000


def test_a_1h_entry_is_refreshed_by_an_hour() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    r = request_body(text(1500, "doc", "1h"), text(5, "q"))
    cache.bill(r)
    clock.now += 3000
    assert cache.bill(r).cache_read_input_tokens == 1500
    clock.now += 3500  # 6,500 s after the write, 3,500 after the hit
    assert cache.bill(r).cache_read_input_tokens == 1500
    clock.now += 3600
    assert cache.bill(r).cache_read_input_tokens == 0


def test_mixed_ttls_1h_must_come_first_and_bill_as_the_docs_say() -> None:
    cache = PromptCache(Clock())
    system = [text(1500, "sys", "1h")]
    first = cache.bill(request_body(text(600, "hist1", "5m"), text(5, "q"), system=system))
    assert (first.ephemeral_1h_input_tokens, first.ephemeral_5m_input_tokens) == (1500, 600)
    # The history changed: A = the 1-hour entry (read), B = A, C = the 5-minute breakpoint.
    second = cache.bill(request_body(text(700, "hist2", "5m"), text(5, "q"), system=system))
    assert second.cache_read_input_tokens == 1500
    assert (second.ephemeral_1h_input_tokens, second.ephemeral_5m_input_tokens) == (0, 700)
    assert second.input_tokens == 5
    # 1h on tools, 5m on the system: accepted. 5m on tools, 1h on the system: a 400.
    cache.bill(request_body(text(5, "q"), tools=[tool("t", 900, "1h")],
                            system=[text(900, "s", "5m")]))
    with pytest.raises(CacheControlError, match="1h"):
        cache.bill(request_body(text(5, "q"), tools=[tool("t", 900, "5m")],
                                system=[text(900, "s", "1h")]))
    # Automatic caching with a 1h TTL lands on the last block, after an explicit 5m one.
    with pytest.raises(CacheControlError, match="1h"):
        cache.bill(
            request_body(
                text(900, "a", "5m"),
                text(900, "b"),
                cache_control={"type": "ephemeral", "ttl": "1h"},
            )
        )
    with pytest.raises(CacheControlError, match="ttl"):
        cache.bill(request_body(text(900, "a", "10m")))


def test_tool_definitions_are_a_cache_level_of_their_own() -> None:
    cache = PromptCache(Clock())
    tools = [tool("Read", 600), tool("Write", 600, "5m")]
    first = cache.bill(request_body(text(5, "q"), tools=tools, system="be terse"))
    tools_only = sum(b.tokens for b in split_blocks({"model": MODEL, "tools": tools}))
    assert first.cache_creation_input_tokens == tools_only > 1024
    # Another system prompt: the tools prefix is still read.
    other = cache.bill(request_body(text(5, "q"), tools=tools, system="be verbose"))
    assert other.cache_read_input_tokens == first.cache_creation_input_tokens
    # A tool changed: nothing is read.
    changed = [tool("Read", 601), tools[1]]
    assert cache.bill(request_body(text(5, "q"), tools=changed)).cache_read_input_tokens == 0


def test_tool_result_and_image_blocks_can_be_breakpoints() -> None:
    cache = PromptCache(Clock())
    tools = [{"name": "Read", "input_schema": {"type": "object"}}]
    use = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "y" * 6000}
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QUJD" * 1200},
    }

    def convo(*, mark_result: bool, tail: list[dict[str, Any]]) -> dict[str, Any]:
        res = dict(result, cache_control={"type": "ephemeral"}) if mark_result else result
        return {
            "model": MODEL,
            "tools": tools,
            "messages": [
                {"role": "user", "content": "read a.py"},
                {"role": "assistant", "content": [use]},
                {"role": "user", "content": [res, *tail]},
            ],
        }

    first = cache.bill(convo(mark_result=True, tail=[]))
    assert first.cache_creation_input_tokens > 1500 and first.input_tokens == 0
    # The next turn moves the breakpoint to an image after the result: it reads the prefix
    # up to the result (the breakpoint's own cache_control is not part of the prefix).
    marked_image = dict(image, cache_control={"type": "ephemeral"})
    second = cache.bill(convo(mark_result=False, tail=[marked_image]))
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == estimate_tokens(
        orjson.dumps(image, option=orjson.OPT_SORT_KEYS)
    )
    assert (
        cache.bill(convo(mark_result=False, tail=[marked_image])).cache_creation_input_tokens == 0
    )


def test_minimum_cacheable_length_over_http(sim: Sim) -> None:
    # Haiku 4.5 needs 4,096 tokens, Opus 4.7 2,048, Sonnet 4.6 1,024: a 3,000-token prompt is
    # cached by the last two only, silently (no error), and an unknown model uses 1,024.
    prefix = [text(3000, "doc", "5m")]
    for model, cached in (
        ("claude-haiku-4-5", False),
        ("claude-opus-4-7", True),
        (MODEL, True),
        ("my-local-model", True),
    ):
        body = request_body(text(5, "q"), model=model, system=prefix)
        send(sim.url, body)
        _, _, again = send(sim.url, body)
        assert (again["usage"]["cache_read_input_tokens"] == 3000) is cached, model
        if not cached:
            assert again["usage"]["input_tokens"] == 3005


def test_entries_are_per_model_string(sim: Sim) -> None:
    body = request_body(text(5000, "doc", "5m"))
    send(sim.url, body)
    for model, hit in (("claude-haiku-4-5", False), ("claude-haiku-4-5-20251001", False)):
        _, _, answer = send(sim.url, dict(body, model=model))
        assert (answer["usage"]["cache_read_input_tokens"] > 0) is hit
    _, _, same = send(sim.url, body)
    assert same["usage"]["cache_read_input_tokens"] == 5000


def test_cache_entries_expire_on_the_servers_clock(sim: Sim) -> None:
    body = rules_message()
    _, _, first = send(sim.url, body)
    sim.clock.now += 299
    assert send(sim.url, body)[2]["usage"]["cache_read_input_tokens"] > 0
    sim.clock.now += 299  # refreshed by the hit: still alive
    assert send(sim.url, body)[2]["usage"]["cache_read_input_tokens"] > 0
    sim.clock.now += 300
    expired = send(sim.url, body)[2]["usage"]
    assert expired["cache_read_input_tokens"] == 0
    assert expired["cache_creation_input_tokens"] == first["usage"]["cache_creation_input_tokens"]
