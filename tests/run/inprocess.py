"""Pieces for the in-process tests of the runtime (stop, status, logs, one service's actions):
a fake Docker engine, real short-lived service processes, and a run state written by hand.

The processes are real (a tiny Python script in its own process group, as the native runner starts
services): stopping, grace periods and dead group leaders are the kernel's, not a fake's. Only the
engine is a fake (`FakeEngine`, handed in where duplex takes an `inventory.Engine`), so no test here
needs Docker. Everything a fake or a service does lands in one `Timeline` file, in order.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from duplex.layout import Layout
from duplex.plan import LABEL
from duplex.run.containers import PERSISTENT_LABEL
from duplex.run.processes import start_time
from duplex.run.state import write_last_run, write_state

WAIT = 5.0  # the longest a helper waits for a process: only reached when a test fails

# A service (stdlib only, started with -I -S: a fifth of the start-up time): says "ready" once its
# SIGTERM handling is in place; on SIGTERM it writes "term NAME", drains for DRAIN seconds, writes
# "gone NAME" and exits ("ignore": it ignores SIGTERM; "orphan": it leaves a child in its group and
# exits, a group whose leader is dead).
SERVICE = r"""
import os, signal, subprocess, sys, time
name, timeline, drain, how = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
def note(word):
    with open(timeline, "a") as fh:
        fh.write(f"{word} {name}\n")
def term(*_):
    note("term")
    time.sleep(drain)
    note("gone")
    os._exit(0)
if how == "orphan":
    child = subprocess.Popen(["sleep", "60"])
    print(f"ready {child.pid}", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if how == "ignore" else term)
print("ready", flush=True)
while True:
    signal.pause()
"""


class Timeline:
    """One file every service process and fake appends "what name" lines to (O_APPEND: whole lines)."""

    def __init__(self, path: Path):
        self.path = path
        path.touch()

    def note(self, what: str, name: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{what} {name}\n")

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines()

    def at(self, line: str) -> int:
        return self.lines().index(line)


class Services:
    """Real service processes, each leading its own process group; all ended at teardown."""

    def __init__(self, timeline: Timeline):
        self.timeline = timeline
        self.procs: list[subprocess.Popen] = []
        self.pgids: list[int] = []

    def start(self, name: str, *, drain: float = 0.0, how: str = "drain") -> subprocess.Popen:
        argv = [sys.executable, "-I", "-S", "-c", SERVICE, name, str(self.timeline.path), str(drain), how]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        self.pgids.append(proc.pid)
        ready = proc.stdout.readline()
        assert ready.startswith("ready"), ready
        proc.child = int(ready.split()[1]) if how == "orphan" else None
        return proc

    def record(self, proc: subprocess.Popen, name: str, **extra) -> dict:
        return {"name": name, "mode": "native", "pid": proc.pid, "start_time": start_time(proc.pid),
                "url": None, **extra}

    def dead_record(self, name: str) -> dict:
        """The record of a service whose process has exited (and been reaped)."""
        proc = subprocess.Popen(["true"], start_new_session=True)
        began = start_time(proc.pid)
        proc.wait()
        return {"name": name, "mode": "native", "pid": proc.pid, "start_time": began or "1", "url": None}

    def close(self) -> None:
        for pgid in self.pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:
            proc.wait(timeout=WAIT)
            proc.stdout.close()


def end_group(proc: subprocess.Popen) -> None:
    """SIGKILL what is left of the process group `proc` leads, and reap `proc`."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=WAIT)


