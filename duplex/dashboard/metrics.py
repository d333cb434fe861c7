"""Charts' figures from a service's Prometheus /metrics: request rate, latency p50/p95 (from the
histogram's buckets, as PromQL's histogram_quantile does) and real-time factor (seconds of work per
second of audio), over the last minutes. Pure: scraped texts in, a series out; the sampler scrapes."""

from __future__ import annotations

import math
import re
from collections import deque

KEEP = 60  # points kept per service (one per scrape, every 5 s: five minutes)
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
LE = re.compile(r'le="([^"]+)"')


def parse(text: str) -> dict:
    """The figures the charts need, summed over labels: requests, audio seconds, the latency
    histogram's buckets, sum and count; and the live sessions and their slots, from the
    `*active_sessions` and `*session_slots` gauges of a server that exposes them (else None)."""
    out = {"requests": 0.0, "audio": 0.0, "buckets": {}, "sum": 0.0, "count": 0.0, "sessions": None, "slots": None}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = SAMPLE.match(line)
        if not found:
            continue
        name, labels, raw = found.groups()
        try:
            value = float(raw)
        except ValueError:
            continue
        if not math.isfinite(value):  # float() takes NaN and Inf, which JSON (and the charts) cannot
            continue
        if name.endswith("_requests_total"):
            out["requests"] += value
        elif name.endswith("_audio_seconds_total"):
            out["audio"] += value
        elif name.endswith("_duration_seconds_bucket"):
            le = LE.search(labels or "")
            bound = _bound(le.group(1)) if le else None
            if bound is not None:
                out["buckets"][bound] = out["buckets"].get(bound, 0.0) + value
        elif name.endswith("_duration_seconds_sum"):
            out["sum"] += value
        elif name.endswith("_duration_seconds_count"):
            out["count"] += value
        elif name.endswith("active_sessions") or name.endswith("session_slots"):
            key = "sessions" if name.endswith("active_sessions") else "slots"
            out[key] = (out[key] or 0.0) + value
    return out


def _bound(text: str) -> float | None:
    """A bucket's `le`: a finite number or +Inf; anything else (a service's answer is not ours to
    trust: `le="x"` once failed every sample of the run) is skipped."""
    if text == "+Inf":
        return math.inf
    try:
        bound = float(text)
    except ValueError:
        return None
    return bound if math.isfinite(bound) else None


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative bucket counts {upper bound: count}."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is what is known
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return None


class Series:
    """One service's chart points, from consecutive scrapes: [time, req/s, p50 s, p95 s, rtf]."""

    def __init__(self, keep: int = KEEP):
        self.points: deque = deque(maxlen=keep)
        self.last: tuple[float, dict] | None = None
        self.sessions: dict | None = None  # the last scrape's {"active", "slots"}, when it has the gauges

    def add(self, now: float, scraped: dict) -> None:
        if scraped.get("sessions") is not None:
            self.sessions = {"active": _round(scraped["sessions"], 1), "slots": _round(scraped.get("slots"), 1)}
        if self.last is not None:
            then, before = self.last
            span = now - then
            if span > 0 and scraped["requests"] >= before["requests"]:  # else: the service restarted
                delta = {b: scraped["buckets"].get(b, 0.0) - before["buckets"].get(b, 0.0)
                         for b in scraped["buckets"]}
                audio = scraped["audio"] - before["audio"]
                rtf = (scraped["sum"] - before["sum"]) / audio if audio > 0 else None
                self.points.append([round(now, 1), _round((scraped["requests"] - before["requests"]) / span, 3),
                                    _round(quantile(0.5, delta)), _round(quantile(0.95, delta)), _round(rtf)])
        self.last = (now, scraped)

    def as_list(self) -> list:
        return list(self.points)


def _round(value: float | None, digits: int = 4) -> float | None:
    """None for no figure, and for one JSON cannot carry (a sum of huge values can overflow)."""
    return None if value is None or not math.isfinite(value) else round(value, digits)
