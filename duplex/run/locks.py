"""File locks that keep a run's changes one at a time: one action (`inv stop`, `inv restart`, the
dashboard's buttons) on the run, and one read-modify-write of its state file.

Without them two actions read the state, each changes its own service, and the last to write puts
back the other's old record: a dead pid in the state, a live process nobody stops. flock locks
under `.duplex/run/`: the kernel releases them when the holder dies (even by SIGKILL), so a killed
`inv restart` never leaves one stuck; Python opens files close-on-exec, so no service inherits one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import RunError
from ..layout import Layout

try:
    import fcntl
except ImportError:  # Windows: no flock; the state's own checks remain
    fcntl = None


class ActionBusy(RunError):
    """Another action on the run is in progress (refused rather than waited for)."""


_held = threading.local()  # the lock files this thread holds: an action inside an action (restart = stop + start)


def _open(path: Path) -> int | None:
    if fcntl is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError:  # no room for the file, a read-only project: nothing can be written anyway
        return None


@contextmanager
def _hold(path: Path, take: Callable[[int], None]) -> Iterator[None]:
    """The lock file at `path`, locked by `take(fd)`; one this thread holds already is held (re-entrant)."""
    key = str(path)
    held = getattr(_held, "paths", None) or set()
    fd = None if key in held else _open(path)
    if fd is None:  # held already, or no file can be made (nothing can be written then anyway)
        yield
        return
    try:
        take(fd)
        _held.paths = held | {key}
        yield
    finally:
        _held.paths = held
        os.close(fd)  # closing releases it


@contextmanager
def state_change(root: Path) -> Iterator[None]:
    """Held around each read-modify-write of the run state (short: a read and an atomic write)."""
    with _hold(Layout(root).base / "run" / "state.lock", lambda fd: fcntl.flock(fd, fcntl.LOCK_EX)):
        yield


def holder(root: Path) -> str:
    """Which action holds the run now, in words (empty when unknown)."""
    try:
        info = json.loads(Layout(root).action_lock.read_text(encoding="utf-8") or "{}")
        return f"{info['what']} (pid {int(info['pid'])}, for {max(0.0, time.time() - float(info['since'])):.0f}s)"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


@contextmanager
def action(root: Path, what: str, *, wait: bool = True,
           say: Callable[[str], None] = lambda _line: None) -> Iterator[None]:
    """Held for a whole action on the run. A second one either waits (saying for what) or, with
    `wait=False`, is refused with ActionBusy naming the action in progress."""
    def take(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            busy = holder(root) or "another action"
            if not wait:
                raise ActionBusy(f"{busy} is in progress on this run; one action at a time",
                                 fix="try again when it has finished") from None
            say(f"waiting for {busy} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # who holds it, for the line a second action gives
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"what": what, "pid": os.getpid(), "since": time.time()}).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same
    with _hold(Layout(root).action_lock, take):
        yield
