"""The real dashboard process (`python -m duplex.dashboard`) against hostile input: request
parameters that end up in headers, a service whose /health answer carries secrets, and log lines
of megabytes (docs/dashboard.md, docs/faults.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from duplex.run.processes import start_time
from tests.support.board import board, planned
from tests.support.net import free_port

HF = "hf_Zz9TestTokenValue12345678"
DECLARED = "correct-horse-battery-staple"
URL_PASSWORD = "url-pass-w0rd-9876"


def test_the_download_name_and_the_service_filter_are_checked_against_the_run(tmp_path):
    (tmp_path / ".duplex" / "logs").mkdir(parents=True)
    (tmp_path / ".duplex" / "logs" / "asr.log").write_text("INFO one\nINFO two\n")
    with board(tmp_path, planned({"asr": {}})) as b:
        import time
        deadline = time.monotonic() + 20
        while len(b.get("/api/logs").json()["lines"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for bad in ("asr\r\nX-Injected: 1", 'asr"; filename="evil.exe', "nope", "../asr", "asr\n"):
            reply = b.get("/api/logs", params={"service": bad, "download": "1"})
            assert reply.status_code == 404, (bad, reply.status_code)
            assert "is not a service of this run" in reply.json()["error"] and "x-injected" not in reply.headers
            assert "evil.exe" not in reply.headers.get("content-disposition", "")
            assert b.get("/api/logs", params={"service": bad}).status_code == 404
            assert b.get("/api/events", params={"service": bad}).status_code == 404
        good = b.get("/api/logs", params={"service": "asr", "download": "1"})
        assert good.status_code == 200 and good.headers["content-disposition"] == 'attachment; filename="asr.log"'
        every = b.get("/api/logs", params={"download": "1"})
        assert every.headers["content-disposition"] == 'attachment; filename="all.log"'
        for bad in ({"limit": "-1"}, {"since": "x"}, {"limit": "1e9"}, {"since": "-5"}, {"limit": "\u0663"}):
            assert b.get("/api/logs", params=bad).status_code == 400, bad
        assert b.get("/api/logs", params={"limit": "0"}).json()["lines"] == []  # was: every line
        assert b.proc.poll() is None
    assert "Traceback" not in b.log(), b.log()


HEALTH = textwrap.dedent(f'''
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    NAN = sys.argv[2:] == ["nan"]  # numbers JSON has no words for: NaN, Infinity
    SCRAPES = [0]
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def do_GET(self):
            if self.path.split("?")[0] == "/metrics":  # duplex marks its probes
                SCRAPES[0] += 1
                body = ("# TYPE x_requests_total counter\\nx_requests_total +Inf\\n"
                        f"x_audio_seconds_total {{SCRAPES[0]}}\\nx_duration_seconds_sum NaN\\n").encode()
            else:
                body = json.dumps({{"status": "ready", "model": "https://alice:{URL_PASSWORD}@hub.example/m",
                                   "backend": "key {DECLARED}", "device": "cpu",
                                   "error": {{"deep": ["token {HF}"]}},
                                   "load_s": float("nan") if NAN else 1.5}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)
    HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
''')


@pytest.fixture
def leaky(request):
    """A service whose /health answer echoes its secrets (a model URL with credentials, a declared
    secret, the HF token), recorded in the run state as a live native service; with the param
    "nan", its health answer and its /metrics hold NaN and Infinity."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", HEALTH, str(port), getattr(request, "param", "")],
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    view = planned({"asr": {"url": url, "urls": [url], "health": {"kind": "http", "url": f"{url}/health",
                                                                  "ca": None},
                              "metrics": "/metrics"}}, secrets=("SERVICE_PASSPHRASE",))  # declared: scraped
    state = {"services": {"asr": {"mode": "native", "pid": proc.pid, "start_time": start_time(proc.pid)}}}
    try:
        yield view, state
    finally:
        proc.kill()
        proc.wait()


