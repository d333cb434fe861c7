"""The dashboard's pure pieces: access rules, the bounded log book and its filter, service rows,
and per-process GPU memory through the real pynvml binding against the simulated NVML."""

from __future__ import annotations

import copy

import pytest

from duplex.dashboard import access, resources
from duplex.dashboard.logbook import CUT, LogBook, Splitter, level
from duplex.dashboard.logfilter import matcher
from duplex.dashboard.rows import Watch, row, service_state, warm_reload
from duplex.run import dashboard
from tests.support import fakenvml

TOKEN = "s3cret-token-value"


def test_reads_need_the_token_in_the_header_or_link_never_a_cookie():
    assert access.allowed(TOKEN, header=TOKEN, query=None)
    assert access.allowed(TOKEN, header=None, query=TOKEN)
    assert not access.allowed(TOKEN, header=None, query=None)
    assert not access.allowed(TOKEN, header="", query=TOKEN[:-1])
    assert not hasattr(access, "COOKIE")  # cookies ignore ports: every server on 127.0.0.1 would get it


def test_actions_need_post_the_header_token_and_no_foreign_origin():
    ok = dict(method="POST", header=TOKEN, origin="http://127.0.0.1:7980", host="127.0.0.1:7980")
    assert access.action_allowed(TOKEN, **ok) is None
    assert access.action_allowed(TOKEN, **{**ok, "origin": None}) is None  # curl, scripts
    assert "POST" in access.action_allowed(TOKEN, **{**ok, "method": "GET"})
    assert "header" in access.action_allowed(TOKEN, **{**ok, "header": None})  # a cross-site form
    assert "another origin" in access.action_allowed(TOKEN, **{**ok, "origin": "http://evil.example"})


def test_the_link_carries_the_token_in_a_form_the_cli_redactor_leaves_alone():
    from duplex.redact import redact
    url = dashboard.link(7980, TOKEN)
    assert url == f"http://127.0.0.1:7980/?t={TOKEN}"
    assert redact(url, set()) == url  # `inv run` prints it through the redacting stream


def test_the_log_book_keeps_the_last_lines_of_each_service_in_arrival_order():
    book = LogBook(keep=3, clock=lambda: 1.0)
    book.add("asr", ["a1", "a2"])
    book.add("web", ["w1"])
    book.add("asr", ["a3", "a4", "a5"])
    assert [l.text for l in book.since(0)] == ["w1", "a3", "a4", "a5"]
    assert [l.text for l in book.since(0, "asr")] == ["a3", "a4", "a5"]
    assert book.dropped["asr"] == 2
    assert [l.text for l in book.since(book.seq - 1)] == ["a5"]
    assert [l.text for l in book.since(0, match=matcher("A4"))] == ["a4"]
    assert [l.text for l in book.since(0, match=matcher(r"^[aw][15]$", regex=True))] == ["w1", "a5"]
    with pytest.raises(ValueError, match="not a regular expression"):
        matcher("(", regex=True)


def test_levels_are_read_from_the_line():
    assert level("ERROR:    Exception in ASGI application") == "error"
    assert level("2026-01-01 WARNING something") == "warning"
    assert level("INFO:     Application startup complete.") == "info"
    assert level("Traceback (most recent call last):") == "error"
    assert level("plain output") is None


def test_states_from_the_record_liveness_and_health():
    assert service_state(False, False, False, False) == "stopped"
    assert service_state(True, False, False, True) == "crashed"
    assert service_state(True, True, False, False) == "starting"
    assert service_state(True, True, True, False) == "healthy"
    assert service_state(True, True, False, True) == "unhealthy"


def test_a_new_pid_counts_a_restart_and_starts_a_new_health_history():
    watch = Watch()
    watch.observe("100", True, 1.0)
    watch.observe("100", False, 2.0)
    assert watch.restarts == 0 and [ok for _t, ok in watch.history] == [True, False]
    watch.observe("200", None, 3.0)
    assert watch.restarts == 1 and list(watch.history) == [] and not watch.seen_healthy
    planned = {"mode": "native", "url": "http://127.0.0.1:1/", "gpu": None}
    r = row("asr", planned, {"mode": "native", "pid": 200}, {"alive": True, "healthy": False}, watch, 4.0)
    assert (r["state"], r["id"], r["restarts"], r["uptime"]) == ("starting", "pid 200", 1, 1.0)


def test_warm_reloads_are_read_from_the_runners_log_line():
    line = ("INFO:     Warm reload: ['servers/asr/app.py'] changed; re-imported servers.asr.app:app in "
            "0.042 s (generation 3), preloaded models kept")
    assert warm_reload(line) == {"changed": "['servers/asr/app.py']", "seconds": 0.042, "generation": 3}
    assert warm_reload("INFO: Warm reload: watching servers") is None


