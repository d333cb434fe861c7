"""Relay a browser WebSocket to a backend (moshi's chat, asr's /stream, mt's /ws/translate), so the
page needs only the frontend's origin; the backend's close code and reason reach the browser
unchanged. Each session goes to a replica with a free slot (replicas.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from .. import origins
from .replicas import Pool

log = logging.getLogger("frontend.moshi_relay")

NOT_CONFIGURED = 4404  # application close codes live in 4000-4999
UNREACHABLE = 4502
# A replica whose process dies is noticed at once (its socket closes: 0.2 s for a killed moshi
# container, measured in tests/run/test_moshi_chain.py); one whose host vanishes (a lost node, a cut
# network: no FIN, no RST) by a missed ping within 2 x PING_S, and its sessions end with 1011.
# websockets' default would take 40 s; a busy backend still answers a ping within 10 s.
PING_S = 10.0
BUSY = 4429  # every replica's every slot is taken (asr's and mt's own code for one server's limit)
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


async def relay(browser: WebSocket, pool: Pool, allowed: origins.Origins = OWN_ORIGIN_ONLY,
                target: Callable[[str], str | None] = str) -> None:
    """Accept the browser (a page of this frontend's origin, or a client without one: the backend
    sees only the relay, so the check is here), connect to a replica of the backend with a free slot
    (`target` maps its URL to the WebSocket's; query string passed on), pump frames both ways.
    A replica that cannot be reached is marked down and the next one with a free slot is tried."""
    service = pool.service
    if await origins.refuse_foreign(browser, allowed):
        return
    await browser.accept()
    if not pool.replicas:
        await browser.close(NOT_CONFIGURED, f"{service} is not part of this run")
        return
    tried: list[int] = []
    while (index := pool.take(time.monotonic(), tried)) is not None:
        tried.append(index)
        try:
            ended = await _session(browser, pool, index, target)
        finally:
            pool.leave(index)  # before the browser hears the close: it may start the next session at once
        if ended is None:
            pool.mark_down(index, time.monotonic())
            continue
        try:
            await browser.close(*ended)
        except (RuntimeError, WebSocketDisconnect):
            pass  # the browser already went away
        return
    if len(tried) < len(pool.replicas):  # the others' slots are taken: say so at once, never queue
        await browser.close(BUSY, _fit(pool.busy(unreachable=len(tried))))
        return
    urls = ", ".join(pool.replicas[i].url for i in tried)
    await browser.close(UNREACHABLE, _fit(f"cannot reach {service} at {urls}"))


def _fit(reason: str) -> str:
    """A close frame's reason holds at most 123 bytes (RFC 6455)."""
    return reason.encode()[:123].decode(errors="ignore")


async def _session(browser: WebSocket, pool: Pool, index: int,
                   target: Callable[[str], str | None]) -> tuple[int, str] | None:
    """Relay one session to replica `index`; the close code and reason to give the browser, None when
    the replica could not be reached (nothing was sent)."""
    service, url = pool.service, target(pool.replicas[index].url)
    url = (url or "") + (f"?{browser.url.query}" if browser.url.query else "")
    try:
        backend = await connect(url, open_timeout=15, max_size=16 * 2**20, compression=None,
                                ping_interval=PING_S, ping_timeout=PING_S)
    except (OSError, asyncio.TimeoutError, TimeoutError, WebSocketException) as exc:  # refused, slow, bad handshake
        log.warning("cannot reach %s at %s: %r", service, url, exc)
        return None
    async with backend:
        pumps = [
            asyncio.create_task(_browser_to_moshi(browser, backend)),
            asyncio.create_task(_moshi_to_browser(backend, browser)),
        ]
        done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc and not isinstance(exc, (ConnectionClosed, WebSocketDisconnect)):
                log.warning("%s relay ended: %r", service, exc)
    code, reason = backend.close_code, backend.close_reason or ""
    if code == 1006:  # no close frame: the replica vanished; pass it over while it restarts
        pool.mark_down(index, time.monotonic())
    if code in (None, 1005, 1006):  # no close frame (the backend vanished): say so, as 1011
        code, reason = (1000, "") if code is None else (1011, f"{service} closed the connection")
    return code, reason
