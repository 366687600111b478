"""CostWatch, the ceiling of a Claude Code stream-json call, fed the usage shapes a hostile or
buggy stream can print."""

from __future__ import annotations

import time

import orjson

from burnless.settings import Tier
from burnless.workers.command import CostWatch

SONNET = "claude-sonnet-4-6"  # $3 in, $15 out per million


def _event(mid: str | None, inp: int, out: int, model: str = SONNET) -> bytes:
    msg: dict[str, object] = {"model": model, "content": [],
                              "usage": {"input_tokens": inp, "output_tokens": out}}
    if mid is not None:
        msg["id"] = mid
    return orjson.dumps({"type": "assistant", "message": msg})


def _watch(ceiling: float) -> CostWatch:
    return CostWatch(Tier(name="silver", command="claude", model=SONNET), ceiling)


def test_repeated_and_shrinking_figures_of_one_message_count_once_at_their_largest() -> None:
    w = _watch(1.0)
    for inp, out in ((1000, 10), (1000, 500), (10, 10), (1000, 500)):
        assert w(_event("m1", inp, out)) is None
    assert abs(w.spent - (1000 * 3 + 500 * 15) / 1e6) < 1e-12
    w(_event("m2", 1000, 0))
    assert abs(w.spent - (2000 * 3 + 500 * 15) / 1e6) < 1e-12


def test_lines_that_are_not_usage_are_ignored() -> None:
    w = _watch(1e-9)
    for line in (b"not json \"assistant\" \"usage\"", b'{"type":"user","usage":{}}',
                 b'{"type":"assistant","message":{"usage":"x"}}', b"[1, 2]"):
        assert w(line) is None
    assert w.spent == 0.0
    assert w(_event(None, 100, 100)) is not None  # any priced usage passes a tiny ceiling


def test_many_messages_cost_linear_time() -> None:
    """Every event used to re-sum every message seen so far: 50,000 messages (a long or
    hostile stream) took ~17 s of CPU in the pipe's reader, which the worker then waits on."""
    w = _watch(1e9)
    lines = [_event(f"m{i}", 1, 1) for i in range(50_000)]
    started = time.process_time()
    for line in lines:
        w(line)
    assert time.process_time() - started < 5.0
    assert abs(w.spent - 50_000 * 18 / 1e6) < 1e-6
