"""The real dashboard process under hostile trace exports and filters (docs/dashboard.md, "Recent
requests" and "Limits"): a gzip bomb, bodies too large, wrong content types and encodings, a flood
of spans into one trace, OTLP/JSON's hex ids, the waterfall in Chromium, and a regular expression
that backtracks catastrophically, answered 400 in the API and on the page while nothing stalls."""

from __future__ import annotations

import gzip
import json
import os
import socket
import time

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from tests.support.browser import chromium
from tests.support.browser import wait_for as wait_until
from tests.support.receiver import Board, Stall, export, gzip_bomb, many_spans

MiB = 1 << 20
CATASTROPHIC = r"(x+x+)+y"  # exponential in Python's re over a run of x without a y


@pytest.fixture
def board(tmp_path):
    with Board(tmp_path) as running:
        yield running


def status_of(answer: httpx.Response) -> tuple[int, str]:
    """A protobuf google.rpc.Status (code 1, message 2): ExportTracePartialSuccess has the same wire shape."""
    status = ExportTracePartialSuccess.FromString(answer.content)
    return status.rejected_spans, status.error_message


def test_a_gzip_bomb_is_refused_with_413_without_memory_or_a_stall(board):
    bomb = gzip_bomb(256 * MiB)  # ~250 KiB on the wire
    assert len(bomb) < MiB
    board.post(many_spans(b"\x01" * 16, 10))  # the decoding stack loaded: its memory is not the bomb's
    before = board.rss()
    with Stall(board) as stall:
        answer = board.post(bomb, content_encoding="gzip")
    assert answer.status_code == 413, answer.content[:200]
    assert "8 MiB" in status_of(answer)[1]
    assert stall.peak - before < 48 * MiB, (before, stall.peak)
    assert stall.polls >= 2 and stall.longest < 1.0, stall.longest
    assert len(board.get("/api/traces").json()["traces"]) == 1


def test_the_receiver_answers_as_an_otlp_collector_does(board):
    trace = b"\x02" * 16
    ok = board.post(many_spans(trace, 3))
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(ok.content).HasField("partial_success")
    # too large on the wire: refused before it is read whole; the same body gzipped is fine
    big = many_spans(trace, 1) + os.urandom(5 * MiB)
    assert board.post(big).status_code == 413
    # JSON in, JSON out
    empty = board.post(b'{"resourceSpans": []}', "application/json; charset=utf-8")
    assert empty.status_code == 200 and empty.headers["content-type"].startswith("application/json")
    assert empty.json() == {}
    # what it cannot read: 415, saying what it can
    wrong = board.post(many_spans(trace, 1), "text/plain")
    assert wrong.status_code == 415 and "application/x-protobuf" in wrong.text and "application/json" in wrong.text
    coded = board.post(many_spans(trace, 1), content_encoding="br")
    assert coded.status_code == 415 and "gzip" in coded.text
    # broken bodies: 400 with a google.rpc.Status in the request's own encoding
    garbage = board.post(b"\xff\xff\xff\xff")
    assert garbage.status_code == 400 and status_of(garbage)[0] == 3  # INVALID_ARGUMENT
    broken = board.post(b'{"resourceSpans": [', "application/json")
    assert broken.status_code == 400 and broken.json()["code"] == 3 and "JSON" in broken.json()["message"]
    cut = gzip.compress(many_spans(trace, 50))[:-30]
    assert board.post(cut, content_encoding="gzip").status_code == 400
    # only POST
    assert httpx.get(f"{board.otlp}/v1/traces").status_code == 405
    assert httpx.get(f"{board.otlp}/api/traces").status_code == 404
    (row,) = board.get("/api/traces").json()["traces"]
    assert len(row["spans"]) == 3


def test_spans_per_trace_and_in_all_are_capped_and_the_drops_counted(board):
    trace, rejected = b"\x03" * 16, 0
    for i in range(40):  # 100,000 spans into one trace
        answer = board.post(many_spans(trace, 2500, first=i * 2500))
        assert answer.status_code == 200
        rejected += ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans
    body = board.get("/api/traces")
    (row,) = body.json()["traces"]
    assert len(row["spans"]) == 256 and row["dropped"] == 100_000 - 256
    assert {s["name"] for s in row["spans"]} == {f"GET /item/{n}" for n in range(100_000 - 256, 100_000)}  # newest
    assert rejected == 40 * (2500 - 256)  # each export's own overflow is said to the exporter
    assert len(body.content) < MiB
    # many traces: at most 10,000 spans in all, the oldest traces go first
    for t in range(100):
        assert board.post(many_spans(t.to_bytes(16, "big"), 200)).status_code == 200
    answer = board.get("/api/traces?limit=200").json()
    kept = answer["traces"]
    assert sum(len(r["spans"]) for r in kept) <= 10_000 and kept[0]["trace"] == (99).to_bytes(16, "big").hex()
    assert answer["dropped"] >= 100_000 - 256 + 20_000 - 10_000 and answer["spans"] <= 10_000


