"""The dashboard's process: `python -m duplex.dashboard ROOT` (started by duplex.run.dashboard,
which wrote ROOT/.duplex/run/dashboard.json with the port, the token and the plan's view)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from pathlib import Path

from ..run import service as actions
from ..run.dashboard import die_with_parent, hold, info_path, read
from .feeds import Run, follow_logs
from .logbook import LogBook
from .server import make_app
from .traces import TraceBook


def act(root: Path):

    def run(what: str, name: str) -> dict:
        said: list[str] = []
        # one action on the run at a time: a click while another is in progress is refused (409)
        # with the line that names it, never queued behind a long health wait
        busy = {"wait": False, "what": f"the dashboard's {what} of {name}",
                "one": True}  # a row is one replica: asr's row is not also asr_1's
        if what == "stop":
            stopped = actions.stop_service(root, name, said.append, **busy)
            return {"ok": True, "message": f"{name} stopped" if stopped else f"{name} was not running",
                    "lines": said}
        if what.startswith("reload-"):
            part = what.removeprefix("reload-")
            took = actions.reload_service(root, name, part, said.append, wait=False, by=busy["what"], one=True)
            return {"ok": True, "message": f"{name}: {part} reloaded in {took:.2f}s", "seconds": round(took, 3),
                    "lines": said}
        took = (actions.restart_service if what == "restart" else actions.start_service)(root, name, said.append,
                                                                                         **busy)
        return {"ok": True, "message": f"{name} healthy after {took:.2f}s", "seconds": round(took, 3),
                "lines": said}
    return run


def main(argv: list[str]) -> int:
    attached = die_with_parent()
    os.nice(10)  # the services come first: the dashboard must not slow their start or their requests
    root = Path(argv[1]).resolve()
    info = read(root)
    if not info:
        print(f"dashboard: no {root}/.duplex/run/dashboard.json: start it with `inv run`", flush=True)
        return 1
    # listen at once (a browser opened on the link waits in the backlog), but import the web stack
    # only once the services are up, or after HOLD seconds of a long model load
    socks = [_listen(int(info["port"]))]
    otlp_port = info.get("otlp_port")
    if otlp_port:  # the services' trace exports, when no collector of the user's takes them
        try:
            socks.append(_listen(int(otlp_port)))
        except OSError:
            otlp_port = None  # taken since `inv run` looked: the user's collector came up
    gateway = info.get("otlp_gateway")  # found (or said missing) by `inv run`: launch.container_gateway
    if otlp_port and gateway:
        # containers export to host.docker.internal, the engine's host gateway: a loopback socket
        # is out of their reach. Only the OTLP port listens there, and it takes only trace exports.
        try:
            socks.append(_listen(int(otlp_port), gateway))
            print(f"dashboard: receiving container traces at {gateway}:{otlp_port}", flush=True)
        except OSError as exc:
            print(f"dashboard: cannot listen at {gateway}:{otlp_port} ({exc.strerror}); "
                  "container services' traces need a collector of your own", flush=True)
    hold(root, attached)
    import uvicorn  # heavy: the web server loads once the services are up (hold)
    book = LogBook()
    run = Run(root, info["planned"], book)
    stop = threading.Event()
    threading.Thread(target=run.loop, args=(stop,), daemon=True, name="sampler").start()
    for name in info["planned"]["services"]:
        threading.Thread(target=follow_logs, args=(root, name, book, run, stop), daemon=True,
                         name=f"logs-{name}").start()
    # an open page's event stream ends once the server is asked to stop: uvicorn waits for every
    # response to end, and a stream never does (a stop waited its 3 s grace and then SIGKILLed it)
    app = make_app(info["token"], run, book, act(root), TraceBook() if otlp_port else None, otlp_port,
                   closing=lambda: server.should_exit)
    # no access log: the first request carries the token in its address
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning"))
    threading.Thread(target=_exit_when_orphaned, args=(root, stop, server), daemon=True, name="orphan").start()
    asyncio.run(server.serve(sockets=socks))
    stop.set()
    return 0


ORPHAN_CHECK = 2.0  # seconds between looks at the run's record


def _exit_when_orphaned(root: Path, stop: threading.Event, server) -> None:
    """A detached run's dashboard whose record is gone (its checkout deleted, `.duplex` removed)
    can be neither found nor stopped by `inv stop`: it ends itself rather than hold its port for
    ever. Two looks in a row: the record is replaced atomically, never absent while a run has it."""
    missed = 0
    while not stop.wait(ORPHAN_CHECK):
        missed = 0 if info_path(root).exists() else missed + 1
        if missed == 2:
            print(f"dashboard: {info_path(root)} is gone (the checkout deleted?): exiting", flush=True)
            server.should_exit = True
            return


def _listen(port: int, host: str = "127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


if __name__ == "__main__":
    sys.exit(main(sys.argv))
