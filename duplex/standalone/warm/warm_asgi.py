"""Small ASGI pieces: drive an app's lifespan by hand, and the answers given instead of stale code."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("uvicorn.error")


class Lifespan:
    """Drive one app's ASGI lifespan by hand (uvicorn's `lifespan="auto"` semantics)."""

    def __init__(self, app, state: dict):
        self.app, self.state = app, state
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.sent = False

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self.task = asyncio.ensure_future(self._run(scope))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message") or "lifespan startup failed")
        if message["type"] == "error" and self.sent:
            raise message["exc"]

    async def shutdown(self, timeout: float = 30.0) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        try:
            message = await asyncio.wait_for(self.outbox.get(), timeout)
        except asyncio.TimeoutError:
            log.warning("Warm reload: an old generation's lifespan shutdown took over %.0f s", timeout)
            self.task.cancel()
            return
        if message["type"] in ("lifespan.shutdown.failed", "error"):
            exc = message.get("exc")
            log.error("Warm reload: an old generation's lifespan shutdown failed: %s",
                      message.get("message") or f"{type(exc).__name__}: {exc}")

    async def _run(self, scope) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001 - reported through the outbox
            await self.outbox.put({"type": "error", "exc": exc})
        else:
            await self.outbox.put({"type": "done"})  # returned without lifespan support

    async def _receive(self):
        return await self.inbox.get()

    async def _send(self, message) -> None:
        self.sent = True
        await self.outbox.put(message)


def error_app(title: str, detail: str):
    """An ASGI app that answers every request with HTTP 500 and the error: never the old code."""
    body = f"{title}\n\n{detail}\n".encode()

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"x-duplex-reload", b"error")]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
    return app


async def unavailable(scope, send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1"),
                                (b"connection", b"close"), (b"x-duplex-reload", b"restarting")]})
        await send({"type": "http.response.body", "body": b"duplex warm reload: restarting\n"})
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1012})  # service restart
