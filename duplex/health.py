"""Health probes: an HTTP GET, or a real WebSocket handshake for streaming services (moshi)."""

from __future__ import annotations

import functools
import ssl
import time
import urllib.error
import urllib.request
from typing import Callable

from .plan import Health

POLL = 0.05  # tight: users hate Compose's 30 s default interval


@functools.lru_cache(maxsize=8)
def client_context(ca: str) -> ssl.SSLContext:
    """A TLS client context trusting `ca` (bundle.pem: the system roots plus the local CA). Built
    once per file, not on every 50 ms health poll; a failure is not cached, so a fixed file works."""
    return ssl.create_default_context(cafile=ca)


def probe_once(health: Health, timeout: float = 2.0) -> bool:
    if health.kind == "none" or health.url is None:
        return True
    try:
        context = client_context(health.ca) if health.ca else None
    except (OSError, ssl.SSLError):  # the local CA went missing or broke: unhealthy, never a crash
        return False
    if health.kind == "websocket":
        return _websocket(health.url, timeout, context)
    try:
        with urllib.request.urlopen(health.url, timeout=timeout, context=context) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _websocket(url: str, timeout: float, context=None) -> bool:
    """moshi sends a single 0x00 byte once it is ready to talk; only that counts as healthy."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect
    try:
        with connect(url, open_timeout=timeout, close_timeout=0.5,
                     **({"ssl": context} if context and url.startswith("wss:") else {})) as ws:
            first = ws.recv(timeout=timeout)
    except (OSError, TimeoutError, WebSocketException):
        return False
    return isinstance(first, bytes) and first[:1] == b"\x00"


def wait_healthy(health: Health, alive: Callable[[], bool], *, timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll until healthy; returns "healthy", "exited" (the process died) or "timeout"."""
    deadline = clock() + (health.timeout if timeout is None else timeout)
    while True:
        if not alive():
            return "exited"
        if probe_once(health, timeout=1.0):
            return "healthy"
        if clock() >= deadline:
            return "timeout"
        sleep(POLL)
