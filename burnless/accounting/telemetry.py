"""OpenTelemetry: each ledger record is also a span, when a collector is configured.

With the optional extra (``pip install 'burnless[otel]'``) and ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, the ledger's writers call ``emit`` after each
append: one span per call — ``run``'s worker calls and the gateway's upstream attempts alike,
response-cache hits and refusals too — following the GenAI semantic conventions:

    gen_ai.operation.name     chat (one model request), invoke_agent (an agent CLI's loop)
    gen_ai.provider.name      anthropic | openai | gcp.gemini | the command's program
    gen_ai.request.model      the model of the call
    gen_ai.usage.input_tokens                 every input token, cached ones included (the
    gen_ai.usage.cache_read.input_tokens      convention); the ledger's ``tokens.input`` is
    gen_ai.usage.cache_creation.input_tokens  the uncached part only
    gen_ai.usage.output_tokens
    burnless.tier / .role / .session / .cost_usd (absent when unknown) / .cost_source /
    .status / .run_id / .task_id / .key / .client / .cached / .refused_by

Without the variable nothing here is imported (the ledger checks it first). The standard
``OTEL_*`` variables apply (service name, headers, timeouts, batch delay, ``OTEL_SDK_DISABLED``).
The SDK is set up at the first span of a process (its imports take ~0.4 s, once); spans are
batched and exported from a background thread, so a call never waits for the collector. At
exit what is still queued gets ``EXIT_FLUSH_S`` to leave: a collector that is down or silent
delays the end of a run by that at most. A missing extra is said once on stderr, never an
error.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from burnless.accounting.ledger import LedgerRecord
    from burnless.settings import Tier

log = logging.getLogger("burnless")

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXIT_FLUSH_S = 0.5  # the most a run's exit waits for the collector to take its last spans
EXPORT_TIMEOUT_S = 3.0  # one export's bound unless OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT says
TIMEOUT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
_PROVIDERS = {"claude": "anthropic", "codex": "openai", "gemini": "gcp.gemini"}
_FORMATS = {"claude-json": "anthropic", "claude-stream-json": "anthropic",
            "codex-jsonl": "openai", "gemini-json": "gcp.gemini"}
_ERRORS = frozenset({"failed", "partial", "interrupted", "lost", "refused"})

_lock = threading.Lock()
_tracer: Any = None  # the SDK's Tracer once set up; False when it cannot be
_processor: Any = None


def enabled() -> bool:
    """Whether spans are wanted: an OTLP endpoint is set and the SDK is not disabled."""
    return any(os.environ.get(v) for v in ENDPOINT_VARS) and (
        os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true")


def emit(record: LedgerRecord, tier: Tier | None = None) -> None:
    """The span of one ledger record (``tier``: the tier's settings, when the caller has them:
    they say the provider and the kind of call). Never raises: telemetry must not fail a call.
    The first span of a process sets the SDK up (its imports take ~0.4 s, once)."""
    global _tracer
    try:
        end = time.time_ns()
        if _tracer is None:
            with _lock:
                if _tracer is None:
                    _tracer = _make_tracer()
        if _tracer:
            _start_span(_tracer, record, tier, end)
    except Exception as exc:  # a broken SDK install, an odd value: the call is recorded anyway
        log.debug("telemetry: span not emitted: %r", exc)


def _start_span(tracer: Any, record: LedgerRecord, tier: Tier | None, end: int) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attrs = attributes(record, tier)
    start = end - int(max(record.duration_s, 0.0) * 1e9)
    span = tracer.start_span(f"{attrs['gen_ai.operation.name']} "
                             f"{attrs.get('gen_ai.request.model', record.tier)}",
                             kind=SpanKind.CLIENT, attributes=attrs, start_time=start)
    if record.status in _ERRORS:
        span.set_attribute("error.type", record.refused_by or record.status)
        span.set_status(Status(StatusCode.ERROR, record.reason[:200] or record.status))
    span.end(end_time=end)


def attributes(record: LedgerRecord, tier: Tier | None) -> dict[str, Any]:
    """The span's attributes (OpenTelemetry GenAI conventions + ``burnless.*``)."""
    t = record.tokens
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent" if tier is not None and tier.agent_loop
        else "chat",
        "gen_ai.provider.name": provider(tier),
        "gen_ai.usage.input_tokens": t.input + t.cache_read + t.cache_write,
        "gen_ai.usage.output_tokens": t.output,
        "gen_ai.usage.cache_read.input_tokens": t.cache_read,
        "gen_ai.usage.cache_creation.input_tokens": t.cache_write,
        "burnless.tier": record.tier,
        "burnless.role": record.role,
        "burnless.session": record.session,
        "burnless.status": record.status,
        "burnless.cost_source": record.cost_source,
        "burnless.run_id": record.run_id,
        "burnless.cached": record.cached,
    }
    model = record.model or (tier.model if tier is not None else None)
    if model:
        attrs["gen_ai.request.model"] = model
    if record.cost_usd is not None:  # an unknown cost is absent, never 0
        attrs["burnless.cost_usd"] = record.cost_usd
    for name, value in (("task_id", record.task_id), ("key", record.key),
                        ("client", record.client), ("refused_by", record.refused_by or "")):
        if value:
            attrs[f"burnless.{name}"] = value
    return attrs


def provider(tier: Tier | None) -> str:
    """``gen_ai.provider.name``: the API kind of an api tier, else what the command runs (by
    its program, else the output format it speaks), else the program's name."""
    if tier is None:
        return "_OTHER"
    if tier.api:
        return tier.api
    program = Path(tier.argv[0]).name if tier.argv else ""
    return _PROVIDERS.get(program) or _FORMATS.get(tier.format) or program or "_OTHER"


def _make_tracer() -> Any:
    """The SDK's tracer, or False when the extra is not installed (said once)."""
    global _processor
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
                    "(%s); install burnless[otel] to export spans", exc.name or exc)
        return False
    from burnless import __version__

    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        # Not set by OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES, which win.
        resource = resource.merge(Resource({SERVICE_NAME: "burnless"}))
    # The exporter reads OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT itself; its own default (10 s)
    # would keep a dead collector's retries going long after a run.
    timeout = None if any(os.environ.get(v) for v in TIMEOUT_VARS) else EXPORT_TIMEOUT_S
    # Our own exit hook, not the provider's: its shutdown waits for a slow export.
    provider_ = TracerProvider(resource=resource, shutdown_on_exit=False)
    _processor = BatchSpanProcessor(OTLPSpanExporter(timeout=timeout))
    provider_.add_span_processor(_processor)
    atexit.register(_flush_at_exit)
    return provider_.get_tracer("burnless", __version__)


def _flush_at_exit() -> None:
    # The processor's shutdown exports what is queued and waits on the exporter (its timeout,
    # its retries): it runs in a daemon thread given EXIT_FLUSH_S, past which it is abandoned
    # with the process. A collector that is down or silent delays a run's end by that at most.
    if _processor is None:
        return
    done = threading.Thread(target=_processor.shutdown, name="burnless-otel-exit", daemon=True)
    done.start()
    done.join(EXIT_FLUSH_S)
