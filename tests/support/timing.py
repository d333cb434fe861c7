"""Timing for the benchmarks: the wall-clock seconds of each of several calls."""

from __future__ import annotations

import time
from typing import Callable


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Call `fn` `repeat` times; the seconds each call took, in order."""
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out
