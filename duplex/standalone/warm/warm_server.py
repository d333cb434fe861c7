"""The server process: preload once, serve the app with uvicorn on the supervisor's socket, reload in place.

Exit codes: 0 after a stop, RESTART when an edit needs a fresh process (the supervisor starts one).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import signal
import socket
import sys
import threading

from warm_app import Dispatcher
from warm_modules import Modules, compile_once

RESTART = 75  # EX_TEMPFAIL: "start me again"
PR_SET_PDEATHSIG = 1


def serve(args) -> int:
    _die_with(args.parent)
    # the last thing at exit (atexit runs it after every handler registered later): the interpreter
    # then skips its final collection over the models' and the app's objects, 0.1-0.2 s of a stop
    atexit.register(gc.freeze)
    signal.signal(signal.SIGTERM, _exit_now)  # until uvicorn installs its own (the preload may be slow)
    root = os.getcwd()
    sys.path.insert(0, root)  # like uvicorn's --app-dir "."
    import uvicorn

    server: uvicorn.Server | None = None

    def restart() -> None:
        # Stop accepting first (new connections wait in the supervisor's backlog for the fresh
        # process), then give connections this process already accepted a moment to send their
        # request and get a 503: uvicorn's shutdown closes a connection with no request yet
        # unanswered, which a client sees as a reset, not as "retry".
        for listener in server.servers:
            listener.close()
        asyncio.get_running_loop().create_task(_exit_when_answered(server))

    compile_once(root)  # a reload compiles only the files that changed
    dispatcher = Dispatcher(args.app, args.preload, Modules(root), on_restart=restart, drain=args.drain)
    config = uvicorn.Config(dispatcher, lifespan="on", timeout_graceful_shutdown=args.grace,
                            log_level=args.log_level)  # configures logging: the preload's lines show
    server = uvicorn.Server(config)
    try:
        dispatcher.boot()
        threading.Thread(target=_control, args=(args.control_fd, dispatcher), daemon=True,
                         name="warm-control").start()
        sock = socket.socket(fileno=args.serve_fd)
        server.run(sockets=[sock])
    finally:
        if dispatcher.release is not None:
            dispatcher.release()
    return RESTART if dispatcher.restarting else 0


async def _exit_when_answered(server, patience: float = 0.25) -> None:
    """Exit once every accepted connection has a request (answered 503) or after `patience`
    seconds (an idle keep-alive connection may never send one; closing it is allowed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while loop.time() < deadline and any(getattr(conn, "cycle", None) is None
                                         for conn in server.server_state.connections):
        await asyncio.sleep(0.005)
    server.should_exit = True


def _control(fd: int, dispatcher: Dispatcher) -> None:
    """Each line from the supervisor is a JSON list of changed files: reload, one edit at a time."""
    with os.fdopen(fd, "r", encoding="utf-8") as pipe:
        for line in pipe:
            dispatcher.ready.wait()  # the event loop and the first generation are up
            if dispatcher.restarting:
                return
            future = asyncio.run_coroutine_threadsafe(dispatcher.reload(json.loads(line)), dispatcher.loop)
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - a bug here must not pass for a good reload
                dispatcher.loop.call_soon_threadsafe(dispatcher.restart, f"the reload itself failed "
                                                     f"({type(exc).__name__}: {exc}); restarting fully")
                return


def _exit_now(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _die_with(parent: int) -> None:
    """Linux: SIGTERM when the supervisor dies, even by SIGKILL (no orphaned server)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        raise SystemExit(0)
