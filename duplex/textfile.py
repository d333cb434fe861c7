"""Reading the text files a user edits (stack.toml, .env, models.lock, locks, MOSHI_VERSION):
a regular file, of a sane size, in UTF-8, or one clear line that says which and how to fix it.

`/dev/zero` as a stack file, a Latin-1 comment or a UTF-16 save must never become a traceback or
an endless read: every user-edited file duplex reads comes through `read_text`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import DuplexError

LIMIT = 4 * 2**20  # far above any real stack file, lock or .env; small enough to read at once


class TextFileError(DuplexError):
    """A file duplex must read is not a regular UTF-8 text file of a sane size."""

    def __init__(self, path: Path, problem: str, fix: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}", fix=fix)


def read_text(path: Path | str, *, limit: int = LIMIT, what: str = "file") -> str:
    """The file's text (a UTF-8 byte-order mark dropped). FileNotFoundError passes through, so a
    caller can treat a missing file as it always did; everything else is a TextFileError."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TextFileError(path, f"not a regular file ({_kind(info.st_mode)})",
                                f"point duplex at the {what} itself, a regular text file")
        if info.st_size > limit:
            raise TextFileError(path, f"{info.st_size} bytes: too large for a {what} (at most {limit})",
                                f"check that this is the {what} you meant")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we read it
        raise TextFileError(path, f"more than {limit} bytes: too large for a {what}",
                            f"check that this is the {what} you meant")
    return decode(data, path, what)


def decode(data: bytes, path: Path | str, what: str = "file") -> str:
    """UTF-8 (with or without a byte-order mark), else a TextFileError naming the line and byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TextFileError(path, "saved as UTF-16, which duplex does not read",
                            f"save the {what} as UTF-8 (in most editors: 'Save with encoding' -> UTF-8)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TextFileError(path, f"not valid UTF-8: byte 0x{data[exc.start]:02x} at line {line}, "
                                  f"column {column}",
                            f"save the {what} as UTF-8 (a Latin-1 or Windows-1252 character, such "
                            "as an accented letter in a comment, is the usual cause)") from None
    if "\x00" in text:
        raise TextFileError(path, f"holds a NUL byte at line {text[:text.index(chr(0))].count(chr(10)) + 1}: "
                                  "not a text file", f"check that this is the {what} you meant")
    return text.removeprefix("\ufeff")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"