def test_gpu_memory_per_process_through_pynvml_and_the_simulated_nvml(fake_nvml, tmp_path):
    desc = copy.deepcopy(fakenvml.host("two_l40s_one_busy"))
    desc["gpus"][0]["processes"] = [{"pid": 4242, "used": 3 * 2**30}, {"pid": 4243, "used": 2**30}]
    desc["gpus"][1]["processes"] = [{"pid": 4243, "used": 2**29}]
    with fakenvml.serving(fake_nvml, desc, tmp_path):
        table = resources.gpu_processes()
    name0, name1 = desc["gpus"][0]["name"], desc["gpus"][1]["name"]
    assert table[4242] == [{"gpu": 0, "name": name0, "used": 3 * 2**30}]
    assert resources.gpu_memory([4242, 4243, 1], table) == [
        {"gpu": 0, "name": name0, "used": 4 * 2**30}, {"gpu": 1, "name": name1, "used": 2**29}]
    assert resources.gpu_memory([1], table) == []
    desc["gpus"][0]["processes"] = []
    with fakenvml.serving(fake_nvml, desc, tmp_path):
        assert 4242 not in resources.gpu_processes()



def exposition(requests: float, audio: float, buckets: dict, total: float) -> str:
    """Prometheus text exposition as prometheus_client writes asr's metrics (servers/asr/metrics.py)."""
    lines = ["# HELP asr_requests_total Transcription requests answered, by HTTP status",
             "# TYPE asr_requests_total counter",
             f'asr_requests_total{{backend="pocketsphinx",status="200"}} {requests}',
             f'asr_audio_seconds_total{{backend="pocketsphinx"}} {audio}',
             "# TYPE asr_request_duration_seconds histogram"]
    lines += [f'asr_request_duration_seconds_bucket{{backend="pocketsphinx",le="{le}"}} {n}' for le, n in buckets.items()]
    lines += [f'asr_request_duration_seconds_count{{backend="pocketsphinx"}} {buckets["+Inf"]}',
              f'asr_request_duration_seconds_sum{{backend="pocketsphinx"}} {total}']
    return "\n".join(lines) + "\n"


def test_metrics_series_from_consecutive_scrapes():
    from duplex.dashboard.metrics import Series, parse
    series = Series()
    none = {"0.1": 0.0, "0.5": 0.0, "1.0": 0.0, "5.0": 0.0, "+Inf": 0.0}
    series.add(0.0, parse(exposition(0, 0, none, 0)))
    # four requests of 4 s audio each: 0.2, 0.3, 0.4 and 2.0 s of work
    four = {"0.1": 0.0, "0.5": 3.0, "1.0": 3.0, "5.0": 4.0, "+Inf": 4.0}
    series.add(2.0, parse(exposition(4, 16, four, 2.9)))
    (t, rate, p50, p95, rtf), = series.as_list()
    assert (t, rate) == (2.0, 2.0)
    assert 0.1 < p50 <= 0.5 and 1 < p95 <= 5
    assert rtf == round(2.9 / 16, 4)
    series.add(4.0, parse(exposition(4, 16, four, 2.9)))
    assert series.as_list()[-1][1:] == [0.0, None, None, None]  # nothing new: no latency, no rtf
    series.add(6.0, parse(exposition(0, 0, none, 0)))  # the service restarted: counters from zero
    assert len(series.as_list()) == 2


def test_session_gauges_show_in_the_series_when_the_server_exposes_them():
    from duplex.dashboard.metrics import Series, parse
    none = {"0.1": 0.0, "+Inf": 0.0}
    plain = Series()
    plain.add(0.0, parse(exposition(0, 0, none, 0)))
    assert plain.sessions is None  # a server without the gauges: nothing shown, not 0
    gauges = ("# TYPE asr_active_sessions gauge\nasr_active_sessions 3\n"
              "# TYPE asr_session_slots gauge\nasr_session_slots 8\n")
    live = Series()
    live.add(0.0, parse(exposition(0, 0, none, 0) + gauges))
    assert live.sessions == {"active": 3.0, "slots": 8.0}
    live.add(5.0, parse(exposition(0, 0, none, 0) + gauges.replace(" 3\n", " 0\n")))
    assert live.sessions == {"active": 0.0, "slots": 8.0}