def test_a_services_health_answer_is_masked_in_the_rows_and_the_event_stream(tmp_path, leaky):
    view, state = leaky
    env = {"HF_TOKEN": HF, "SERVICE_PASSPHRASE": DECLARED}
    with board(tmp_path, view, env=env, state=state) as b:
        import time
        deadline = time.monotonic() + 20
        while True:
            rows = b.get("/api/services").json()["services"]
            if rows[0].get("phase"):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        text = json.dumps(rows)
        with httpx.stream("GET", b.base + "/api/events", headers={"x-duplex-token": b.token}, timeout=10) as s:
            for line in s.iter_lines():
                if line.startswith("data:") and '"phase"' in line:
                    text += line
                    break
    phase = rows[0]["phase"]
    assert phase["status"] == "ready" and phase["load_s"] == 1.5 and phase["device"] == "cpu"
    for secret in (HF, DECLARED, URL_PASSWORD):
        assert secret not in text, secret
    assert "***" in phase["model"] and "***" in phase["backend"]


MiB = 1 << 20


def test_memory_is_bounded_in_bytes_however_long_the_lines(tmp_path):
    """150 lines of 1 MiB, then 30 MiB without a newline: each line is cut with a marker, the book
    holds a few MB, one /api/logs answer stays small and the process does not grow by the flood."""
    log = tmp_path / ".duplex" / "logs" / "asr.log"
    log.parent.mkdir(parents=True)
    log.write_text("")
    with board(tmp_path, planned({"asr": {}})) as b:
        b.get("/api/logs")
        before = b.rss()
        line = b"INFO " + b"x" * MiB + b"\n"
        with open(log, "ab") as fh:
            for n in range(150):
                fh.write(b"%d " % n + line)
            fh.write(b"ERROR no newline " + b"y" * (30 * MiB))
            fh.flush()
            fh.write(b"\nafter the long one\n")
        import time
        deadline = time.monotonic() + 60
        while True:
            reply = b.get("/api/logs", params={"limit": "100000"}, timeout=60)
            lines = reply.json()["lines"]
            if lines and lines[-1]["text"] == "after the long one":
                break
            assert time.monotonic() < deadline, len(lines)
            time.sleep(0.5)
        grown = b.rss() - before
        print(f"rss grown by {grown / MiB:.1f} MiB, /api/logs {len(reply.content) / MiB:.2f} MiB")
        assert len(reply.content) < 8 * MiB
        assert grown < 48 * MiB, grown
        long = [l for l in lines if l["text"].startswith("ERROR no newline")]
        assert len(long) == 1 and "[line cut:" in long[0]["text"] and len(long[0]["text"]) < 64 * 1024
        cut = [l for l in lines if l["text"].startswith("149 INFO")]
        assert len(cut) == 1 and "[line cut:" in cut[0]["text"] and long[0]["level"] == "error"
        assert b.proc.poll() is None


def _strict(text: str):
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are not JSON."""
    def refuse(word):
        raise ValueError(f"not JSON: {word}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("leaky", ["nan"], indirect=True)
def test_numbers_json_cannot_carry_from_a_services_answers_never_break_the_rows(tmp_path, leaky):
    """NaN and Infinity in a health answer or /metrics (Python's json and float() take them): the
    API answered 500 with a traceback and the event stream sent `NaN`, which the page cannot parse."""
    view, state = leaky
    with board(tmp_path, view, state=state) as b:
        import time
        deadline = time.monotonic() + 30
        while True:
            reply = b.get("/api/services")
            assert reply.status_code == 200, reply.text
            rows = _strict(reply.text)["services"]
            if rows[0].get("phase") and rows[0].get("metrics"):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.5)
        assert rows[0]["phase"]["load_s"] is None
        assert all(v is None or abs(v) < 1e300 for point in rows[0]["metrics"] for v in point[1:])
        with httpx.stream("GET", b.base + "/api/events", headers={"x-duplex-token": b.token}, timeout=10) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    _strict(line[5:])
                    break
    assert "Traceback" not in b.log(), b.log()
