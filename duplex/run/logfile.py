"""A service's log file and its terminal, neither of which may ever stop the service: what cannot
be written is dropped and said once (a full or read-only disk), what the terminal cannot take is
skipped, and the reader of the service's output keeps reading."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Callable

from .runner import LineSink


class LogFile:
    """A service's log file that never stops the service: a line that cannot be written (a full or
    read-only disk, a deleted folder) is dropped and said once through `say`; writing is tried
    again every `retry` seconds, and when it works again the count of lost lines is said too."""

    def __init__(self, path: Path, say: Callable[[str], None], retry: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.say = say
        self.retry = retry
        self.clock = clock
        self.handle = None
        self.lost = 0
        self.failed_at: float | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.handle = open(self.path, "a", encoding="utf-8", errors="replace")
        except OSError as exc:
            self._failed(exc)

    def write(self, line: str) -> None:
        if self.handle is None:
            if self.failed_at is not None and self.clock() - self.failed_at < self.retry:
                self.lost += 1
                return
            self._open()
            if self.handle is None:
                self.lost += 1
                return
        try:
            self.handle.write(line + "\n")
            self.handle.flush()
        except (OSError, ValueError) as exc:
            self.lost += 1
            self._failed(exc)
            return
        if self.failed_at is not None:
            self.say(f"{self.path.name} is being written again ({self.lost} lines were not saved)")
            self.failed_at, self.lost = None, 0

    def _failed(self, exc: Exception) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except (OSError, ValueError):
                pass  # its buffer could not be written either: those lines are lost
            self.handle = None
        first = self.failed_at is None
        self.failed_at = self.clock()
        if first:
            why = "the disk is full" if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) \
                else getattr(exc, "strerror", None) or str(exc)
            self.say(f"its log {self.path} cannot be written ({why}): the service keeps running and its "
                     "lines are shown here, but not saved until the file can be written again")

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except (OSError, ValueError):
                pass
            self.handle = None


def deliver(sink: LineSink | None, name: str, line: str) -> bool:
    """Hand a line to the sink (the terminal); False when it cannot take lines any more (a closed
    or full stdout), so the caller stops trying but keeps reading the service's output."""
    if sink is None:
        return True
    try:
        sink(name, line)
        return True
    except (OSError, ValueError):
        return False
