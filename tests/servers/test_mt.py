"""The translation server when it cannot translate: a bad setting or a model missing from the cache
is reported by /health (503, with what to do) and every translation is refused as not ready, in the
servers' one error shape. Real uvicorn processes in the mt env; the working path is covered by
tests/translate/test_chain.py."""

from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.conftest import ROOT
from tests.support.envs import ensure_env
from tests.support.net import free_port, stop_process, wait_answer


@pytest.fixture(scope="module")
def python():
    return ensure_env("mt") / "bin" / "python"


def serve(python, tmp_path, **env):
    port = free_port()
    log = open(tmp_path / "mt.log", "w")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MT_", "HF_"))}
    proc = subprocess.Popen([str(python), "-m", "uvicorn", "servers.mt.app:app", "--port", str(port)], cwd=ROOT,
                            env={**clean, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", **env},
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_answer(proc, url + "/health", "mt", time.monotonic() + 60, (tmp_path / "mt.log").read_text)
    return proc, url


def settled(url: str) -> dict:
    """/health once loading is over (the load runs in a thread: torch and transformers import first)."""
    deadline = time.monotonic() + 120
    while (body := httpx.get(url + "/health").json())["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.5)
    return body


@pytest.mark.parametrize("env, error", [
    ({"MT_DEVICE": "gpu"}, "bad setting: MT_DEVICE='gpu' is not one of auto, cpu, cuda"),
    ({"MT_SOURCE": "english!"}, "bad setting: MT_SOURCE='english!' is not an ISO 639-1 language code"),
    ({"MT_TARGET": "zz"}, "bad setting: MT_TARGET='zz' is not an ISO 639-1 language code"),
    ({"DUPLEX_ALLOWED_ORIGINS": "evil.example"}, "bad setting: DUPLEX_ALLOWED_ORIGINS entry 'evil.example' is not an origin"),
    ({"MT_MODEL": "acme/not-prefetched"}, "run `inv prefetch --repo acme/not-prefetched`"),
    ({"MT_WS_MAX_SESSIONS": "0"}, "bad setting: MT_WS_MAX_SESSIONS='0' must be greater than 0"),
])
def test_what_stops_it_is_said_by_health_and_every_request_is_refused(python, tmp_path, env, error):
    proc, url = serve(python, tmp_path, **env)
    try:
        health = settled(url)
        assert health["status"] == "error" and not health["ready"] and error in health["error"], health
        assert httpx.get(url + "/health").status_code == 503
        refused = httpx.post(url + "/translate", json={"text": "hello"})
        assert refused.status_code == 503 and refused.json()["error"] == "not_ready", refused.text
        assert error in refused.json()["detail"]
        assert httpx.get(url + "/nope").json() == {"error": "not_found", "detail": "no such path: /nope"}
        assert "mt_model_ready" in httpx.get(url + "/metrics").text
    finally:
        stop_process(proc)


# -- a ready translator (the tiny random Qwen2 of tests/support/tiny_models.py, from a local folder) ----

@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from tests.support.tiny_models import tiny_qwen
    return tiny_qwen(tmp_path_factory.getbasetemp() / "tiny-qwen")


@pytest.fixture(scope="module")
def server(python, qwen, tmp_path_factory):
    proc, url = serve(python, tmp_path_factory.mktemp("mt-ready"), MT_MODEL=str(qwen), MT_DEVICE="cpu",
                      MT_MAX_NEW_TOKENS="4", DUPLEX_ALLOWED_ORIGINS="https://app.example.com")
    try:
        assert settled(url)["ready"], httpx.get(url + "/health").text
        yield proc, url
    finally:
        stop_process(proc)


@pytest.fixture
def ready(server) -> str:
    return server[1]


def rss_mib(pid: int) -> int:
    return int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0]) // 1024


def streamed(size: int):
    """A JSON body of `size` bytes sent chunked (no Content-Length)."""
    yield b'{"text": "'
    for _ in range(size // 2**20):
        yield b"a" * 2**20
    yield b'"}'


def test_a_huge_body_is_refused_before_it_is_read(server):
    """200 MB, by Content-Length and chunked: 413 at the limit, the server's memory flat (was: the
    whole body read and parsed first, 368 -> 713 MB)."""
    proc, url = server
    before = rss_mib(proc.pid)
    big = httpx.post(url + "/translate", content=b'{"text": "' + b"a" * 200 * 2**20 + b'"}', timeout=120,
                     headers={"content-type": "application/json"})
    chunked = httpx.post(url + "/translate", content=streamed(200 * 2**20), timeout=120,
                         headers={"content-type": "application/json"})
    grown = rss_mib(proc.pid) - before
    assert grown < 50, f"{grown} MiB more after the two bodies"
    for answer in (big, chunked):
        assert answer.status_code == 413 and answer.json()["error"] == "too_large", answer.text
        assert "28096-byte limit" in answer.json()["detail"]


def ws(url: str, query: str = "", **kw):
    from websockets.sync.client import connect
    return connect(url.replace("http://", "ws://") + "/ws/translate" + query, open_timeout=10, **kw)


@pytest.mark.parametrize("code", ["zz", "xx-YY", "eng1", "english", "e", "en-", "qq"])
def test_a_language_code_that_does_not_exist_is_refused(ready, code):
    for body in ({"text": "hello", "target": code}, {"text": "hello", "source": code}):
        answer = httpx.post(ready + "/translate", json=body, timeout=60)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_language", answer.text
        assert "ISO 639-1" in answer.json()["detail"]


@pytest.mark.parametrize("code", ["en", "fr", "pt-BR", "zh-Hant", "es-419", "EN", "sw", "yo"])
def test_every_iso_639_1_code_is_taken(ready, code):
    answer = httpx.post(ready + "/translate", json={"text": "hello", "target": code}, timeout=60)
    assert answer.status_code == 200 and answer.json()["target"] == code, answer.text


def test_the_stream_answers_every_bad_message_with_an_error_event_and_goes_on(ready):
    """Each bad message gets the documented `error` event and the session carries on (was: a
    non-string source or target, or a deeply nested message, dropped the connection)."""
    bad = [json.dumps({"type": "final", "id": 1, "text": "hello", "source": 5}),
           json.dumps({"type": "final", "id": 2, "text": "hello", "target": ["de"]}),
           json.dumps({"type": "final", "id": 3, "text": "hello", "target": {"x": 1}}),
           json.dumps({"type": "final", "id": 4, "text": "hello", "target": "zz"}),
           '{"type": "final", "text": ' + "[" * 5000 + "]" * 5000 + "}",
           json.dumps({"type": "final", "text": "x" * 40000}),
           b"\x00\x01"]
    with ws(ready, "?target=fr") as conn:
        for message in bad:
            conn.send(message)
        conn.send(json.dumps({"type": "final", "id": 9, "text": "hello"}))
        got = [json.loads(conn.recv(timeout=60)) for _ in range(len(bad) + 1)]
    assert [g["type"] for g in got] == ["error"] * len(bad) + ["translation"], got
    assert [g["error"] for g in got[:-1]] == ["bad_language"] * 4 + ["bad_request", "too_large", "bad_request"], got
    assert [g["id"] for g in got[:4]] == [1, 2, 3, 4] and all(g["detail"] for g in got[:-1])
    assert got[-1]["id"] == 9 and got[-1]["target"] == "fr"


def test_a_language_query_that_does_not_exist_is_said_per_message(ready):
    with ws(ready, "?target=zz") as conn:
        conn.send(json.dumps({"type": "final", "id": 1, "text": "hello"}))
        answer = json.loads(conn.recv(timeout=60))
    assert (answer["type"], answer["error"]) == ("error", "bad_language") and "'zz'" in answer["detail"]


@pytest.mark.parametrize("origin, allowed", [
    ("http://evil.example", False), ("null", False), ("https://app.example.com", True), (None, True)])
def test_only_listed_or_own_origins_may_open_the_stream(ready, origin, allowed):
    from websockets.exceptions import InvalidStatus
    headers = {"Origin": origin} if origin else {}
    if not allowed:
        with pytest.raises(InvalidStatus) as refused:
            ws(ready, additional_headers=headers)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"] == "forbidden_origin"
        return
    with ws(ready, additional_headers=headers) as conn:
        conn.send(json.dumps({"type": "final", "id": 1, "text": "hello"}))
        assert json.loads(conn.recv(timeout=60))["type"] == "translation"


def test_a_pad_token_id_of_zero_is_kept(python, qwen):
    """transformers' tokenizer with its pad token set to id 0 (was: `pad or eos` took 0 for missing)."""
    script = ("import sys; from transformers import AutoTokenizer; from servers.mt.translator import pad_token_id; "
              "tok = AutoTokenizer.from_pretrained(sys.argv[1]); eos = tok.eos_token_id; "
              "tok.pad_token = tok.convert_ids_to_tokens(0); assert tok.pad_token_id == 0; "
              "print(pad_token_id(tok), eos)")
    out = subprocess.run([str(python), "-c", script, str(qwen)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    pad, eos = out.stdout.split()
    assert pad == "0" and eos != "0"


def test_the_language_list_is_iso_639_1_as_pycountry_has_it():
    import pycountry

    from servers.mt.languages import ISO_639_1
    assert ISO_639_1 == {lang.alpha_2: lang.name for lang in pycountry.languages if hasattr(lang, "alpha_2")}


# -- /ws/translate's limits: idle, wall time, sessions open (MT_WS_*), as asr's WS /stream has -----------

@pytest.fixture(scope="module")
def limited(python, qwen, tmp_path_factory):
    """A ready translator with short stream limits: idle 3 s, 2 sessions, 8 s per session."""
    proc, url = serve(python, tmp_path_factory.mktemp("mt-limited"), MT_MODEL=str(qwen), MT_DEVICE="cpu",
                      MT_MAX_NEW_TOKENS="4", MT_WS_IDLE_SECONDS="3", MT_WS_MAX_SESSIONS="2",
                      MT_WS_MAX_WALL_SECONDS="8")
    try:
        assert settled(url)["ready"], httpx.get(url + "/health").text
        yield url
    finally:
        stop_process(proc)


def closed_with(conn, timeout: float = 20) -> tuple[list[dict], int, str]:
    """The events up to the server's close, its close code and reason (TimeoutError if it never closes)."""
    from websockets.exceptions import ConnectionClosed
    events = []
    try:
        while True:
            events.append(json.loads(conn.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return events, closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else ""


def translated(conn, ident) -> dict:
    conn.send(json.dumps({"type": "final", "id": ident, "text": "hello"}))
    answer = json.loads(conn.recv(timeout=60))
    assert answer["type"] == "translation" and answer["id"] == ident, answer
    return answer


def test_the_stream_limits_are_the_asr_streams_codes():
    from servers.asr import stream_protocol as asr
    from servers.mt import limits
    assert (limits.IDLE, limits.TOO_LONG, limits.TOO_MANY) == (asr.IDLE, asr.TOO_LONG, asr.TOO_MANY)
    for code in (limits.IDLE, limits.TOO_LONG, limits.TOO_MANY):
        assert limits.CLOSE_CODES[code] == asr.CLOSE_CODES[code]


def test_the_limits_are_in_health(limited, ready):
    assert {k: v for k, v in httpx.get(limited + "/health").json().items() if k.startswith("ws_")} == {
        "ws_idle_seconds": 3.0, "ws_max_sessions": 2, "ws_max_wall_seconds": 8.0, "ws_open": 0}
    defaults = httpx.get(ready + "/health").json()
    assert (defaults["ws_idle_seconds"], defaults["ws_max_sessions"], defaults["ws_max_wall_seconds"]) == (300.0, 16, 3900.0)


def test_a_client_that_sends_nothing_is_closed_after_the_idle_time(limited):
    started = time.monotonic()
    with ws(limited) as conn:
        events, code, reason = closed_with(conn)
    waited = time.monotonic() - started
    assert code == 4408 and reason.startswith("idle_timeout: "), (code, reason)
    assert 2.5 < waited < 10, waited
    assert events == [{"type": "error", "id": None, "status": 408, "error": "idle_timeout", "close_code": 4408,
                       "detail": events[0]["detail"]}] and "MT_WS_IDLE_SECONDS" in events[0]["detail"], events


def test_a_client_that_answers_then_falls_silent_is_closed_too(limited):
    with ws(limited) as conn:
        translated(conn, 1)
        _, code, _ = closed_with(conn)
    assert code == 4408


def test_a_client_that_keeps_sending_is_closed_after_the_wall_time(limited):
    """Partials every second keep the idle timeout away; the session still ends at MT_WS_MAX_WALL_SECONDS."""
    from websockets.exceptions import ConnectionClosed
    started = time.monotonic()
    with ws(limited) as conn:
        try:
            while time.monotonic() - started < 20:
                conn.send(json.dumps({"type": "partial", "text": "hel"}))
                time.sleep(1)
        except ConnectionClosed:
            pass
        events, code, reason = closed_with(conn)
    assert code == 4413 and reason.startswith("session_too_long: "), (code, reason)
    assert 7 < time.monotonic() - started < 15
    assert events[-1]["error"] == "session_too_long" and "MT_WS_MAX_WALL_SECONDS" in events[-1]["detail"]


def opened(url: str, stack: ExitStack):
    return stack.enter_context(ws(url))


def accepted_within(url: str, seconds: float, stack: ExitStack):
    """A session the server keeps (a translation answered), retried while the last one's slot frees."""
    from websockets.exceptions import ConnectionClosed
    deadline = time.monotonic() + seconds
    while True:
        conn = opened(url, stack)
        try:
            translated(conn, 0)
            return conn
        except (ConnectionClosed, AssertionError):
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_sessions_over_the_cap_are_refused_while_the_others_keep_working(limited):
    with ExitStack() as stack:
        first, second = opened(limited, stack), opened(limited, stack)
        translated(first, 1), translated(second, 1)
        assert httpx.get(limited + "/health").json()["ws_open"] == 2
        assert gauges(limited) == {"active_sessions": 2.0, "session_slots": 2.0}
        with ws(limited) as third:
            events, code, reason = closed_with(third)
        assert code == 4429 and reason.startswith("too_many_streams: "), (code, reason)
        assert [(e["error"], e["status"], e["close_code"]) for e in events] == [("too_many_streams", 429, 4429)]
        assert "MT_WS_MAX_SESSIONS=2" in events[0]["detail"]
        translated(first, 2), translated(second, 2)  # the open ones are untouched

        first.close()  # a client that leaves frees its slot
        replacement = accepted_within(limited, 5, stack)
        translated(second, 3)
        replacement.close()
        second.socket.close()  # one that vanishes (no close frame) frees it too
        accepted_within(limited, 5, stack).close()
    assert "mt_streams_open" in httpx.get(limited + "/metrics").text
    deadline = time.monotonic() + 5  # the server leaves the session just after the close handshake
    while gauges(limited)["active_sessions"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gauges(limited) == {"active_sessions": 0.0, "session_slots": 2.0}


def gauges(url: str) -> dict[str, float]:
    """`active_sessions` and `session_slots` on /metrics: the names asr shares (the cluster side reads them)."""
    lines = httpx.get(url + "/metrics").text.splitlines()
    return {line.split()[0]: float(line.split()[1]) for line in lines
            if line.startswith(("active_sessions ", "session_slots "))}