def running(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def write_run(root: Path, records: dict[str, dict], waves: list[list[str]], *, stack: str = "unit",
              supervisor_pid: int | None = None) -> None:
    """The run state and last-run file a detached `inv run` would have left, its `inv` gone."""
    order = [n for wave in waves for n in wave]
    write_last_run(root, stack, order, waves)
    write_state(root, {"stack": stack, "mode": "detached", "supervisor_pid": supervisor_pid or dead_pid(),
                       "services": records, "waves": waves})


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def log(root: Path, name: str) -> Path:
    path = Layout(root).log(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def no_real_engine(monkeypatch):
    """The real Docker engine out of reach (each test module here imports this fixture): a default
    left in place where a fake was meant can never stop or list a real container."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


# -- the engine ------------------------------------------------------------------------------------

class FakeContainer:
    """What duplex reads of a docker SDK container: ids, labels, status, and its log."""

    def __init__(self, engine: FakeEngine, service: str, root: Path, *, stack: str, status: str,
                 persistent: bool, past: str, drain: float):
        self.engine = engine
        self.id = hashlib.sha256(f"{root}/{service}/{len(engine.items)}".encode()).hexdigest()
        self.short_id = self.id[:12]
        self.name = f"duplex-{stack}-{service}"
        self.labels = {f"{LABEL}.service": service, f"{LABEL}.root": str(root), f"{LABEL}.stack": stack,
                       PERSISTENT_LABEL: str(persistent).lower()}
        self.status = status
        self.drain = drain
        self.past = past.encode()
        self.stream: queue.Queue = queue.Queue()  # chunks followed; None ends the stream
        self.asked: list[dict] = []

    @property
    def service(self) -> str:
        return self.labels[f"{LABEL}.service"]

    def record(self, **extra) -> dict:
        return {"name": self.service, "mode": "container", "container": self.id, "url": None, **extra}

    def logs(self, *, tail=None, until=None, stream=False, follow=False, since=None):
        self.asked.append({"tail": tail, "until": until, "stream": stream, "follow": follow, "since": since})
        if stream:
            return iter(self.stream.get, None)
        lines = self.past.splitlines(keepends=True)
        return b"".join(lines[-tail:] if tail else lines)


class FakeEngine:
    """An `inventory.Engine` that runs nothing: containers are added by the test; removing one
    notes "term"/"gone" on the timeline, `drain` seconds apart, as a real stop with a drain would."""

    def __init__(self, timeline: Timeline | None = None, *, up: bool = True):
        self.timeline = timeline
        self.up = up
        self.items: list[FakeContainer] = []
        self.networks: set[str] = set()
        self.keep: set[str] = set()  # services whose container survives removal (a stop that fails)
        self.on_remove = None  # called with the container as its stop begins (what happens meanwhile)
        self.slow = 0.0  # seconds listing the containers takes (a cold docker SDK, a busy engine)
        self.lock = threading.Lock()

    def add(self, service: str, root: Path, *, stack: str = "unit", status: str = "running",
            persistent: bool = False, past: str = "", drain: float = 0.0) -> FakeContainer:
        container = FakeContainer(self, service, root, stack=stack, status=status, persistent=persistent,
                                  past=past, drain=drain)
        self.items.append(container)
        self.networks.add(f"duplex-{stack}")
        return container

    def _up(self) -> None:
        if not self.up:
            raise ConnectionError("the fake engine is down")

    def answers(self) -> bool:
        return self.up

    def containers(self, root: Path, *, everything: bool = True) -> list:
        self._up()
        time.sleep(self.slow)
        if self.timeline:
            self.timeline.note("listed", "containers")
        return [c for c in list(self.items) if c.labels[f"{LABEL}.root"] == str(root)
                and (everything or c.labels[PERSISTENT_LABEL] != "true")]

    def by_id(self, root: Path | None = None) -> dict:
        self._up()
        return {c.id: c for c in list(self.items) if root is None or c.labels[f"{LABEL}.root"] == str(root)}

    def find(self, ident: str):
        self._up()
        return next((c for c in self.items if ident in (c.id, c.name)), None)

    def remove(self, container: FakeContainer, grace: float) -> None:
        self._up()
        if self.on_remove:
            self.on_remove(container)
        if self.timeline:
            self.timeline.note("term", container.service)
        time.sleep(container.drain)
        if container.service in self.keep:
            return
        with self.lock:
            self.items.remove(container)
        if self.timeline:
            self.timeline.note("gone", container.service)

    def remove_idle_networks(self, names: set[str]) -> list[str]:
        used = {f"duplex-{c.labels[f'{LABEL}.stack']}" for c in self.items}
        removed = sorted(n for n in names & self.networks if n not in used)
        self.networks -= set(removed)
        return removed
