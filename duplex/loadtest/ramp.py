"""The ramp of a load test, pure: the levels to try, each level's figures judged against the
service's budget, where to stop, and the capacity that follows."""

from __future__ import annotations

import statistics
from collections.abc import Iterator

# budget key -> (the level's figure it bounds, its words, its unit)
BOUNDS = {
    "final_p95": (("final_s", "p95"), "end of speech -> final p95", "s"),
    "final_p50": (("final_s", "p50"), "end of speech -> final p50", "s"),
    "turnaround_p95": (("turnaround_s", "p95"), "end of speech -> reply p95", "s"),
    "lag_p95": (("lag_s", "p95"), "final -> translation p95", "s"),
    "wer": (("wer",), "word error rate", ""),
}
GENERATOR_CPU = 85.0   # % of one core: past it the generator's own event loop is late, not the server
GENERATOR_LAG = 0.05   # s, p95 of the generator's timer lateness: audio no longer leaves at real time


def levels(start: int = 1, most: int = 64) -> Iterator[int]:
    """1, 2, 4, 8, ... up to `most` (and `most` itself, so the limit a user sets is tried)."""
    level = max(1, start)
    while level < most:
        yield level
        level *= 2
    yield most


def spread(values: list[float]) -> dict:
    """p50/p95/p99 (nearest rank) and n, rounded to the millisecond; None when there is nothing."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)
    return {"p50": round(statistics.median(ordered), 3), "p95": rank(0.95), "p99": rank(0.99), "n": len(ordered)}


def figure(level: dict, path: tuple[str, ...]):
    value = level
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def judge(level: dict, budget: dict) -> list[str]:
    """What this level broke, in words; empty when it met the budget. Failed or refused sessions
    count against `errors` (a share, 0 by default) whether or not a budget is declared."""
    broken = []
    allowed = budget.get("errors") or 0.0
    share = level["error_share"]
    if share > allowed:
        what = ", ".join(f"{n} {k}" for k, n in (("refused", level["refused"]), ("failed", level["errors"])) if n)
        broken.append(f"{what} of {level['sessions']} sessions ({share:.0%} > {allowed:.0%} allowed)")
    for key, (path, words, unit) in BOUNDS.items():
        limit = budget.get(key)
        if limit is None:
            continue
        value = figure(level, path)
        if value is None:
            broken.append(f"{words}: nothing measured (no session got that far)")
        elif value > limit:
            broken.append(f"{words} {value:.3g}{' ' + unit if unit else ''} > {limit:g}{' ' + unit if unit else ''}")
    return broken


def generator_limit(level: dict) -> str | None:
    """Why the load generator, not the server, bounds this level; None when it kept up."""
    gen = level.get("generator") or {}
    if (gen.get("cpu") or 0) > GENERATOR_CPU:
        return (f"the load generator used {gen['cpu']:.0f}% of a core (> {GENERATOR_CPU:.0f}%): its figures "
                "would measure itself; run it on another machine or lower --most")
    if (gen.get("lag_p95") or 0) > GENERATOR_LAG:
        return (f"the load generator's timers ran {gen['lag_p95'] * 1000:.0f} ms late (p95): audio no longer left "
                "at real time; run it on another machine or lower --most")
    return None


def between(judged: list[dict]) -> int | None:
    """The next level to try between the most sessions served and the fewest not served (halving
    the gap), or None when the gap is within a quarter of what was served: the doubling ramp's
    8 -> 16 becomes 8 -> 12 -> 10 or 14."""
    failed = min((lv["sessions"] for lv in judged if lv["broken"]), default=None)
    served = [lv["sessions"] for lv in judged if not lv["broken"] and failed is not None and lv["sessions"] < failed]
    if not served:
        return None
    low, high = max(served), failed
    if high - low <= max(1, low // 4):
        return None
    return (low + high) // 2


def capacity(judged: list[dict]) -> int | None:
    """The most sessions served below every level that was not: a level that passes above one
    that failed is noise, not capacity."""
    failed = min((lv["sessions"] for lv in judged if lv["broken"]), default=None)
    served = [lv["sessions"] for lv in judged if not lv["broken"] and (failed is None or lv["sessions"] < failed)]
    return max(served, default=None)
