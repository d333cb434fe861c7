"""Which web pages may open the servers' WebSockets (asr's /stream, mt's /ws/translate, the frontend's
relays, moshi's chat): the one Origin rule they share. Standard library only, so moshi's image can
carry it beside its own server (servers/moshi_guard.py).

A browser sends `Origin` with every WebSocket handshake and lets any page open any WebSocket, also
one on 127.0.0.1: without this check a page on any site the developer visits could stream into the
ASR server or hold moshi's one conversation. Allowed: clients that send no Origin (CLI tools, the
frontend's relay, `inv smoke`, the load generator), the server's own origin (the `Host` the request
was sent to, over http or https, and the loopback names of the same port), and the origins listed
in DUPLEX_ALLOWED_ORIGINS (comma-separated `scheme://host[:port]`, or `*` for any). `Origin: null`
(a sandboxed frame, a file: page) is never the server's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from .envvars import SettingsError

VARIABLE = "DUPLEX_ALLOWED_ORIGINS"
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
FORBIDDEN = 403

log = logging.getLogger("uvicorn.error").getChild("origins")


@dataclass(frozen=True)
class Origins:
    listed: frozenset[str] = frozenset()  # normalised `scheme://host:port`
    any: bool = False                     # DUPLEX_ALLOWED_ORIGINS=*: the check is off


def _normal(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, None for anything else (`null`, garbage)."""
    try:
        url = urlsplit(origin.strip().lower())
        port = url.port
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/") or url.query:
        return None
    return url.scheme, url.hostname, port or DEFAULT_PORTS[url.scheme]


def origins_from_env(env: Mapping[str, str]) -> Origins:
    """DUPLEX_ALLOWED_ORIGINS, or SettingsError naming the entry that is not an origin."""
    entries = [e.strip() for e in env.get(VARIABLE, "").split(",") if e.strip()]
    if "*" in entries:
        return Origins(any=True)
    listed = set()
    for entry in entries:
        parts = _normal(entry)
        if parts is None:
            raise SettingsError(f"{VARIABLE} entry {entry!r} is not an origin such as 'https://app.example.com' "
                                "or 'http://localhost:3000' (scheme, host and port only), nor '*'")
        listed.add("%s://%s:%d" % parts)
    return Origins(frozenset(listed))


def _host_header(host: str, scheme: str) -> tuple[str, int] | None:
    try:
        url = urlsplit(f"//{host.strip().lower()}")
        return (url.hostname, url.port or DEFAULT_PORTS[scheme]) if url.hostname else None
    except ValueError:
        return None


def refusal(origin: str | None, host: str | None, allowed: Origins) -> str | None:
    """None when a handshake with these `Origin` and `Host` headers may go on, else why not."""
    if origin is None or allowed.any:
        return None  # not a browser (a browser always sends Origin on a WebSocket handshake)
    parts = _normal(origin)
    if parts is not None:
        scheme, name, port = parts
        if "%s://%s:%d" % parts in allowed.listed:
            return None
        own = _host_header(host or "", scheme)
        if own is not None and own[1] == port and (own[0] == name or {own[0], name} <= LOOPBACK):
            return None  # the page this server (or the frontend relaying to it) served
    return (f"a page from the origin {origin[:80]!r} may not open this WebSocket: only this server's own "
            f"pages and clients that send no Origin may; to allow that origin, add it to {VARIABLE}")


async def refuse_foreign(ws, allowed: Origins) -> bool:
    """Refuse a Starlette WebSocket from a foreign origin before accepting it: HTTP 403 with the
    servers' JSON error (a plain 403 where the ASGI server cannot send a body). True when refused."""
    why = refusal(ws.headers.get("origin"), ws.headers.get("host"), allowed)
    if why is None:
        return False
    log.warning("WebSocket %s refused: %s", ws.url.path, why)
    from starlette.responses import JSONResponse
    try:
        await ws.send_denial_response(JSONResponse({"error": "forbidden_origin", "detail": why}, FORBIDDEN))
    except (AttributeError, RuntimeError):  # no websocket.http.response extension: uvicorn answers 403
        await ws.close(1008)
    return True


def aiohttp_middleware(allowed: Origins):
    """The same rule for an aiohttp server (moshi's, through third_party/patches/moshi/0002): a
    WebSocket upgrade from a foreign origin gets 403 and the servers' JSON error, before the handshake."""
    from aiohttp import web

    @web.middleware
    async def origin_check(request, handler):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            why = refusal(request.headers.get("Origin"), request.headers.get("Host"), allowed)
            if why is not None:
                log.warning("WebSocket %s refused: %s", request.path, why)
                return web.json_response({"error": "forbidden_origin", "detail": why}, status=FORBIDDEN)
        return await handler(request)

    return origin_check
