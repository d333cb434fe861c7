"""Process groups: whether one still runs (zombies do not count), stopping one (SIGTERM, then
SIGKILL after a grace period), and a pid's start time (so a recycled pid is never taken for ours).
Used by the native runner and by `inv stop` / `inv status` after duplex is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


def start_time(pid: int) -> str | None:
    """The kernel's start time of a pid, so a recycled pid is never mistaken for ours."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


POLL = 0.02  # how often a stop looks whether the group is gone: stopping is prompt, not polled slowly


def stop_group(pgid: int, grace: float, waiter: Callable[[float], object] | None = None,
               on_slow: Callable[[float], None] | None = None, slow_after: float = 1.0,
               signalled: bool = False) -> str:
    """SIGTERM the process group, SIGKILL what is left after `grace` seconds. Returns "gone" (it
    was already), "stopped" or "killed". `on_slow(seconds)` is called once when the group is still
    draining after `slow_after` seconds, so a graceful drain is reported rather than silent.
    `signalled`: SIGTERM was sent already (never twice: a second one means "hurry" to some servers)."""
    try:
        os.killpg(pgid, 0 if signalled else signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    began = time.monotonic()
    deadline = began + grace
    told = False
    reaped = waiter is None  # our own child must be waited for, or it stays a zombie of ours
    while time.monotonic() < deadline:
        if not reaped:
            try:
                waiter(timeout=POLL)
                reaped = True
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(POLL)
        if not group_alive(pgid):
            return "stopped"
        if not told and on_slow is not None and time.monotonic() - began >= slow_after:
            told = True
            on_slow(time.monotonic() - began)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    if waiter is not None:
        try:
            waiter(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return "killed"


def group_is(pgid: int, leader_start: str | None) -> bool:
    """Whether process group `pgid`, led by the process that started at `leader_start`, still has a
    live process: its leader, or what it left behind once it died (a killed run's shell whose child
    still serves; a reloader killed before its worker). A pid stays reserved while it names a group,
    so a group whose leader is gone can only be that leader's; a live pid of another start time is
    another process's (a recycled pid) and never ours."""
    leader = start_time(pgid)
    if leader is not None and leader != leader_start:
        return False
    return group_alive(pgid)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. Zombies do not count: an exited member whose
    parent is gone waits for init to reap it, which on some machines takes seconds."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = _group_members(pgid)
    return True if members is None else any(state != "Z" for state in members)


def _group_members(pgid: int) -> list[str] | None:
    """The states of the group's processes from /proc (None where there is no /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    states = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            states.append(fields[0].decode())
    return states


def log_pumps(logs: Path) -> dict[str, list[int]]:
    """The detached native services whose log pump writes into `logs` (a project's log folder), by
    service: pid = process group of each (the pump leads it). Found from the processes themselves, so
    `inv stop` reaches a service even when the run state lost its record."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    logs = Path(logs).resolve()
    found: dict[str, list[int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        # python -I .../duplex/standalone/logpump.py LOG -- ARGV (duplex.run.native starts it so)
        if len(argv) < 5 or not argv[2].endswith(b"/logpump.py") or argv[4] != b"--":
            continue
        log = Path(os.fsdecode(argv[3]))
        pid = int(entry.name)
        if log.parent == logs and log.suffix == ".log" and group_alive(pid) and _leads(pid):
            found.setdefault(log.stem, []).append(pid)
    return found


def _leads(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False
