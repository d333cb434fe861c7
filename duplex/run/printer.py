"""Multiplexed log lines with aligned, coloured service prefixes (honcho/compose style)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

COLOURS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95)  # ANSI foreground codes


class Printer:
    def __init__(self, names: list[str], out: TextIO | None = None, colour: bool | None = None):
        self.out = out or sys.stdout
        self.width = max([len(n) for n in names] + [6])
        self.colour = self.out.isatty() if colour is None else colour
        self.codes = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(names)}
        self.lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self.width}} | "
        if self.colour:
            prefix = f"\033[{self.codes.get(name, 37)}m{prefix}\033[0m"
        with self.lock:
            self.out.write(prefix + text.rstrip("\n") + "\n")
            self.out.flush()

    def system(self, text: str) -> None:
        self.line("duplex", text)
