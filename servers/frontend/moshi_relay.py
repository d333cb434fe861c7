"""Relay a browser WebSocket to a backend (moshi's chat, asr's /stream), so the page needs only the
frontend's origin; the backend's close code and reason reach the browser unchanged."""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from .. import origins

log = logging.getLogger("frontend.moshi_relay")

NOT_CONFIGURED = 4404  # application close codes live in 4000-4999
UNREACHABLE = 4502
OWN_ORIGIN_ONLY = origins.Origins()  # none listed: the frontend's own pages and clients without an Origin


async def _browser_to_moshi(browser: WebSocket, moshi) -> None:
    while True:
        message = await browser.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await moshi.send(message["bytes"])
        elif message.get("text") is not None:
            await moshi.send(message["text"])


async def _moshi_to_browser(moshi, browser: WebSocket) -> None:
    async for data in moshi:
        if isinstance(data, bytes):
            await browser.send_bytes(data)
        else:
            await browser.send_text(data)


async def relay(browser: WebSocket, moshi_ws_url: str | None, service: str = "moshi",
                allowed: origins.Origins = OWN_ORIGIN_ONLY) -> None:
    """Accept the browser (a page of this frontend's origin, or a client without one: the backend
    sees only the relay, so the check is here), connect to the backend (query string passed on),
    pump frames both ways."""
    if await origins.refuse_foreign(browser, allowed):
        return
    await browser.accept()
    if not moshi_ws_url:
        await browser.close(NOT_CONFIGURED, f"{service} is not part of this run")
        return
    target = moshi_ws_url + (f"?{browser.url.query}" if browser.url.query else "")
    try:
        moshi = await connect(target, open_timeout=15, max_size=16 * 2**20, compression=None)
    except (OSError, asyncio.TimeoutError, TimeoutError, WebSocketException) as exc:  # refused, slow, bad handshake
        log.warning("cannot reach %s at %s: %r", service, target, exc)
        await browser.close(UNREACHABLE, f"cannot reach {service} at {moshi_ws_url}"[:120])
        return
    async with moshi:
        pumps = [
            asyncio.create_task(_browser_to_moshi(browser, moshi)),
            asyncio.create_task(_moshi_to_browser(moshi, browser)),
        ]
        done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc and not isinstance(exc, (ConnectionClosed, WebSocketDisconnect)):
                log.warning("%s relay ended: %r", service, exc)
    code, reason = moshi.close_code, moshi.close_reason or ""
    if code in (None, 1005, 1006):  # no close frame (the backend vanished): say so, as 1011
        code, reason = (1000, "") if code is None else (1011, f"{service} closed the connection")
    try:
        await browser.close(code, reason)
    except (RuntimeError, WebSocketDisconnect):
        pass  # the browser already went away
