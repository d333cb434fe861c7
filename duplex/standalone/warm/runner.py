"""duplex's warm reloader: serve an ASGI app, re-import it on each edit, keep its models loaded.

    python runner.py --app servers.asr.app:app --preload servers.asr.loaders:preload \\
        --watch servers/asr --host 127.0.0.1 --port 8000

Runs inside the service's venv (stdlib, uvicorn, and watchfiles when present; never duplex), from
the project root. Two processes: this supervisor binds the listening socket once (connections
queue in its backlog across restarts) and watches the files; the server process (warm_server.py)
runs the preload, imports the app and serves it, and on each edit re-imports the app in place
around the preloaded models (warm_app.py). When an edit cannot be applied in place the server says
why and exits with RESTART, and the supervisor starts a fresh one. See docs/warm-reload.md.

Asked, not edited (`inv restart NAME --code|--model`, the dashboard's buttons): SIGUSR1 to the
supervisor re-imports the app in place as an edit would (models kept); SIGUSR2 starts a fresh
server process, so the preload loads the models again.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading

RESTART = 75  # the server asks for a fresh process (EX_TEMPFAIL); kept equal to warm_server.RESTART
RELOAD_CODE, RELOAD_MODEL = signal.SIGUSR1, signal.SIGUSR2  # kept equal to duplex.warm's


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="runner.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--app", required=True, help="the ASGI app, module:attr")
    p.add_argument("--preload", help="module:function run once per process before the app is imported")
    p.add_argument("--watch", action="append", default=[], help="folder to watch (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--grace", type=float, default=5.0, help="seconds requests get to finish at a stop")
    p.add_argument("--drain", type=float, default=10.0,
                   help="seconds an old generation's requests get to finish before its lifespan stops")
    p.add_argument("--log-level", default="info")
    p.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)  # the server process's own flags
    p.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def say(level: str, message: str) -> None:
    """uvicorn's log format, so the reloader's lines read like the server's."""
    print(f"{level + ':':<10}{message}", file=sys.stderr, flush=True)


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class ServerProcess:
    """One server process, on the shared socket, with a pipe that carries the changed files."""

    def __init__(self, args: argparse.Namespace, sock: socket.socket):
        read, self.control = os.pipe()
        forward = ["--app", args.app, "--grace", str(args.grace), "--drain", str(args.drain),
                   "--log-level", args.log_level]
        if args.preload:
            forward += ["--preload", args.preload]
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *forward, "--serve-fd", str(sock.fileno()),
             "--control-fd", str(read), "--parent", str(os.getpid())],
            pass_fds=(sock.fileno(), read))
        os.close(read)

    def send(self, changed: set[str]) -> None:
        try:
            os.write(self.control, (json.dumps(sorted(changed)) + "\n").encode())
        except OSError:  # it is exiting; the supervisor's loop sees that next
            pass

    def stop(self, grace: float) -> None:
        os.close(self.control)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def forget_bytecode(changed: set[str]) -> None:
    """Python trusts a .pyc whose source has the same size and mtime second: two quick edits of the
    same length would import the first. Drop the cached bytecode of every changed file."""
    for path in changed:
        if path.endswith(".py"):
            try:
                os.remove(importlib.util.cache_from_source(path))
            except (OSError, ValueError, NotImplementedError):
                pass


def supervise(args: argparse.Namespace) -> int:
    import warm_watch
    dirs = [os.path.realpath(d) for d in (args.watch or ["."])]
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        say("ERROR", f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    asked: set[int] = set()  # reloads asked for by signal, served at the loop's next turn (<= 0.25 s)
    for sig in (RELOAD_CODE, RELOAD_MODEL):
        signal.signal(sig, lambda signum, _frame: asked.add(signum))
    say("INFO", f"Warm reload: watching {', '.join(os.path.relpath(d) for d in dirs)} with "
                f"{warm_watch.backend()}; supervisor [{os.getpid()}] holds http://{args.host}:{args.port}")
    server = ServerProcess(args, sock)
    waiting = False  # the server died on its own: start a fresh one at the next change
    for changed in warm_watch.batches(dirs, stop):
        if stop.is_set():
            break
        forget_bytecode(changed)
        code = server.proc.poll()
        model, reimport = RELOAD_MODEL in asked, RELOAD_CODE in asked
        asked.clear()
        if model or (reimport and code is not None):
            server.stop(args.grace)
            say("INFO", "Warm reload: " + ("reloading the model as asked" if model else
                                           "a code reload was asked for and the server process had exited")
                + "; starting a fresh server process (the preload runs again)")
            server, waiting = ServerProcess(args, sock), False
        elif code == RESTART or (code is not None and changed):
            server.stop(args.grace)
            say("INFO", "Warm reload: starting a fresh server process (the preload runs again)")
            server, waiting = ServerProcess(args, sock), False
        elif code is not None and not waiting:
            say("ERROR", f"Warm reload: the server process exited with code {code}; "
                         "waiting for a change to start it again")
            waiting = True
        elif (changed or reimport) and code is None:
            server.send(changed)  # an empty list: re-import as asked, nothing changed on disk
    server.stop(args.grace)
    sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.serve_fd is not None:
        import warm_server
        return warm_server.serve(args)
    return supervise(args)


if __name__ == "__main__":  # not on import: a spawned multiprocessing worker re-runs this file
    sys.exit(main())
