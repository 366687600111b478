"""aiohttp, imported without the certificate loads it does at import time.

Importing ``aiohttp`` builds two module-level TLS contexts, and each loads the system's CA
certificates: about 40 ms of the ~190 ms in which ``burnless serve`` becomes ready, paid even
when every upstream is plain HTTP on loopback (the simulator, a local model server). The
servers here import aiohttp from this module (``from burnless.aio import aiohttp, web``), which
imports it through ``load()``: that skips those two loads; the contexts
aiohttp keeps then trust nothing, so anything that fell back on them would fail verification
(fail closed), never connect unverified. The gateway never falls back on them: every upstream
connection gets ``tls()``, a verified context with the system's certificates, loaded the first
time an ``https`` upstream is used.
"""

from __future__ import annotations

import ssl
import sys
import threading
from typing import Any

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def load() -> None:
    """Import aiohttp, unless it is already imported, without its certificate loads."""
    if "aiohttp" in sys.modules:
        return
    cls: Any = ssl.SSLContext
    own = cls.__dict__.get("set_default_verify_paths")  # None: inherited from _ssl
    with _lock:
        cls.set_default_verify_paths = _skipped  # what create_default_context() calls
        try:
            import aiohttp  # noqa: F401
        finally:
            if own is None:
                del cls.set_default_verify_paths
            else:
                cls.set_default_verify_paths = own


def _skipped(self: ssl.SSLContext) -> None:
    return None


load()
import aiohttp  # noqa: E402  (after load(): the point of this module)
from aiohttp import web  # noqa: E402
from aiohttp.web_protocol import RequestHandler  # noqa: E402

__all__ = ["RequestHandler", "aiohttp", "load", "tls", "web"]


def tls() -> ssl.SSLContext:
    """The verified client context of upstream connections: the system's CA certificates (or
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), hostnames checked; loaded once."""
    global _context
    with _lock:
        if _context is None:
            ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])  # as aiohttp's own: it speaks HTTP/1.1 only
            _context = ctx
        return _context
