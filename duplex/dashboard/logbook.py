"""The last N log lines of each service in bounded memory, numbered in arrival order so a page (or
an event stream) asks for "what came after line 1234". Pure: the followers append, the server reads."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass

KEEP = 5000  # lines kept per service, however fast a service writes
BUDGET = 4 << 20  # ... and at most this much text per service, however long its lines
MAX_LINE = 16 << 10  # bytes of one line kept; the rest is cut (a line without an end is never buffered whole)
CUT = " … [line cut: longer than {} bytes]"
COST = 64  # what a kept line costs beyond its text (its Line), so many short lines count too
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


class Splitter:
    """Bytes as they are read in, whole lines out, none over `limit` bytes: a longer line is cut
    with a marker as soon as it passes the limit and the rest of it skipped up to its newline, so
    memory stays bounded whatever a service writes (a 100 MiB line without a newline included)."""

    def __init__(self, limit: int = MAX_LINE, skip_first: bool = False):
        self.limit = limit
        self.buf = bytearray()
        self.skipping = skip_first  # started inside a line (a tail from the middle of a file): drop it

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end
            if not self.skipping:
                room = self.limit - len(self.buf)
                self.buf += chunk[start:min(stop, start + room)]
                if stop - start > room:
                    out.append(_text(self.buf) + CUT.format(self.limit))
                    self.buf.clear()
                    self.skipping = True
            if end < 0:
                return out
            if not self.skipping:
                out.append(_text(self.buf))
            self.buf.clear()
            self.skipping = False
            start = end + 1


def _text(raw: bytearray) -> str:
    return raw.decode("utf-8", errors="replace")


def cut(text: str, limit: int = MAX_LINE) -> str:
    """A line handed over as text (not through a Splitter), held to the same limit."""
    mark = CUT.format(limit)
    return text if len(text) <= limit + len(mark) else text[:limit] + mark  # a Splitter's cut passes as it is


class LogBook:
    def __init__(self, keep: int = KEEP, clock=time.time, budget: int = BUDGET):
        self.keep = keep
        self.budget = budget
        self.clock = clock
        self.lines: dict[str, deque[Line]] = {}
        self.sizes: dict[str, int] = {}  # the text each service's lines hold (plus COST a line)
        self.seq = 0
        self.lock = threading.Lock()
        self.dropped: dict[str, int] = {}  # lines that fell out of the window, per service

    def add(self, service: str, texts: list[str]) -> None:
        now = self.clock()
        with self.lock:
            book = self.lines.setdefault(service, deque())
            size, dropped = self.sizes.get(service, 0), max(0, len(texts) - self.keep)
            for text in texts[-self.keep:]:
                text = cut(text)
                self.seq += 1
                book.append(Line(self.seq, service, text, now))
                size += len(text) + COST
                while len(book) > self.keep or size > self.budget:
                    size -= len(book.popleft().text) + COST
                    dropped += 1
            self.sizes[service] = size
            self.dropped[service] = self.dropped.get(service, 0) + dropped

    def since(self, seq: int, service: str | None = None, match=None, limit: int = 2000) -> list[Line]:
        """Lines after `seq` (of one service, or all in arrival order), at most the last `limit`."""
        match = match or (lambda _text: True)
        with self.lock:
            books = [self.lines.get(service, ())] if service else list(self.lines.values())
            found = [line for book in books for line in _after(book, seq) if match(line.text)]
        if not service:
            found.sort(key=lambda line: line.seq)
        return found[-limit:] if limit > 0 else []  # found[-0:] would be all of them


def _after(book, seq: int) -> list[Line]:
    """The lines of one service after `seq`, reading from the end (the usual case: a few new ones)."""
    out = []
    for line in reversed(book):
        if line.seq <= seq:
            break
        out.append(line)
    out.reverse()
    return out
