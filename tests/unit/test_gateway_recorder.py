"""The gateway's ledger writer (``burnless/gateway/recorder.py``): answers do not wait for the
disk, records are written in batches and all of them land, budgeted requests still settle
before they return, and a stopping server writes what is pending first."""

from __future__ import annotations

import threading
import time

import anthropic
import pytest

from burnless.storage.locks import file_lock
from tests.conftest import Workspace, records, user
from tests.unit.test_gateway import (  # noqa: F401  (fixtures)
    Start,
    _close_clients,
    ant,
    gateway,
    tiers_on,
)


def test_answers_do_not_wait_for_the_ledger_and_every_record_lands(
        ws: Workspace, gateway: Start, fakes: object) -> None:  # noqa: F811
    """Before the recorder, each request appended its own record (lock + fsync) before its
    connection could serve the next request: a client's second request on a kept-alive
    connection waited for the first one's ledger write, and under load every request queued
    behind the others' fsyncs."""
    fake = fakes()  # type: ignore[operator]
    srv = gateway(tiers_on(fake))
    client = ant(srv, timeout=5.0)
    client.messages.create(model="silver", max_tokens=5, messages=user("warm up"))
    records(ws, 1)
    threads = []
    with file_lock(ws.state / "ledger.jsonl.lock", 10):  # the disk is busy (someone holds it)
        t0 = time.monotonic()
        for i in range(5):  # one kept-alive connection, one request after another
            m = client.messages.create(model="silver", max_tokens=5,
                                       messages=user(f"turn {i}"))
            assert m.content[0].text == f"echo: turn {i}"  # type: ignore[union-attr]

        def other(i: int) -> None:  # and 10 clients at once, each on its own connection
            c = anthropic.Anthropic(base_url=srv.url, api_key="k", max_retries=0, timeout=5.0)
            with c:
                c.messages.create(model="silver", max_tokens=5, messages=user(f"other {i}"))

        threads = [threading.Thread(target=other, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - t0
        assert len(ws.ledger()) == 1  # nothing could be written meanwhile
    assert elapsed < 4.0  # no answer waited for the ledger
    got = records(ws, 16)
    assert all(r["status"] == "ok" and r["cost_usd"] > 0 and r["tier"] == "silver" for r in got)
    assert len({r["run_id"] for r in got}) == 16


def test_a_budgeted_request_settles_before_the_next_one_on_its_connection(
        ws: Workspace, gateway: Start, fakes: object) -> None:  # noqa: F811
    """Each request reserves ~$0.015 (1,000 output tokens of sonnet at most) of a $0.025 day:
    two open reservations would not fit. One after another on one connection, each is
    checked against what the previous one really cost (~$0.0004), not its reservation."""
    fake = fakes()  # type: ignore[operator]
    srv = gateway(tiers_on(fake) + "budget: {max_cost_per_day: 0.025}\n")
    client = ant(srv)
    for i in range(4):
        m = client.messages.create(model="silver", max_tokens=1000, messages=user(f"turn {i}"))
        assert m.content[0].text == f"echo: turn {i}"  # type: ignore[union-attr]
    got = records(ws, 4)
    assert all(r["status"] == "ok" for r in got)
    assert sum(r["cost_usd"] for r in got) < 0.025


def test_a_stopping_server_writes_its_pending_records_first(  # noqa: F811
        ws: Workspace, gateway: Start, fakes: object) -> None:  # noqa: F811
    fake = fakes()  # type: ignore[operator]
    srv = gateway(tiers_on(fake))
    client = ant(srv)
    lock = file_lock(ws.state / "ledger.jsonl.lock", 10)
    lock.__enter__()
    try:
        for i in range(3):
            client.messages.create(model="silver", max_tokens=5, messages=user(f"turn {i}"))
        client.close()
        closing = threading.Thread(target=srv.close)
        closing.start()
        time.sleep(0.5)
        assert closing.is_alive()  # waiting for the ledger
    finally:
        lock.__exit__(None, None, None)
    closing.join(20)
    assert not closing.is_alive()
    assert len(ws.ledger()) == 3  # written before the server stopped, no polling


@pytest.mark.parametrize("n", [1, 50])
def test_recorder_writes_batches_in_order(ws: Workspace, n: int) -> None:
    """The recorder alone: records queued while a write is under way go in the next one,
    in the order they came, each future done once its record is in the ledger."""
    import asyncio

    from burnless.config import load_config
    from burnless.gateway import core
    from burnless.gateway.recorder import Recorder

    ws.config("tiers:\n  s: {api: anthropic, model: claude-sonnet-4-5}\n")
    cfg = load_config(cwd=ws.root)

    def rec(i: int) -> core.LedgerRecord:
        return core.make_record(
            run_id=f"run-{i:03d}", task_id="t", session="s", role="execution", tier="s",
            model="claude-sonnet-4-5", status="ok", tokens=core.Tokens(input=i), cost_usd=0.0,
            cost_source="priced", duration_s=0.0, route=("s", ()), redactions=0, client="c")

    async def main() -> None:
        recorder = Recorder(core.make_guard(cfg))
        futures = [recorder.record(None, rec(i)) for i in range(n)]
        await asyncio.sleep(0)
        futures += [recorder.record(None, rec(n + i)) for i in range(n)]
        await asyncio.gather(*futures)
        assert [r["run_id"] for r in ws.ledger()] == [f"run-{i:03d}" for i in range(2 * n)]
        await recorder.drain()

    asyncio.run(main())
