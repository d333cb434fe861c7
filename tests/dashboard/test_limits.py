"""The receiver's and the filter's bounds as pure functions: incremental inflation at its cap, the
trace book's drops, and a filter's time budget over a whole pass."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest

from duplex.dashboard.logfilter import FilterError, matcher
from duplex.dashboard.otlp import TooLarge, inflate, media
from duplex.dashboard.traces import TraceBook


def test_inflate_stops_at_the_cap_and_reads_what_exporters_send():
    data = bytes(range(256)) * 4096  # 1 MiB
    assert inflate(gzip.compress(data), "gzip", cap=len(data)) == data  # exactly at the cap
    assert inflate(gzip.compress(data[:10]) + gzip.compress(data[10:20]), "gzip") == data[:20]  # two members
    assert inflate(zlib.compress(data), "deflate") == data
    with pytest.raises(TooLarge):
        inflate(gzip.compress(data), "gzip", cap=len(data) - 1)
    with pytest.raises(TooLarge):
        inflate(data, "identity", cap=len(data) - 1)
    with pytest.raises(ValueError, match="cut short"):
        inflate(gzip.compress(data)[:-8], "gzip")
    with pytest.raises(ValueError, match="not a valid gzip"):
        inflate(b"\x1f\x8b garbage", "gzip")
    assert media("Application/JSON; charset=utf-8") == "json" and media("application/x-protobuf") == "protobuf"
    assert media("text/plain") is None and media("") is None


def span(trace: str, n: int) -> dict:
    return {"trace": trace, "span": f"{n:016x}", "parent": None, "service": "asr", "name": f"s{n}",
            "start": float(n), "ms": 1.0, "error": False}


def test_the_trace_book_drops_the_oldest_and_says_which_were_this_batchs():
    book = TraceBook(keep=3, per_trace=4, total=10)
    assert book.add([span("a", n) for n in range(6)]) == 2  # its own two oldest
    assert book.add([span("b", n) for n in range(4)]) == 0
    assert book.add([span("c", n) for n in range(4)]) == 0  # 12 > 10: trace a goes whole
    assert [t["trace"] for t in book.recent()] == ["c", "b"] and book.spans == 8 and book.dropped == 6
    assert book.add([span("b", 9)]) == 0
    (newest, _) = book.recent()
    assert newest["trace"] == "b" and newest["dropped"] == 1 and newest["start"] == 1.0


def test_a_filter_pass_has_one_budget_whatever_the_number_of_lines():
    match = matcher(r"(x+x+)+y", regex=True)
    lines = ["x" * 200] * 40  # ~0.1 s each: 4 s without a budget for the pass
    began = time.monotonic()
    with pytest.raises(FilterError, match="took longer than 0.5 s") as caught:
        match.begin()
        [text for text in lines if match(text)]
    assert time.monotonic() - began < 1.5 and "plain text" in caught.value.fix
    assert matcher("REQUEST", regex=False)("a request") and not matcher("x", regex=True).begin()("y")
    with pytest.raises(FilterError, match="longer than 1000"):
        matcher("a" * 1001)
