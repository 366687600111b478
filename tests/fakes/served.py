"""An aiohttp application served on a loopback port from a thread of its own: the skeleton of
the fake servers here (``upstream.FakeUpstream``, ``otlp.Collector``)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web


class Served:
    """``start()`` serves ``make_app()`` on 127.0.0.1 (a free port) and returns its URL once it
    listens; ``close()`` stops it and waits for its thread."""

    def __init__(self, make_app: Callable[[], web.Application], *,
                 tls: ssl.SSLContext | None = None, **runner: Any) -> None:
        self._make_app, self._tls, self._runner = make_app, tls, runner
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def run() -> None:
                self._stop = asyncio.Event()
                runner = web.AppRunner(self._make_app(), access_log=None, **self._runner)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._tls)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self.url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
                ready.set()
                await self._stop.wait()
                await runner.cleanup()

            loop.run_until_complete(run())
            loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake server did not start"
        return self.url

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
