"""A fake OpenTelemetry collector: a real aiohttp server on loopback that accepts OTLP/HTTP
trace exports (``POST /v1/traces``, protobuf, optionally gzipped) and keeps their spans, decoded
with the message classes of ``opentelemetry-proto``."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.served import Served


@dataclass
class Span:
    name: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


@dataclass
class Collector:
    spans: list[Span] = field(default_factory=list)
    exports: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._served: Served | None = None

    def start(self) -> Collector:
        def app() -> web.Application:
            a = web.Application()
            a.router.add_post("/v1/traces", self.handle)
            return a

        self._served = Served(app)
        self.url = self._served.start()
        return self

    def close(self) -> None:
        if self._served is not None:
            self._served.close()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def handle(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        raw = await request.read()
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(raw)
        got = []
        for rs in msg.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(Span(s.name, s.kind, {a.key: _value(a.value) for a in s.attributes},
                                    resource, s.start_time_unix_nano, s.end_time_unix_nano,
                                    s.status.code, s.status.message))
        with self._lock:
            self.spans.extend(got)
            self.exports += 1
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def wait(self, n: int, timeout: float = 10.0) -> list[Span]:
        """The spans once at least ``n`` arrived (or whatever came by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.spans) >= n:
                    return list(self.spans)
            time.sleep(0.02)
        with self._lock:
            return list(self.spans)
