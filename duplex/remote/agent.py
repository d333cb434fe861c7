"""The remote half of `inv run --on`, started by the laptop over ssh in the remote project folder
(`.venv/bin/python -m duplex.remote.agent`). It runs `inv setup`, reports the plan's ports, runs
`inv run` and relays its output, and stops the run when the laptop says so or falls silent.

Why an agent rather than `ssh host inv run`: without a terminal, sshd never signals a command
whose client went away, so a dropped laptop would leave the stack running for ever; and the ports
must be forwarded (and a taken one refused) before anything starts there.

The protocol is lines. stdin: one JSON request, then `start` or `abort`, then `.` heartbeats and
`stop`. stdout: the commands' own output, and events: EVENT followed by one JSON object.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..layout import Layout
from ..plan import port_variable
from ..run.dashboard import read as read_dashboard
from ..run.inventory import live_records
from ..run.processes import log_pumps
from ..syntax import service_of_instance

EVENT = "\x1e"  # ASCII record separator: no log line starts with it
HEARTBEAT = 5.0  # seconds between the laptop's heartbeats (at most; a third of the grace when shorter)
HEALTHY = "services healthy in"  # the line `inv run` prints once every service is up (duplex/run/start.py)
STOP_WAIT = 120.0  # seconds a stopping run gets before SIGTERM


class Lifeline:
    """The laptop's stdin, read in a thread: commands queue up, heartbeats and end of file are noted."""

    def __init__(self, stream, grace: float):
        self.grace = grace
        self.commands: queue.Queue[str] = queue.Queue()
        self.heard = time.monotonic()
        self.ended: float | None = None
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.heard = time.monotonic()
            if line.strip() and line.strip() != ".":
                self.commands.put(line.strip())
        self.ended = time.monotonic()

    def lost(self) -> bool:
        """No word for `grace` seconds, or the connection closed `grace` seconds ago."""
        last = self.ended if self.ended is not None else self.heard
        return time.monotonic() - last > self.grace

    def next(self, timeout: float) -> str | None:
        try:
            return self.commands.get(timeout=timeout)
        except queue.Empty:
            return None


class Out:
    """Our stdout, which may go away with the connection: then lines are dropped, never blocking."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gone = False

    def line(self, text: str) -> None:
        with self.lock:
            if self.gone:
                return
            try:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, OSError):
                self.gone = True

    def event(self, **data) -> None:
        self.line(EVENT + json.dumps(data))


class Relayed:
    """`argv` started in its own session (a signal to the agent is not its signal), its output copied."""

    def __init__(self, argv: list[str], env: dict[str, str], out: Out, on_line=None):
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
        self.pump = threading.Thread(target=self._pump, args=(out, on_line), daemon=True)
        self.pump.start()

    def _pump(self, out: Out, on_line) -> None:
        for line in self.proc.stdout:
            out.line(line)
            if on_line:
                on_line(line)

    def finish(self) -> int:
        code = self.proc.wait()
        self.pump.join(timeout=5)
        return code


def dashboard_info(root: Path) -> dict | None:
    """The run's dashboard port and token (its file is written before the services start)."""
    info = read_dashboard(root)
    return {"port": info["port"], "token": info["token"]} if info and "port" in info and "token" in info else None


def going(root: Path) -> list[str]:
    """The services of a run already going here (detached, or one whose laptop left within its grace,
    or started on this machine itself): checked before `inv setup`, which must not change their venvs."""
    live, _stale = live_records(root)
    return sorted(set(live) | {n for n, pids in log_pumps(Layout(root).logs).items() if pids})


def main() -> int:
    out = Out()
    request = json.loads(sys.stdin.readline() or "{}")
    lifeline = Lifeline(sys.stdin, float(request.get("grace", 30)))
    inv = str(Path(sys.executable).parent / "inv")
    env = {**os.environ, **request.get("environ", {}), "PYTHONUNBUFFERED": "1"}
    root = Path.cwd()

    busy = going(root)
    if busy:
        out.event(exit=1, step="going", going=busy)
        return 1
    if request.get("setup", True):
        code = Relayed([inv, "setup"], env, out).finish()
        if code:
            out.event(exit=code, step="setup")
            return code
    plan = subprocess.run([inv, "config", "--json", *request.get("plan_args", [])], env=env,
                          capture_output=True, text=True)
    if plan.returncode:
        for line in (plan.stdout + plan.stderr).splitlines():
            out.line(line)
        out.event(exit=plan.returncode, step="plan")
        return plan.returncode
    services = json.loads(plan.stdout)["services"]
    offset = int(request.get("offset", 0))
    ports = {s["name"]: s["port"] for s in services if s.get("port")}
    for name in {service_of_instance(n) for n in ports}:
        if name in ports:  # the first replica's port moves the others with it
            env[port_variable(name)] = str(ports[name] + offset)
    out.event(ports={n: [p, p + offset] for n, p in ports.items()})

    while True:  # the laptop forwards the ports, then says start (or abort: a port was taken there)
        command = lifeline.next(0.2)
        if command == "start":
            break
        if command in ("abort", "stop") or lifeline.lost():
            out.event(exit=0, step="aborted")
            return 0

    ready = threading.Event()
    run = Relayed([inv, "run", *request.get("run_args", [])], env, out,
                  on_line=lambda line: ready.set() if HEALTHY in line else None)
    proc = run.proc
    told = signalled = False
    stop_at = None
    while proc.poll() is None:
        if ready.is_set() and not told:
            told = True
            out.event(ready=True, dashboard=dashboard_info(root))
        command = lifeline.next(0.2)
        if not signalled and (command == "stop" or lifeline.lost()):
            if command != "stop":
                out.line(f"duplex: no word from the laptop for {lifeline.grace:g} s: stopping the run")
            proc.send_signal(signal.SIGINT)  # `inv run`'s own clean stop, as Ctrl-C there
            signalled, stop_at = True, time.monotonic()
        if signalled and time.monotonic() - stop_at > STOP_WAIT:
            proc.terminate()
            stop_at = float("inf")
    code = run.finish()
    if ready.is_set() and not told:  # a detached run: healthy, then it returned
        out.event(ready=True, dashboard=dashboard_info(root))
    out.event(exit=code, step="run")
    return code


if __name__ == "__main__":
    sys.exit(main())
