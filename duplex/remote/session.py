"""The laptop half of `inv run --on ssh://…`: connect, sync, bootstrap duplex there, start the
agent (duplex/remote/agent.py), forward every port of the remote's plan and its dashboard to
127.0.0.1 here, relay the output, sync each saved edit, and on Ctrl-C stop the remote run before the
tunnels. Also the `--on` of `inv stop`, `inv status` and `inv logs`: the same command, run there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..envfile import read_secret
from ..errors import DuplexError
from ..layout import Layout
from ..run.dashboard import choose_port, port_free
from ..stack import Stack, load_stack
from .agent import EVENT, HEARTBEAT
from .bootstrap import VENV_INV, bootstrap
from .settings import RemoteSettings, load_settings
from .ssh import Connection, SshError, port_taken, reason, running, target_key
from .sync import sync
from .target import Target, parse_target
from .watch import Watcher

Say = Callable[[str], Callable[[str], None]]


@dataclass
class RunRequest:
    """What `inv run` was asked, to be asked again there (argv for the remote's own `inv`)."""
    native: bool = False
    services: list[str] | None = None
    detach: bool = False
    preflight: bool = True
    smoke: bool = False
    tls: bool = False
    otlp: str | None = None
    dashboard: bool = True
    replicas: dict[str, int] = field(default_factory=dict)

    def plan_args(self) -> list[str]:
        return [*(["--native"] if self.native else []),
                *(["--services", ",".join(self.services)] if self.services else []),
                *(["--otlp", self.otlp] if self.otlp else []),
                *[a for n, c in self.replicas.items() for a in ("--replicas", f"{n}={c}")]]

    def run_args(self) -> list[str]:
        return [*self.plan_args(), *(["--detach"] if self.detach else []),
                *(["--skip-preflight"] if not self.preflight else []), *(["--smoke"] if self.smoke else []),
                *(["--tls"] if self.tls else []), *([] if self.dashboard else ["--no-dashboard"])]


def resolve_target(text: str | bool | None) -> tuple[Target, Stack, RemoteSettings]:
    """The target of `--on URL`, or of a bare `--on` ([remote] on = … in duplex.local.toml)."""
    stack = load_stack()
    settings = load_settings(stack.root)
    if not isinstance(text, str) or not text:
        if not settings.on:
            raise DuplexError("`--on` without a target, and no default in duplex.local.toml",
                              fix='give one (`--on ssh://user@host`), or put `[remote]` with `on = "ssh://user@host"` '
                              "in duplex.local.toml beside stack.toml")
        text = settings.on
    return parse_target(text, stack.name), stack, settings


def run_remote(on: str | bool, request: RunRequest, say: Say, out=None) -> int:
    """`inv run --on`: the run's exit code (the remote `inv run`'s)."""
    target, stack, settings = resolve_target(on)
    root = stack.root
    out = out or sys.stdout
    remote_say = say("remote")
    conn = Connection(target, root)
    pid = tunnel_pid(conn)
    if pid:  # its ports are held here by our own tunnel: say so, not "port taken"
        raise DuplexError(f"a detached run on {target.host} still has its ports forwarded here (ssh pid {pid})",
                          fix=f"`inv status --on {target.url}` shows it; `inv stop --on {target.url}` ends it "
                              "and its ports here, then run again")
    remote_say(f"connecting to {target.address}")
    conn.open()
    session = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` here stops both sides, as Ctrl-C does
    try:
        sync(conn, say=remote_say)
        bootstrap(conn, remote_say)
        environ = {k: v for k, v in os.environ.items() if k.startswith("DUPLEX_PORT_")}
        token = (os.environ.get("HF_TOKEN") or read_secret(root, "HF_TOKEN")) if settings.send_token else None
        if token:
            environ["HF_TOKEN"] = token  # on the agent's stdin: never in an argv (ps), never on its disk
        session = Session(conn, request, say, out, settings.grace, stack.stack.dashboard_port)
        return session.run({"environ": environ, "offset": settings.port_offset, "grace": settings.grace,
                            "plan_args": request.plan_args(), "run_args": request.run_args()})
    finally:
        signal.signal(signal.SIGTERM, previous)
        if session is not None:
            session.close()
        conn.close()


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


class Session:
    """One agent over one connection: the events it sends, the forwards they call for."""

    def __init__(self, conn: Connection, request: RunRequest, say: Say, out, grace: float, board_port: int | None):
        self.conn, self.request, self.say, self.out, self.grace = conn, request, say, out, grace
        self.board_port = board_port  # the dashboard's port here: the stack's (None: duplex's default)
        self.ports: dict[str, list[int]] = {}  # the plan's, as the agent reported them: name -> [here, there]
        self.forwards: list[tuple[int, int]] = []
        self.watcher: Watcher | None = None
        self.code: int | None = None
        self.error: DuplexError | None = None
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None

    def send(self, line: str) -> None:
        with self.lock:
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the agent is gone: its end says why

    def run(self, request: dict) -> int:
        # its own session: the terminal's Ctrl-C is ours to turn into "stop", not ssh's to die of
        self.proc = self.conn.popen([".venv/bin/python", "-m", "duplex.remote.agent"], cwd=self.conn.target.path,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, bufsize=1, start_new_session=True)
        self.send(json.dumps(request))
        threading.Thread(target=self._heartbeat, daemon=True).start()
        stderr: list[str] = []
        threading.Thread(target=lambda: stderr.extend(self.proc.stderr), daemon=True).start()
        interrupted = False
        while True:
            try:
                for line in self.proc.stdout:
                    self._line(line)
                break
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: leave now; the agent stops the run after its grace
                    self.say("duplex")(f"left without waiting: the remote run stops within {self.grace:g} s "
                                       f"(`inv stop --on {self.conn.target.url}` now)")
                    raise
                interrupted = True
                self.say("duplex")(f"Ctrl-C: stopping the run on {self.conn.target.host}")
                self.send("stop")
        returncode = self.proc.wait()
        if self.error is not None:
            raise self.error
        if self.code is None:  # the agent never said how it ended: the connection did
            why = reason("".join(stderr)) or f"ssh exited {returncode}"
            raise SshError(f"the connection to {self.conn.target.address} ended during the run ({why})",
                           fix=f"the run there stops itself {self.grace:g} s after it last heard from here; "
                           f"`inv status --on {self.conn.target.url}` shows what is left", kind="closed")
        return 130 if interrupted and self.code == 0 else self.code

    def _heartbeat(self) -> None:
        while self.proc.poll() is None:
            time.sleep(min(HEARTBEAT, self.grace / 3))
            self.send(".")

    def _line(self, line: str) -> None:
        if not line.startswith(EVENT):
            self.out.write(line)
            self.out.flush()
            return
        event = json.loads(line[len(EVENT):])
        if "ports" in event:
            self._ports(event["ports"])
        elif "ready" in event:
            self._ready(event.get("dashboard"))
        elif "exit" in event:
            self.code = int(event["exit"])
            if event.get("going"):
                url = self.conn.target.url
                self.error = DuplexError(
                    f"a run is already going on {self.conn.target.host} ({', '.join(event['going'])}); "
                    "nothing was changed there",
                    fix=f"`inv logs --on {url} --follow` to watch it, `inv stop --on {url}` to end it and run again")

    def _forward(self, local: int, remote: int) -> None:
        """Through the master; a detached run's ports only checked now, forwarded by its own tunnel."""
        if not self.request.detach:
            self.conn.forward(local, remote)
        elif not port_free(local):
            raise port_taken(f"forwarding 127.0.0.1:{local} to {self.conn.target.address}", local)
        self.forwards.append((local, remote))

    def _ports(self, ports: dict[str, list[int]]) -> None:
        try:
            for _name, (local, remote) in ports.items():
                self._forward(local, remote)
        except SshError as err:  # a port taken here: nothing starts there
            self.error = err
            self.send("abort")
            return
        where = ", ".join(f"{n} {local}" + (f"→{remote}" if remote != local else "") for n, (local, remote) in ports.items())
        self.say("tunnel")(f"127.0.0.1 here reaches {self.conn.target.host}: {where}")
        self.ports = ports
        self.send("start")

    def _ready(self, board: dict | None) -> None:
        tell = self.say("tunnel")
        for name, (local, _remote) in self.ports.items():
            tell(f"  {name:<10} http://127.0.0.1:{local}")
        if board:
            local, _why = choose_port(self.board_port, {p for p, _ in self.forwards})
            try:
                self._forward(local, board["port"])
                tell(f"  {'dashboard':<10} http://127.0.0.1:{local}/?t={board['token']}")
            except SshError as err:
                tell(f"warning: the dashboard is not forwarded: {err}")
        if self.request.detach:
            return
        self.watcher = Watcher(self.conn, self.say("sync"))
        self.watcher.start()
        tell("edits saved here are synced there and served by its reload; Ctrl-C stops both sides")

    def close(self) -> None:
        if self.watcher:
            self.watcher.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.request.detach:
            if self.code == 0 and self.forwards:
                keep_tunnel(self.conn, self.forwards, self.say("tunnel"))
            return
        for local, remote in self.forwards:
            try:
                self.conn.cancel_forward(local, remote)
            except SshError:
                pass  # the master is gone, and its forwards with it


# -- a detached run's tunnel ----------------------------------------------------------------------
def tunnel_file(conn: Connection) -> Path:
    return Layout(conn.root).remote / target_key(conn.target) / "tunnel.json"


def keep_tunnel(conn: Connection, forwards: list[tuple[int, int]], tell: Callable[[str], None]) -> None:
    """A detached run keeps its ports here: an `ssh -N` of its own (the master ends with this
    command), recorded for `inv stop --on`."""
    specs = [a for local, remote in forwards for a in ("-L", f"127.0.0.1:{local}:127.0.0.1:{remote}")]
    argv = ["ssh", *conn.options(shared=False), "-N", "-o", "ExitOnForwardFailure=yes", *specs, "--", conn.target.host]
    path = tunnel_file(conn)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".log"), "w") as log:  # a file: a pipe would break when this command ends
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None and not all(_listening(p) for p, _ in forwards):
        time.sleep(0.05)
    if proc.poll() is not None:
        tell(f"warning: the ports could not stay forwarded: {reason(path.with_suffix('.log').read_text())}")
        return
    path.write_text(json.dumps({"pid": proc.pid, "ports": forwards}))
    tell(f"the ports stay forwarded (ssh pid {proc.pid}) until `inv stop --on {conn.target.url}`")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _recorded_pid(conn: Connection) -> int | None:
    try:
        return int(json.loads(tunnel_file(conn).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_tunnel(conn: Connection) -> int | None:
    """End a detached run's tunnel; its pid, or None when none ran."""
    pid = _recorded_pid(conn)
    if pid is None:
        return None
    tunnel_file(conn).unlink(missing_ok=True)
    try:
        if b"ssh" not in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
            return None  # the pid was reused by something else
    except OSError:
        pass  # gone, or no /proc (macOS): the kill below decides
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    return pid


def tunnel_pid(conn: Connection) -> int | None:
    """The recorded tunnel's pid while it runs."""
    pid = _recorded_pid(conn)
    return pid if pid is not None and running(pid) else None


# -- `inv stop --on`, `inv status --on`, `inv logs --on` --------------------------------------------
NOT_THERE = 86
# duplex's `inv` in the remote folder, and a watcher of our stdin (fd 3: a background job's own stdin
# is /dev/null, and it ignores SIGINT) that ends it (SIGTERM) when the connection ends: without a
# tty, sshd signals nothing
THERE = (f'cd -- "$1" 2>/dev/null && [ -x {VENV_INV} ] || exit {NOT_THERE}; shift; exec 3<&0; '
         f'{VENV_INV} "$@" </dev/null & pid=$!; {{ cat <&3 >/dev/null; kill $pid; }} >/dev/null 2>&1 & wait $pid')


def remote_inv(on: str | bool, args: list[str], say: Say, send: bool = False) -> int:
    """Run duplex's `inv` with `args` in the remote folder, its output here as it comes; its exit code.
    `send`: this project's edits synced there first (`inv restart asr --on`)."""
    target, stack, _settings = resolve_target(on)
    with Connection(target, stack.root) as conn:
        if send:
            sync(conn, say=say("remote"))
        # stdin stays open while we run: its end (Ctrl-C here, a dropped link) ends `inv logs --follow` there
        proc = conn.popen(["sh", "-c", THERE, "sh", target.path, *args], stdin=subprocess.PIPE)
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # our stdin's end reaches the watcher there, which interrupts `inv`
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
            code = 130
        if code == NOT_THERE:
            raise DuplexError(f"duplex has not run in {target.host}:{target.path} yet",
                              fix=f"`inv run --on {target.url}` first")
        if args[:1] == ["stop"]:
            pid = stop_tunnel(conn)
            if pid:
                say("tunnel")(f"stopped the forwarded ports here (ssh pid {pid})")
        elif args[:1] == ["status"] and "--json" not in args:
            pid = tunnel_pid(conn)
            say("tunnel")(f"ports forwarded here by ssh pid {pid}" if pid else
                          "no ports forwarded here (an attached `inv run --on` forwards its own)")
        conn.raise_for([VENV_INV, *args], code, "", check=False)
        return code