def test_otlp_exports_become_requests_with_their_spans_across_services():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from duplex.dashboard.traces import TraceBook
    from duplex.dashboard.traces import decode as decode_export

    def decode(body: bytes, kind: str) -> list[dict]:
        return decode_export(body, "protobuf").spans

    def export(service: str, span_id: bytes, parent: bytes, name: str, start: int, end: int) -> bytes:
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        attr = rs.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", service
        span = rs.scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.parent_span_id = b"\x01" * 16, span_id, parent
        span.name, span.start_time_unix_nano, span.end_time_unix_nano = name, start, end
        return req.SerializeToString()
    book = TraceBook(keep=1)
    book.add(decode(export("asr", b"\x02" * 8, b"\x03" * 8, "POST /transcribe", 1_100_000_000, 1_400_000_000),
                    "application/x-protobuf"))
    book.add(decode(export("frontend", b"\x03" * 8, b"", "POST /api/transcribe", 1_000_000_000, 1_500_000_000),
                    "application/x-protobuf"))
    (trace,) = book.recent()
    assert (trace["name"], trace["services"], trace["ms"]) == ("POST /api/transcribe", ["frontend", "asr"], 500.0)
    assert [s["name"] for s in trace["spans"]] == ["POST /api/transcribe", "POST /transcribe"]
    book.add(decode(export("asr", b"\x04" * 8, b"", "other", 0, 1).replace(b"\x01" * 16, b"\x05" * 16),
                    "application/x-protobuf"))
    assert [t["name"] for t in book.recent()] == ["other"]  # bounded: the oldest trace went


def test_lines_are_cut_at_a_byte_limit_and_a_line_without_end_is_never_buffered_whole():
    split = Splitter(limit=8)
    assert split.feed(b"short\nexactly8\nlonger than") == ["short", "exactly8", "longer t" + CUT.format(8)]
    assert split.buf == b"" and split.skipping  # the rest of that line is not kept
    for _ in range(1000):
        assert split.feed(b"z" * 4096) == []
    assert len(split.buf) == 0
    assert split.feed(b"zz\nnext\npart") == ["next"] and split.buf == b"part"
    assert split.feed(b"ial\n") == ["partial"]
    assert Splitter(limit=8, skip_first=True).feed(b"middle of a line\nwhole\n") == ["whole"]
    assert Splitter().feed("é\n".encode()) == ["é"]


def test_the_book_is_bounded_in_bytes_as_well_as_lines():
    book = LogBook(keep=100, budget=40_000)
    book.add("asr", ["x" * 3000] * 20)
    kept = book.since(0, "asr")
    assert len(kept) == 13 and book.sizes["asr"] <= 40_000 and book.dropped["asr"] == 7
    book.add("asr", ["y" * 100_000])  # handed over as text: cut like a read line
    assert len(book.since(0, "asr")[-1].text) < 17_000
    book.add("web", [f"line {n}" for n in range(300)])  # short lines: the line count binds
    assert len(book.since(0, "web", limit=1000)) == 100
    assert book.since(0, "web", limit=0) == []


def test_a_hostile_metrics_answer_gives_no_figure_json_cannot_carry_and_never_raises():
    from duplex.dashboard.metrics import Series, parse
    text = ("x_requests_total +Inf\nx_duration_seconds_sum NaN\nx_audio_seconds_total 1e308\n"
            'x_duration_seconds_bucket{le="x"} 3\nx_duration_seconds_bucket{le="NaN"} 3\n'
            'x_duration_seconds_bucket{le="+Inf"} 2\n')
    first = parse(text)  # le="x" raised ValueError: every sample of the run failed
    assert first["requests"] == 0.0 and first["sum"] == 0.0 and list(first["buckets"]) == [float("inf")]
    series = Series()
    series.add(0.0, parse("x_audio_seconds_total -1e308\nx_duration_seconds_sum 1e308\n"))
    series.add(1.0, parse("x_audio_seconds_total 1e308\nx_duration_seconds_sum -1e308\n"))  # overflows to inf
    import json
    json.dumps(series.as_list(), allow_nan=False)


def test_the_probe_marker_is_one_string_on_both_sides_and_in_every_images_health_check():
    """duplex marks its probes (duplex.run.health), the servers hide what carries the mark
    (servers/telemetry.py; they never import duplex): the two spellings must agree, and each image's
    HEALTHCHECK that asks over HTTP carries it too."""
    import logging
    import re
    from pathlib import Path

    from duplex.run.health import PROBE_QUERY, marked
    from servers import telemetry
    assert telemetry.PROBE_MARK == PROBE_QUERY
    assert marked("http://h:1/health") == "http://h:1/health?duplex-probe=1"
    assert marked("/x?a=1") == "/x?a=1&duplex-probe=1"
    telemetry.hide_probes()
    telemetry.hide_probes()  # the warm reloader re-imports the app: still one filter
    access_log = logging.getLogger("uvicorn.access")
    assert sum(getattr(f, "hides_duplex_probes", False) for f in access_log.filters) == 1

    def logged(path: str) -> bool:
        return access_log.filter(logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                                                   ("127.0.0.1:1", "GET", path, "1.1", 200), None))
    assert not logged("/health?duplex-probe=1") and not logged("/metrics?duplex-probe=1")
    assert logged("/health") and logged("/metrics")  # anyone else's requests stay in the log
    root = Path(__file__).resolve().parents[2]
    for dockerfile in sorted((root / "dockerfiles").glob("*.Dockerfile")):
        for url in re.findall(r"urlopen\('([^']+)'", dockerfile.read_text()):
            assert url.endswith("?" + PROBE_QUERY), (dockerfile.name, url)
