"""The last N log lines of each service in bounded memory, numbered in arrival order so a page (or
an event stream) asks for "what came after line 1234". Pure: the followers append, the server reads."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass

KEEP = 5000  # lines kept per service: a few MB at most, however fast a service writes
LEVEL = re.compile(r"\b(CRITICAL|FATAL|ERROR|WARN(?:ING)?|INFO|DEBUG|TRACE)\b|\bTraceback\b")
_LEVELS = {"CRITICAL": "error", "FATAL": "error", "ERROR": "error", "TRACEBACK": "error",
           "WARN": "warning", "WARNING": "warning", "INFO": "info", "DEBUG": "debug", "TRACE": "debug"}


def level(text: str) -> str | None:
    """The line's log level as the page colours it (error, warning, info, debug), if it says one."""
    found = LEVEL.search(text[:200])
    return _LEVELS.get(found.group(0).upper()) if found else None


@dataclass(frozen=True)
class Line:
    seq: int
    service: str
    text: str
    time: float

    def as_dict(self) -> dict:
        return {"seq": self.seq, "service": self.service, "text": self.text, "time": self.time,
                "level": level(self.text)}


class LogBook:
    def __init__(self, keep: int = KEEP, clock=time.time):
        self.keep = keep
        self.clock = clock
        self.lines: dict[str, deque[Line]] = {}
        self.seq = 0
        self.lock = threading.Lock()
        self.dropped: dict[str, int] = {}  # lines that fell out of the window, per service

    def add(self, service: str, texts: list[str]) -> None:
        now = self.clock()
        with self.lock:
            book = self.lines.setdefault(service, deque(maxlen=self.keep))
            overflow = max(0, len(book) + len(texts) - self.keep)
            self.dropped[service] = self.dropped.get(service, 0) + overflow
            for text in texts[-self.keep:]:
                self.seq += 1
                book.append(Line(self.seq, service, text, now))

    def since(self, seq: int, service: str | None = None, match=None, limit: int = 2000) -> list[Line]:
        """Lines after `seq` (of one service, or all in arrival order), at most the last `limit`."""
        match = match or (lambda _text: True)
        with self.lock:
            books = [self.lines.get(service, ())] if service else list(self.lines.values())
            found = [line for book in books for line in _after(book, seq) if match(line.text)]
        if not service:
            found.sort(key=lambda line: line.seq)
        return found[-limit:]


def _after(book, seq: int) -> list[Line]:
    """The lines of one service after `seq`, reading from the end (the usual case: a few new ones)."""
    out = []
    for line in reversed(book):
        if line.seq <= seq:
            break
        out.append(line)
    out.reverse()
    return out