def test_otlp_json_ids_are_hex_and_bad_ids_are_refused(board):
    def body(trace_id: str, span_id: str) -> bytes:
        return json.dumps({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
            "scopeSpans": [{"scope": {"name": "x", "futureField": 1}, "spans": [{
                "traceId": trace_id, "spanId": span_id, "parentSpanId": "", "name": "GET /", "kind": 2,
                "startTimeUnixNano": "1000000000", "endTimeUnixNano": "1250000000",
                "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}]}]}]}]}).encode()
    answer = board.post(body("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"), "application/json")
    assert answer.status_code == 200, answer.text
    (row,) = board.get("/api/traces").json()["traces"]
    assert row["trace"] == "5b8efff798038103d269b633813fc60c" and row["spans"][0]["span"] == "eee19b7ec3c1b174"
    assert (row["service"], row["start"], row["ms"]) == ("web", 1.0, 250.0)
    bad = board.post(body("not-hex", "eee19b7ec3c1b174"), "application/json")
    assert bad.status_code == 400 and "traceId" in bad.json()["message"]
    short = board.post(body("5b8e", "eee19b7ec3c1b174"), "application/json")
    assert short.status_code == 200
    assert short.json()["partialSuccess"]["rejectedSpans"] in ("1", 1)


def test_the_waterfall_places_each_span_in_chromium(board):
    trace = b"\x04" * 16
    board.post(export(trace, [(b"\x0a" * 8, b"", "POST /api/transcribe", 1_000_000_000, 1_500_000_000)], "frontend"))
    board.post(export(trace, [(b"\x0b" * 8, b"\x0a" * 8, "POST /transcribe", 1_100_000_000, 1_400_000_000)], "asr"))
    with chromium() as driver:
        driver.get(board.link())
        bars = lambda: driver.execute_script(
            "return [...document.querySelectorAll('#traces .bar')].map(b => [b.style.marginLeft, b.style.width]);")
        wait_until(lambda: len(bars()) == 2, 20, "the trace's two bars", driver)
        assert bars() == [["0%", "100%"], ["20%", "60%"]]  # was ["", ...]: margin-left NaN% is no style
    (row,) = board.get("/api/traces").json()["traces"]
    assert (row["start"], row["ms"], row["services"]) == (1.0, 500.0, ["frontend", "asr"])


def test_a_catastrophic_regex_is_a_400_and_stalls_nothing(board):
    board.log_lines("x" * 2000, "INFO: request 1")
    wait_until(lambda: len(board.get("/api/logs").json()["lines"]) == 2, 20, "the log lines")
    with Stall(board) as stall:
        began = time.monotonic()
        answer = board.get("/api/logs", params={"q": CATASTROPHIC, "regex": "1"}, timeout=10)
        took = time.monotonic() - began
        events = board.get("/api/events", params={"q": CATASTROPHIC, "regex": "1"}, timeout=10)
    assert answer.status_code == 400 and "took longer than" in answer.json()["error"], answer.text
    assert "fix" in answer.json()
    assert events.status_code == 400 and "took longer than" in events.json()["error"]
    assert took < 2.0 and stall.longest < 0.5, (took, stall.longest)
    bad = board.get("/api/logs", params={"q": "(", "regex": "1"})
    assert bad.status_code == 400 and "not a regular expression" in bad.json()["error"]
    fine = board.get("/api/logs", params={"q": r"request \d", "regex": "1"}).json()["lines"]
    assert [line["text"] for line in fine] == ["INFO: request 1"]
    # the same in the page: the reason shown by the filter box, and the page does not freeze
    with chromium() as driver:
        driver.get(board.link())
        said = lambda: driver.execute_script("const e = document.getElementById('filter-error');"
                                             "return e && !e.hidden ? e.textContent : '';")
        shown = lambda: driver.execute_script("return document.querySelectorAll('#logs div').length;")
        wait_until(lambda: shown() == 2, 20, "the log lines in the page", driver)
        driver.find_element("id", "regex").click()
        driver.find_element("id", "filter").send_keys(CATASTROPHIC)
        wait_until(lambda: "took longer than" in said(), 20, "the timeout said by the filter", driver)
        driver.find_element("id", "filter").clear()
        driver.find_element("id", "filter").send_keys("(")
        wait_until(lambda: "not a regular expression" in said(), 20, "the bad pattern said", driver)
        driver.find_element("id", "filter").send_keys(r"request \d)")
        wait_until(lambda: said() == "" and shown() == 1, 20, "a good pattern filters", driver)


def test_exporters_that_trickle_hold_a_slot_for_seconds_not_for_ever(board):
    """Four clients that send headers and then a byte now and then: the next export is told to retry
    (503, Retry-After), and after 5 s they are answered 408 and exports are taken again."""
    port = int(board.otlp.rsplit(":", 1)[1])
    slow = []
    for _ in range(4):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 1000\r\n\r\n\n")
        slow.append(sock)
    time.sleep(0.5)
    busy = board.post(many_spans(b"\x05" * 16, 1))
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    for sock in slow:
        sock.settimeout(10)
        assert sock.recv(200).startswith(b"HTTP/1.1 408"), "a trickled body was waited for past 5 s"
        sock.close()
    assert board.post(many_spans(b"\x05" * 16, 1)).status_code == 200
