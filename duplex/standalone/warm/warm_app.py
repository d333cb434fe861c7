"""The ASGI app uvicorn serves: it hands each request to the current generation of the user's app.

A generation is one fresh import of the app (every unpinned project module read from disk) with its
own lifespan. On an edit the dispatcher holds new requests, imports the next generation, starts its
lifespan, swaps it in, then lets the old one finish its requests and shuts its lifespan down. When
an edit cannot be applied in place it asks for a full restart and says why: never stale code.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
import time
import traceback
from typing import Callable

from warm_asgi import Lifespan, error_app, unavailable
from warm_modules import HERE, Modules

log = logging.getLogger("uvicorn.error")


class Generation:
    def __init__(self, number: int, app, broken: str | None = None):
        self.number, self.app, self.broken = number, app, broken
        self.state: dict = {}
        self.inflight = 0
        self.lifespan: Lifespan | None = None
        self.idle: asyncio.Event | None = None  # set once retired and its last request is done

    async def start(self) -> None:
        if self.broken is None:
            self.lifespan = Lifespan(self.app, self.state)
            await self.lifespan.startup()

    async def stop(self) -> None:
        if self.lifespan is not None:
            await self.lifespan.shutdown()
            self.lifespan = None


class Dispatcher:
    def __init__(self, target: str, preload: str | None, modules: Modules,
                 on_restart: Callable[[], None], drain: float = 10.0):
        self.target, self.preload, self.modules = target, preload, modules
        self.on_restart, self.drain = on_restart, drain
        self.current: Generation | None = None
        self.retiring: set[Generation] = set()
        self.release: Callable[[], object] | None = None
        self.preload_failed = False
        self.restarting = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.gate: asyncio.Event | None = None  # cleared while a reload runs: requests wait
        self.lock: asyncio.Lock | None = None
        self.ready = threading.Event()  # set once serving: reloads wait for it

    # --- start: preload once, then the first generation --------------------------------------------

    def boot(self) -> None:
        if self.preload:
            began = time.perf_counter()
            try:
                result = _resolve(self.preload)()
                self.release = result if callable(result) else None
                log.info("Warm reload: preloaded %s in %.2f s", self.preload, time.perf_counter() - began)
            except BaseException as exc:  # noqa: BLE001 - the app then loads what it needs itself
                self.preload_failed = True
                log.error("Warm reload: the preload %s failed; serving without it:\n%s", self.preload,
                          traceback.format_exc().rstrip())
                if isinstance(exc, KeyboardInterrupt):
                    raise
        self.modules.pin()
        if self.modules.pinned:
            log.info("Warm reload: an edit to these restarts fully (the preload loaded them): %s",
                     ", ".join(_rel(f) for f in sorted(self.modules.pinned_files())))
        try:
            self.current = Generation(1, _resolve(self.target))
        except BaseException as exc:  # noqa: BLE001 - shown to every request until an edit fixes it
            self.current = self._broken(1, "the app failed to import", exc)

    def _broken(self, number: int, what: str, exc: BaseException) -> Generation:
        text = _format(exc)
        log.error("Warm reload: %s; every request gets HTTP 500 with the error until an edit "
                  "fixes it:\n%s", what, text)
        return Generation(number, error_app(f"duplex warm reload: {what}", text), broken=what)

    # --- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if not self.gate.is_set():
            await self.gate.wait()
        if self.restarting:
            return await unavailable(scope, send)
        gen = self.current
        gen.inflight += 1
        try:
            await gen.app({**scope, "state": dict(gen.state)}, receive, send)
        finally:
            gen.inflight -= 1
            if gen.idle is not None and gen.inflight == 0:
                gen.idle.set()

    async def _lifespan(self, receive, send) -> None:
        await receive()  # lifespan.startup
        self.loop = asyncio.get_running_loop()
        self.gate, self.lock = asyncio.Event(), asyncio.Lock()
        self.gate.set()
        try:
            await self.current.start()
        except BaseException as exc:  # noqa: BLE001
            self.current = self._broken(1, "the app's lifespan startup failed", exc)
        await send({"type": "lifespan.startup.complete"})
        self.ready.set()
        await receive()  # lifespan.shutdown
        for gen in [*self.retiring, self.current]:
            await gen.stop()
        await send({"type": "lifespan.shutdown.complete"})

    # --- reload -------------------------------------------------------------------------------------

    async def reload(self, changed: list[str]) -> None:
        async with self.lock:
            if self.restarting:
                return
            names = ", ".join(_rel(p) for p in sorted(changed))
            what = f"{names} changed" if changed else "a code reload was asked for"
            pinned = sorted(set(changed) & self.modules.pinned_files())
            if pinned:
                return self.restart(f"{_rel(pinned[0])} changed and is loaded by the preload "
                                    f"({self.preload}); restarting fully to load it again")
            if self.preload_failed:
                return self.restart(f"{what} and the preload failed at start; restarting "
                                    "fully to run it again")
            began = time.perf_counter()
            self.gate.clear()
            try:
                new = await self._next_generation(what)
                if new is None:
                    return
                old, self.current = self.current, new
                self.gate.set()
                if new.broken is None:
                    log.info("Warm reload: %s; re-imported %s in %.3f s (generation %d), "
                             "preloaded models kept", what, self.target, time.perf_counter() - began,
                             new.number)
                asyncio.ensure_future(self._retire(old))
            finally:
                if not self.restarting:
                    self.gate.set()

    async def _next_generation(self, what: str) -> Generation | None:
        number = self.current.number + 1
        self.modules.purge()
        try:
            app = _resolve(self.target)
        except SyntaxError as exc:
            if exc.filename and self.modules.root in os.path.realpath(exc.filename) + os.sep:
                return self._broken(number, f"{_rel(exc.filename)} line {exc.lineno} has a "
                                            f"syntax error", exc)
            return self.restart(f"{what}; the re-import failed ({_one_line(exc)}); "
                                "restarting fully")
        except BaseException as exc:  # noqa: BLE001 - maybe an artefact of reloading in place
            return self.restart(f"{what}; the re-import failed ({_one_line(exc)}); "
                                "restarting fully so a fresh process decides")
        new = Generation(number, app)
        try:
            await new.start()
        except BaseException as exc:  # noqa: BLE001
            return self.restart(f"{what}; the new app's lifespan startup failed "
                                f"({_one_line(exc)}); restarting fully")
        return new

    async def _retire(self, gen: Generation) -> None:
        self.retiring.add(gen)
        gen.idle = asyncio.Event()
        if gen.inflight:
            try:
                await asyncio.wait_for(gen.idle.wait(), self.drain)
            except asyncio.TimeoutError:
                log.warning("Warm reload: %d request(s) still run generation %d's code after %.0f s "
                            "(long requests or WebSockets opened before the edit); stopping its "
                            "lifespan anyway", gen.inflight, gen.number, self.drain)
        await gen.stop()
        self.retiring.discard(gen)

    def restart(self, reason: str) -> None:
        """Hand over to a fresh process: the supervisor keeps the socket, requests queue meanwhile."""
        log.warning("Warm reload: %s", reason)
        self.restarting = True
        if self.gate is not None:
            self.gate.set()  # requests already accepted get 503 + Retry-After, never old code
        self.on_restart()
        return None


def _resolve(target: str):
    """`package.module:attr.path` -> the object (imported now)."""
    module_name, _, attrs = target.partition(":")
    obj = importlib.import_module(module_name)
    for attr in filter(None, attrs.split(".")):
        obj = getattr(obj, attr)
    return obj


def _format(exc: BaseException) -> str:
    """The traceback without the reloader's and importlib's own frames: the user's code only."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not f.filename.startswith((HERE, "<frozen importlib"))])
    return "".join(te.format()).rstrip()


def _rel(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path


def _one_line(exc) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0] if exc is not None else "unknown error"
