"""The gateway's ledger writer: the records of its upstream attempts, appended in batches by
one thread (group commit).

A ledger append is durable: it takes the ledger's lock and fsyncs (about 2 ms on an ordinary
disk). One append per request, each from its own thread, made every request wait for the disk
and for the others' fsyncs behind one lock (under 64 concurrent clients the gateway served a
few hundred requests a second, with a p99 of a second). Here the records that arrive while a
write is under way wait for the next one, which appends them all with one lock and one fsync,
and settles their budget reservations under the budget lock at the same time (exactly as one
``settle`` does for one record).

A request does not wait for its record unless it holds a budget reservation: its answer has
gone out already, and a client's next request on the same connection need not wait for the
disk. Such a record lingers up to 50 ms for others to share its write (one client sending
request after request would otherwise pay a thread wake-up and an fsync for each). A budgeted
request waits, and its record is written at once, so that the next request of the session sees
its real cost rather than its reservation. Either way the write is the recorder's, not the
request's: a client that hangs up cannot cancel it, and the server writes every pending record
before it stops (``drain``).
"""

from __future__ import annotations

import asyncio
import logging

from burnless.gateway import core

log = logging.getLogger("burnless")


LINGER_S = 0.05  # how long a record nobody waits for may wait for others to share its write
MAX_BATCH = 1024  # records written at once at most


class Recorder:
    """Ledger records written by one writer task, in batches, in the order they came."""

    def __init__(self, guard: core.Guard, linger: float = LINGER_S) -> None:
        self.guard = guard
        self.linger = linger
        self._pending: list[tuple[core.Reservation | None, core.LedgerRecord,
                                  asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._now = asyncio.Event()  # someone waits (a budgeted request, the server stopping)

    def record(self, reservation: core.Reservation | None, record: core.LedgerRecord, *,
               wait: bool = False) -> asyncio.Future[None]:
        """Queue ``record`` (settling ``reservation``); the future is done once it is in the
        ledger (or failed: the error is logged here, the future gets it too). ``wait``: the
        caller waits for it, so it is written at once rather than after ``linger``."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((reservation, record, done))
        if wait or len(self._pending) >= MAX_BATCH:
            self._now.set()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return done

    async def _write(self) -> None:
        while self._pending:
            if not self._now.is_set():
                # A record nobody waits for lingers a little: one client sending request
                # after request would otherwise cost a thread wake-up and an fsync each.
                try:
                    await asyncio.wait_for(self._now.wait(), self.linger)
                except asyncio.TimeoutError:
                    pass
            self._now.clear()
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            calls = [(res, rec) for res, rec, _ in batch]
            try:
                await asyncio.to_thread(core.settle_all, self.guard, calls)
            except Exception as exc:  # a full disk, a read-only ledger: the answers went out
                log.warning("could not record %d gateway call(s) in the ledger (%s); their "
                            "budget reservations stay open", len(batch), exc)
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                        fut.exception()  # retrieved: logged above, not again at collection
                continue
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def drain(self) -> None:
        """Write every queued record now and wait until they are in (before the server
        stops)."""
        while self._writer is not None and not self._writer.done():
            self._now.set()
            await asyncio.shield(self._writer)
