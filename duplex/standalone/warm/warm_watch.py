"""Batches of changed Python files under some folders: watchfiles when the venv has it, else polling."""

from __future__ import annotations

import os
import threading
from typing import Iterator

SKIP_DIRS = {"__pycache__", "node_modules"}


# watchfiles hands over a batch once a step passes with no new change: an edit waits one to two
# steps. Its default, 50 ms, was 55-100 ms of the 0.10-0.14 s from save to served (the re-import
# is 30-50 ms); 10 ms still groups the files one save or checkout writes together, and costs the
# idle watcher 0.3 % of a core (0.15 % at 50 ms).
STEP_MS = 10


def batches(dirs: list[str], stop: threading.Event, timeout: float = 0.1) -> Iterator[set[str]]:
    """Yield the set of changed .py files (absolute, resolved); an empty set every `timeout` s."""
    try:
        import watchfiles
    except ImportError:
        yield from _poll(dirs, stop, max(timeout, 0.25))
        return
    for changes in watchfiles.watch(*dirs, watch_filter=watchfiles.PythonFilter(), stop_event=stop,
                                    yield_on_timeout=True, rust_timeout=int(timeout * 1000),
                                    step=STEP_MS, raise_interrupt=False):
        if changes: open("/tmp/stopfast_warm_trace.txt","a").write("yield " + str(__import__("time").perf_counter()) + "\n")
        yield {os.path.realpath(path) for _change, path in changes}


def backend() -> str:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return "polling"
    return "watchfiles"


def _poll(dirs: list[str], stop: threading.Event, interval: float) -> Iterator[set[str]]:
    seen = _scan(dirs)
    while not stop.wait(interval):
        now = _scan(dirs)
        yield {path for path in now.keys() | seen.keys() if now.get(path) != seen.get(path)}
        seen = now


def _scan(dirs: list[str]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for top in dirs:
        for folder, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS and not d.startswith(".")]
            for name in files:
                if name.endswith((".py", ".pyi")):
                    path = os.path.realpath(os.path.join(folder, name))
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    found[path] = (st.st_mtime_ns, st.st_size)
    return found
