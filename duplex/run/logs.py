"""`inv logs`: the current or last run's log lines, past and followed, one service or all of them."""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import Callable, Iterator

from ..errors import RunError
from ..layout import Layout
from ..syntax import service_of_instance
from .inventory import DOCKER, Engine, alive
from .state import last_run, read_state


@dataclass(frozen=True)
class Pace:
    """How a followed log file is watched: a read every `poll` seconds; after `settle` seconds
    without a new line, whether its service still runs (tests pass milliseconds)."""
    poll: float = 0.1
    settle: float = 0.5


PACE = Pace()


def log_names(root: Path, service: str | None = None) -> list[str]:
    """The services of the current or last run, in start order (the order the run's colours follow);
    with `service`, its replicas there (asr, asr_1, ...), else the name itself."""
    names = last_run(root) or sorted(read_state(root)["services"])
    if service is None:
        return names
    mine = [n for n in dict.fromkeys([*names, *sorted(read_state(root)["services"])])
            if service_of_instance(n) == service]
    return mine or [service]


def logs(root: Path, service: str | None = None, *, follow: bool = False, lines: int = 200,
         engine: Engine = DOCKER, pace: Pace = PACE) -> Iterator[tuple[str, str]]:
    """(service, line) pairs from one service's log, or from every service of the current or last run.

    The past (`lines` per service) comes service by service in start order: the files carry no
    timestamps to interleave it by. With `follow`, new lines of all of them then come as they
    arrive, until none of them is running any more (or Ctrl-C)."""
    layout = Layout(root)
    records = read_state(root)["services"]
    names = log_names(root, service)  # a service's log: each of its replicas' (asr, asr_1, ...)
    if not names:
        raise RunError(f"no run of this stack has left logs in {layout.logs}",
                       fix="start one with `inv run` or `inv run --native`")
    if service and not any(records.get(n) or layout.log(n).exists() for n in names):
        raise RunError(f"no logs for {service!r} in {layout.logs}",
                       fix="`inv status` lists what runs; `inv logs` shows every service of the last run")
    sources = {n: _source(root, n, records.get(n), lines, follow, engine, pace) for n in names}
    for name, source in sources.items():  # the past, one service after the other
        for line in source:
            if line is PAST_END:
                break
            yield name, line
    if not follow:
        return
    if len(sources) == 1:
        (name, source), = sources.items()
        for line in source:
            yield name, line
        return
    queue: Queue = Queue()

    def pump(name: str, source: Iterator) -> None:
        try:
            for line in source:
                queue.put((name, line))
        finally:
            queue.put((name, PAST_END))  # this source is done
    for item in sources.items():
        threading.Thread(target=pump, args=item, daemon=True).start()
    running = len(sources)
    while running:
        name, line = queue.get()
        if line is PAST_END:
            running -= 1
        else:
            yield name, line


PAST_END = object()  # a source's marker between its past lines and the ones it follows


def _source(root: Path, name: str, record: dict | None, lines: int, follow: bool, engine: Engine,
            pace: Pace) -> Iterator:
    """One service's lines: from the engine while its container exists (a detached container's
    log file stays empty), else from its log file."""
    if record and record.get("mode") == "container" and engine.answers():
        container = engine.find(record["container"])
        if container is not None:
            return _container_lines(container, lines, follow)
    running = functools.partial(alive, record) if record and record.get("mode") == "native" else _never
    return file_lines(Layout(root).log(name), lines, follow, running, pace)


def _never() -> bool:
    return False


def file_lines(path: Path, lines: int, follow: bool, alive: Callable[[], bool], pace: Pace = PACE) -> Iterator:
    """The file's last lines, then (follow) what is appended, read through the same handle so no
    line is lost or doubled in between; stops once the process is gone and the file is drained."""
    try:
        fh = open(path, "rb")
    except OSError:
        yield PAST_END
        return
    try:
        partial = yield from _past(fh, lines, follow)
        if follow:
            yield from _follow(path, fh, partial, alive, pace)
    finally:
        fh.close()


def _past(fh, lines: int, follow: bool) -> Iterator:
    """The last `lines` whole lines of the file (its last 64 KiB), then PAST_END; returns the
    unfinished line at its end (when not following, it is a line of the past too)."""
    start = max(0, fh.seek(0, 2) - 64 * 1024)
    fh.seek(start)
    text = fh.read()
    if start:
        text = text.partition(b"\n")[2]  # we landed inside a line: drop its end
    complete, _, partial = text.rpartition(b"\n")
    past = complete.decode("utf-8", errors="replace").splitlines()
    if not follow and partial:
        past.append(partial.decode("utf-8", errors="replace"))
    yield from past[-lines:] if lines > 0 else []
    yield PAST_END
    return partial


def _follow(path: Path, fh, buf: bytes, alive: Callable[[], bool], pace: Pace) -> Iterator[str]:
    """What is appended to the file `fh` has open (`buf`: its unfinished line so far), as `tail -F`
    follows: a file truncated under it (a restarted service's log starts empty again) is read from
    its start, a file replaced at `path` (rewritten, rotated) from the new one's start. Closes every
    handle it opens."""
    idle_since = time.monotonic()
    try:
        while True:
            chunk = fh.read()
            if chunk:
                buf += chunk
                *done, buf = buf.split(b"\n")
                for raw in done:
                    yield raw.decode("utf-8", errors="replace")
                idle_since = time.monotonic()
                continue
            fresh = _moved(path, fh)
            if fresh is not None:  # all the old file had is read: its unfinished line ends there
                if buf:
                    yield buf.decode("utf-8", errors="replace")
                buf = b""
                if fresh is not fh:
                    fh.close()
                    fh = fresh
                continue
            if time.monotonic() - idle_since > pace.settle and not alive():
                if buf:
                    yield buf.decode("utf-8", errors="replace")
                return
            time.sleep(pace.poll)
    finally:
        fh.close()


def _moved(path: Path, fh):
    """After a read found nothing new: `fh` again from its start when the file was truncated under
    it, a handle on the file now at `path` when it was replaced, else None (a file removed and not
    replaced: its lines are all read, and None)."""
    mine = os.fstat(fh.fileno())
    try:
        now = os.stat(path)
    except OSError:
        now = None
    if now is not None and (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
        try:
            return open(path, "rb")
        except OSError:
            return None
    if mine.st_size < fh.tell():
        fh.seek(0)
        return fh
    return None


def _container_lines(container, lines: int, follow: bool) -> Iterator:
    """The engine's log of a container: the past up to now, then (follow) from now on."""
    now = time.time()
    past = container.logs(tail=lines, until=now) if follow else container.logs(tail=lines)
    yield from past.decode("utf-8", errors="replace").splitlines()
    yield PAST_END
    if not follow:
        return
    buf = b""
    for chunk in container.logs(stream=True, follow=True, since=now):  # ends when the container stops
        buf += chunk
        *done, buf = buf.split(b"\n")
        for raw in done:
            yield raw.decode("utf-8", errors="replace")
    if buf:
        yield buf.decode("utf-8", errors="replace")
