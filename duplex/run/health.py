"""Health probes: an HTTP GET, or for streaming services (moshi) the two phases of duplex.standalone.wscheck:
the real WebSocket handshake until ready, then an HTTP answer that never takes the conversation."""

from __future__ import annotations

import functools
import ssl
import time
import urllib.error
import urllib.request
from typing import Callable

from ..plan import Health
from ..standalone import wscheck

POLL = 0.05  # tight: users hate Compose's 30 s default interval
# Every request duplex makes to look at a service (health waits, `inv status`, the dashboard's
# sampling and scraping, the images' and published health checks) carries this query: the shipped
# servers leave such requests out of their access log (servers/telemetry.py, PROBE_MARK), so the
# log people read is the service's traffic, not duplex talking to itself. Servers ignore the query.
PROBE_QUERY = "duplex-probe=1"


def marked(url: str) -> str:
    """`url` with duplex's probe marker in its query."""
    return f"{url}{'&' if '?' in url else '?'}{PROBE_QUERY}"


@functools.lru_cache(maxsize=8)
def client_context(ca: str) -> ssl.SSLContext:
    """A TLS client context trusting `ca` (bundle.pem: the system roots plus the local CA). Built
    once per file, not on every 50 ms health poll; a failure is not cached, so a fixed file works."""
    return ssl.create_default_context(cafile=ca)


def probe_once(health: Health, timeout: float = 2.0, *, phase: str = "ready") -> bool:
    """`phase`: "ready" (start-up: a WebSocket service must hand out its ready byte) or "alive"
    (afterwards, `inv status`: it must answer at all; a conversation may hold the session)."""
    if health.kind == "none" or health.url is None:
        return True
    try:
        context = client_context(health.ca) if health.ca else None
    except (OSError, ssl.SSLError):  # the local CA went missing or broke: unhealthy, never a crash
        return False
    if health.kind == "websocket":
        return websocket_problem(health.url, timeout, context, phase) is None
    try:
        with urllib.request.urlopen(marked(health.url), timeout=timeout, context=context) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def websocket_problem(url: str, timeout: float, context=None, phase: str = "ready") -> str | None:
    """None when healthy in that phase, else what was wrong (duplex.standalone.wscheck, as every check runs it)."""
    if context is None and url.startswith("wss:"):
        context = ssl.create_default_context()
    return (wscheck.handshake if phase == "ready" else wscheck.alive)(url, timeout, context)


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
