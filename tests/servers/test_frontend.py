"""The web frontend for real: uvicorn processes on free ports, a real ASR server, flite speech,
headless Chromium (file upload and a fake microphone), and a fake moshi WebSocket backend."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from servers.frontend.config import endpoints_from_env
from tests.support.browser import chromium, wait_for
from tests.support.envs import ensure_env
from tests.support.net import free_port, stop_process, wait_answer
from tests.support.speech import synthesize
from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / ".duplex" / "testdata"
PHRASE = "hello world this is a test"


# -- real processes ---------------------------------------------------------------------------

@contextmanager
def serve(python: Path, args: list[str], env: dict[str, str], health: str | None, name: str):
    """Run ``python args`` from the repo root; wait for ``health`` (a URL) to answer 200."""
    TESTDATA.mkdir(parents=True, exist_ok=True)
    log = (TESTDATA / f"{name}.log").open("w")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ASR_URL", "MOSHI_WS_URL", "MT_WS_URL") and not k.startswith("services__")
             and not k.endswith("_SESSIONS")}
    proc = subprocess.Popen([str(python), *args], cwd=ROOT, env={**clean, **env},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        if health:
            wait_answer(proc, health, name, time.monotonic() + 60, Path(log.name).read_text,
                        ready=lambda answer: answer.status_code == 200, timeout=1)
        yield proc
    finally:
        stop_process(proc, 10)
        log.close()


def uvicorn_app(python: Path, module: str, env: dict[str, str], name: str):
    port = free_port()
    args = ["-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port)]
    return port, serve(python, args, env, f"http://127.0.0.1:{port}/health", name)


@pytest.fixture(scope="session")
def frontend_python() -> Path:
    return ensure_env("frontend") / "bin" / "python"


@pytest.fixture(scope="session")
def speech_wav() -> Path:
    return synthesize(PHRASE, TESTDATA / "frontend-speech.wav")


@pytest.fixture(scope="module")
def asr_url() -> str:
    """A real ASR server (servers.asr.app, pocketsphinx backend) from its own env."""
    python = ensure_env("asr") / "bin" / "python"
    port, server = uvicorn_app(python, "servers.asr.app:app", {"ASR_BACKEND": "pocketsphinx"}, "frontend-test-asr")
    with server:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def start_frontend(frontend_python, request):
    """Start frontends with the given environment; each returns its base URL; stopped after the test."""
    started = itertools.count()
    with ExitStack() as stack:
        def start(**env: str) -> str:
            name = re.sub(r"[^\w-]", "_", f"frontend-{request.node.name}-{next(started)}")
            port, server = uvicorn_app(frontend_python, "servers.frontend.app:app", env, name)
            stack.enter_context(server)
            return f"http://127.0.0.1:{port}"

        yield start


FAKE_MOSHI = r'''
import asyncio, sys
from websockets.asyncio.server import serve

def crc_ok(page):
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    body = page[:22] + b"\0\0\0\0" + page[26:]
    crc = 0
    for b in body:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ b) & 0xFF]
    return crc == int.from_bytes(page[22:26], "little")

async def chat(ws):
    await ws.send(b"\x00")
    await ws.send(b"\x02" + "Hello from fake moshi.".encode())
    pages = []
    async for message in ws:
        if isinstance(message, bytes) and message[:1] == b"\x01":
            pages.append(message[1:])
            await ws.send(message)  # echo: the page must demux and decode Ogg Opus too
            if len(pages) == 10:
                ok = all(p[:4] == b"OggS" and crc_ok(p) for p in pages) and b"OpusHead" in pages[0]
                await ws.send(b"\x02" + (" Got ogg opus." if ok else " Bad ogg.").encode())

async def main():
    async with serve(chat, "127.0.0.1", int(sys.argv[1])):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
'''


@pytest.fixture(scope="module")
def fake_moshi(frontend_python) -> str:
    """A tiny moshi stand-in: handshake, one text frame, then it checks the Ogg pages it is sent."""
    port = free_port()
    script = TESTDATA / "fake_moshi.py"
    TESTDATA.mkdir(parents=True, exist_ok=True)
    script.write_text(FAKE_MOSHI)
    with serve(frontend_python, [str(script), str(port)], {}, None, "fake-moshi"):
        wait_for(lambda: _port_open(port), 20, "fake moshi to listen")
        yield f"ws://127.0.0.1:{port}/api/chat"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def browser(speech_wav):
    with chromium(fake_microphone=speech_wav) as driver:
        yield driver


def assert_heard(text: str) -> None:
    words = set(text.lower().split())
    assert {"hello", "world", "test"} <= words, f"transcript {text!r} misses words of {PHRASE!r}"


# -- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("env, asr, moshi", [
    ({}, None, None),
    ({"ASR_URL": "http://asr:8000/", "MOSHI_WS_URL": "ws://moshi:8998/api/chat"},
     "http://asr:8000", "ws://moshi:8998/api/chat"),
    ({"services__asr__http__0": "http://localhost:8000"}, "http://localhost:8000", None),
    ({"ASR_URL": "http://a:1", "services__asr__http__0": "http://b:2"}, "http://a:1", None),
    ({"ASR_URL": "  ", "MOSHI_WS_URL": ""}, None, None),
    ({"ASR_URL": "127.0.0.1:8000", "MOSHI_WS_URL": "moshi:8998/api/chat"},
     "http://127.0.0.1:8000", "ws://moshi:8998/api/chat"),
])
def test_endpoints_from_env(env, asr, moshi):
    endpoints = endpoints_from_env(env)
    assert (endpoints.asr_url, endpoints.moshi_ws_url) == (asr, moshi)


def test_health_and_config_without_endpoints(start_frontend):
    base = start_frontend()
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    config = httpx.get(f"{base}/api/config").json()
    assert config["asr_url"] is None and config["moshi_ws_url"] is None
    answer = httpx.post(f"{base}/api/transcribe", files={"file": ("a.wav", b"RIFF....", "audio/wav")})
    assert answer.status_code == 503 and answer.json()["error"] == "asr_not_configured"
    assert "ASR_URL" in answer.json()["detail"]


def test_config_with_endpoints_and_discovery_fallback(start_frontend):
    base = start_frontend(ASR_URL="http://127.0.0.1:9", MOSHI_WS_URL="ws://127.0.0.1:9/api/chat")
    config = httpx.get(f"{base}/api/config").json()
    assert config["asr_url"] == "http://127.0.0.1:9"
    assert config["moshi_ws_url"] == "ws://127.0.0.1:9/api/chat"
    assert httpx.get(f"{base}/health").json()["status"] == "ok"

    discovered = start_frontend(services__asr__http__0="http://127.0.0.1:9", services__asr__http__1="127.0.0.1:10")
    replica = {"sessions": 0, "slots": 8, "down": False}
    assert httpx.get(f"{discovered}/api/config").json() == {
        "asr_url": "http://127.0.0.1:9", "moshi_ws_url": None, "moshi_relay_path": None,
        "mt_ws_url": None, "translate_relay_path": None, "asr_stream_path": "/api/stream",
        "replicas": {"asr": [{"url": "http://127.0.0.1:9", **replica}, {"url": "http://127.0.0.1:10", **replica}],
                     "moshi": [], "mt": []}}


def test_transcribe_reports_asr_down_and_moshi_unreachable(start_frontend):
    base = start_frontend(ASR_URL=f"http://127.0.0.1:{free_port()}", MOSHI_WS_URL=f"ws://127.0.0.1:{free_port()}/api/chat")
    answer = httpx.post(f"{base}/api/transcribe", files={"file": ("a.wav", b"RIFF....", "audio/wav")})
    assert answer.status_code == 502
    assert answer.json()["error"] == "asr_unreachable" and "Is it running?" in answer.json()["detail"]

    async def relay_close_code() -> int:
        async with websockets.connect(base.replace("http", "ws") + "/api/chat") as ws:
            try:
                await asyncio.wait_for(ws.recv(), 20)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code
        return -1

    assert asyncio.run(relay_close_code()) == 4502


# -- the real ASR behind the proxy ------------------------------------------------------------------

def test_transcribe_proxies_to_real_asr(start_frontend, asr_url, speech_wav):
    base = start_frontend(ASR_URL=asr_url)
    answer = httpx.post(f"{base}/api/transcribe", timeout=60,
                        files={"file": (speech_wav.name, speech_wav.read_bytes(), "audio/wav")})
    assert answer.status_code == 200, answer.text
    assert_heard(answer.json()["text"])
    bad = httpx.post(f"{base}/api/transcribe", files={"file": ("x.wav", b"not audio at all", "audio/wav")})
    assert 400 <= bad.status_code < 500 and bad.json()["error"] == "asr_error", bad.text


# -- the pages in a real browser ---------------------------------------------------------------

def test_page_transcribes_an_uploaded_file(start_frontend, asr_url, speech_wav, browser):
    base = start_frontend(ASR_URL=asr_url)
    browser.get(base + "/")
    browser.find_element("id", "file").send_keys(str(speech_wav))
    text = wait_for(lambda: browser.find_element("id", "transcript").text, 60, "the transcript", browser)
    assert_heard(text)
    assert browser.find_element("id", "status").get_attribute("data-state") == "done"
    browser.save_screenshot(str(TESTDATA / "frontend-upload.png"))


def test_stream_relay_passes_events_and_close_codes(start_frontend, asr_url, speech_wav):
    """WS /api/stream: the asr server's events and its close codes reach the client unchanged."""
    from duplex.asr_stream import read_pcm, stream_pcm
    base = start_frontend(ASR_URL=asr_url).replace("http://", "ws://")
    pcm, rate = read_pcm(speech_wav)
    run = asyncio.run(stream_pcm(base + "/api/stream", pcm, rate))
    assert run.close_code == 1000 and run.events[0][1]["type"] == "ready" and run.events[-1][1]["type"] == "summary"
    assert run.of("partial") and run.of("final")
    assert_heard(run.text)
    refused = asyncio.run(stream_pcm(base + "/api/stream", pcm, rate, start={"type": "start", "sample_rate": 3}))
    assert refused.close_code == 4422 and refused.close_reason.startswith("bad_sample_rate")
    alone = asyncio.run(stream_pcm(start_frontend().replace("http://", "ws://") + "/api/stream", pcm, rate))
    assert alone.close_code == 4404 and alone.close_reason == "asr is not part of this run"


START = '{"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le"}'


@pytest.mark.parametrize("path", ["/api/stream", "/api/chat", "/api/translate"])
def test_a_page_of_another_origin_cannot_open_a_relay(start_frontend, asr_url, fake_moshi, path):
    """Refused with 403 before the handshake, so the backend is never reached (was: every origin,
    `null` too, was relayed)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    base = start_frontend(ASR_URL=asr_url, MOSHI_WS_URL=fake_moshi, MT_WS_URL="ws://127.0.0.1:9/ws/translate")
    other = f"http://127.0.0.1:{free_port()}"
    for origin in ("http://evil.example", "null", other, base + ".evil.example", base.replace("127.0.0.1", "evil.example")):
        with pytest.raises(InvalidStatus) as refused:
            connect(base.replace("http://", "ws://") + path, additional_headers={"Origin": origin}, open_timeout=10)
        assert refused.value.response.status_code == 403, origin
        assert b"forbidden_origin" in refused.value.response.body


def test_the_frontends_own_origin_listed_ones_and_clients_without_one_use_the_relay(start_frontend, asr_url):
    from websockets.sync.client import connect
    base = start_frontend(ASR_URL=asr_url, DUPLEX_ALLOWED_ORIGINS="https://speech.example.com")
    port = base.rsplit(":", 1)[1]
    for origin in (None, base, f"http://localhost:{port}", f"https://127.0.0.1:{port}", "https://speech.example.com"):
        with connect(base.replace("http://", "ws://") + "/api/stream", open_timeout=10,
                     additional_headers={"Origin": origin} if origin else {}) as ws:
            ws.send(START)
            ws.send('{"type": "stop"}')
            events = [json.loads(m) for m in ws]
        assert ws.close_code == 1000 and events[-1]["type"] == "summary", (origin, events)


ATTACKER = """<!doctype html><script>
const ws = new WebSocket(new URLSearchParams(location.search).get("target"));
ws.onopen = () => { document.title = "open"; ws.send('%s'); };
ws.onclose = (e) => { if (document.title !== "open") document.title = "refused " + e.code; };
</script>""" % START


def test_a_page_on_another_origin_in_chromium_cannot_stream(start_frontend, asr_url, browser, tmp_path):
    """The attack for real: a page served from another port opens the frontend's stream relay."""
    import functools
    import http.server
    import threading
    (tmp_path / "attack.html").write_text(ATTACKER)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = start_frontend(ASR_URL=asr_url).replace("http://", "ws://") + "/api/stream"
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/attack.html?target={target}")
        title = wait_for(lambda: browser.title if browser.title else None, 15, "the WebSocket to settle", browser)
        assert title == "refused 1006", title  # a refused handshake is 1006 to a page
    finally:
        server.shutdown()


def test_page_transcribes_the_microphone_live(start_frontend, asr_url, speech_wav, browser):
    """The fake microphone plays the phrase: partials while it is spoken, then the final, then Stop."""
    base = start_frontend(ASR_URL=asr_url)
    browser.get(base + "/")
    browser.find_element("id", "record").click()
    wait_for(lambda: browser.find_element("id", "status").get_attribute("data-state") == "recording",
             10, "recording to start", browser)
    transcript = lambda cls: browser.execute_script(  # noqa: E731
        f"return [...document.querySelectorAll('#transcript .{cls}')].map(e => e.textContent).join(' ').trim()")
    first = wait_for(lambda: transcript("partial"), 30, "a partial while the phrase is spoken", browser)
    assert not transcript("final"), "a final came before any partial"
    text = wait_for(lambda: transcript("final"), 30, "the final once the phrase ends", browser)
    browser.save_screenshot(str(TESTDATA / "frontend-microphone.png"))
    browser.find_element("id", "stop").click()
    wait_for(lambda: browser.find_element("id", "status").get_attribute("data-state") == "done", 20,
             "the stream's summary", browser)
    assert_heard(text)
    assert first and int(browser.find_element("id", "transcript").get_attribute("data-partials")) >= 2


def test_chat_page_says_when_moshi_is_absent(start_frontend, browser):
    base = start_frontend()
    browser.get(base + "/chat")
    status = wait_for(lambda: "moshi is not part of this run" in browser.find_element("id", "chat-status").text,
                      10, "the no-moshi notice", browser)
    assert status and not browser.find_element("id", "connect").is_enabled()
    browser.save_screenshot(str(TESTDATA / "frontend-chat-absent.png"))


def test_the_pages_say_when_every_session_is_taken(start_frontend, fake_moshi, asr_url, browser):
    """A replica's every slot taken (one replica each, one session each): the relay closes the next
    session with 4429 at once, and the translate, chat and transcribe pages show its reason."""
    from websockets.sync.client import connect
    base = start_frontend(MOSHI_WS_URL=fake_moshi, ASR_URL=asr_url, ASR_SESSIONS="1",
                          MT_WS_URL=fake_moshi, MT_SESSIONS="1")  # any WebSocket holds mt's one slot
    relay = base.replace("http://", "ws://")
    with connect(relay + "/api/chat") as held, connect(relay + "/api/stream") as stream, \
            connect(relay + "/api/translate") as translating:
        assert held.recv(timeout=10) == b"\x00" and translating.recv(timeout=10) == b"\x00"
        stream.send(START)
        assert json.loads(stream.recv(timeout=10))["type"] == "ready"
        browser.get(base + "/translate")
        error = wait_for(lambda: browser.find_element("id", "error").text, 10, "the busy notice", browser)
        assert error == "The translator is full: mt is busy (1 of 1 sessions in use); try again shortly (reload the page)."
        browser.get(base + "/chat")
        wait_for(lambda: browser.find_element("id", "connect").is_enabled(), 10, "the config", browser)
        browser.find_element("id", "connect").click()
        error = wait_for(lambda: browser.find_element("id", "chat-error").text, 10, "the busy notice", browser)
        assert error == "moshi is busy (1 of 1 sessions in use); try again shortly."
        assert "busy" in browser.find_element("id", "chat-status").text
        browser.get(base + "/")
        browser.find_element("id", "record").click()
        error = wait_for(lambda: browser.find_element("id", "error").text, 10, "the busy notice", browser)
        assert error == "The stream ended: asr is busy (1 of 1 sessions in use); try again shortly"


@pytest.mark.parametrize("query", ["", "?direct=1"], ids=["relay", "direct"])
def test_chat_page_talks_to_moshi(start_frontend, fake_moshi, browser, query):
    base = start_frontend(MOSHI_WS_URL=fake_moshi)
    browser.get(base + "/chat" + query)
    wait_for(lambda: browser.find_element("id", "connect").is_enabled(), 10, "the config", browser)
    browser.find_element("id", "connect").click()
    find = browser.find_element
    wait_for(lambda: find("id", "chat-status").text == "connected", 10, "the handshake", browser)
    wait_for(lambda: "Hello from fake moshi." in find("id", "chat-text").text, 10, "the text frame", browser)
    # The fake microphone streams through WebCodecs Opus in Ogg pages; the fake server checks them.
    wait_for(lambda: "Got ogg opus." in find("id", "chat-text").text, 20, "moshi to accept our audio", browser)
    decoded = wait_for(lambda: int(find("id", "audio-in").get_attribute("data-decoded") or 0) > 20,
                       10, "the echoed audio to be decoded and played", browser)
    assert decoded and find("id", "chat-error").text == ""
    assert not [e for e in browser.get_log("browser") if "opus" in e["message"] and e["level"] == "SEVERE"]
    browser.save_screenshot(str(TESTDATA / "frontend-chat.png"))
    find("id", "disconnect").click()
    wait_for(lambda: find("id", "chat-status").text.startswith("disconnected"), 10, "the close", browser)


# -- the container image -----------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.slow
def test_container_image_serves_the_frontend():
    """Build dockerfiles/frontend.Dockerfile from the repo root (as duplex does) and run it."""
    ca = ROOT / ".duplex" / "build" / "ca.pem"
    if not ca.exists():  # duplex writes it before each build; an empty file means "no extra CA"
        ca.parent.mkdir(parents=True, exist_ok=True)
        bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
        ca.write_bytes(bundle.read_bytes() if bundle.exists() else b"")
    tag = "duplex/frontend:test"
    base = os.environ.get("DUPLEX_BASE_IMAGE")  # the suite's base (tests/conftest.py), else the Dockerfile's
    build = subprocess.run([tool("docker"), "build", "-q", "-f", "dockerfiles/frontend.Dockerfile", "-t", tag,
                            *(["--build-arg", f"BASE_IMAGE={base}"] if base else []), "."],
                           cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr
    port, name = free_port(), f"duplex-frontend-test-{os.getpid()}"
    run = subprocess.run([tool("docker"), "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8010",
                          "-e", "MOSHI_WS_URL=ws://moshi:8998/api/chat", tag], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/health"), 30, "the container's /health")
        assert httpx.get(f"{base}/api/config").json()["moshi_ws_url"] == "ws://moshi:8998/api/chat"
        assert "Transcribe" in httpx.get(f"{base}/").text
        assert httpx.post(f"{base}/api/transcribe", files={"file": ("a.wav", b"x")}).status_code == 503
        user = subprocess.run([tool("docker"), "exec", name, "id", "-un"], capture_output=True, text=True, check=False).stdout.strip()
        assert user == "duplex"
    finally:
        subprocess.run([tool("docker"), "rm", "-f", name], capture_output=True, check=False)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- one error shape (issue 18, family 7) -------------------------------------------------------

BAD_REQUESTS = [  # (method, path, request keywords, status, error code)
    ("POST", "/api/transcribe", {}, 400, "bad_request"),  # no body at all
    ("POST", "/api/transcribe", {"json": {"file": "a.wav"}}, 400, "bad_request"),  # not multipart
    ("POST", "/api/transcribe", {"data": {"audio": "x"}, "files": {"other": ("a.wav", b"RIFF")}}, 400, "missing_file"),
    ("POST", "/api/transcribe", {"content": b"--xyz\r\nbroken", "headers": {
        "content-type": "multipart/form-data; boundary=xyz"}}, 400, "missing_file"),  # cut-off framing: no file
    ("POST", "/api/transcribe", {"content": b"garbage", "headers": {
        "content-type": "multipart/form-data"}}, 400, "bad_request"),  # no boundary: not parseable
    ("POST", "/api/transcribe", {"files": {"file": ("a.wav", b"")}}, 400, "empty"),
    ("GET", "/api/transcribe", {}, 405, "method_not_allowed"),
    ("GET", "/no/such/page", {}, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), BAD_REQUESTS)
def test_every_refusal_of_the_frontend_has_the_documented_shape(start_frontend, method, path, kwargs, status, code):
    base = start_frontend(ASR_URL=f"http://127.0.0.1:{free_port()}")
    answer = httpx.request(method, base + path, timeout=10, **kwargs)
    assert answer.status_code == status, answer.text  # was: FastAPI's 422 {"detail": [...]}
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["error"] == code and isinstance(body["detail"], str), body


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [
    ("POST", "/transcribe", {"json": {}}, 400, "bad_request"),
    ("POST", "/transcribe", {"files": {"other": ("a.wav", b"RIFF")}}, 400, "missing_file"),
    ("GET", "/transcribe", {}, 405, "method_not_allowed"),
    ("GET", "/nope", {}, 404, "not_found"),
])
def test_the_asr_server_answers_in_the_same_shape(asr_url, method, path, kwargs, status, code):
    answer = httpx.request(method, asr_url + path, timeout=10, **kwargs)
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "detail"} and answer.json()["error"] == code, answer.text


def _usage_mib_on(port: int) -> tuple[int, int]:
    """(resident memory, bytes written to files so far) of the process listening on `port`, in MiB."""
    import psutil
    pid = next(c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN")
    process = psutil.Process(pid)
    return process.memory_info().rss // 2**20, process.io_counters().write_chars // 2**20


def _multipart(size: int):
    """A multipart upload of `size` bytes of audio, streamed chunked (no Content-Length)."""
    yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    for _ in range(size // 2**20):
        yield b"\0" * 2**20
    yield b"\r\n--xyz--\r\n"


@pytest.mark.parametrize("server", ["frontend", "asr"])
def test_an_upload_over_the_limit_is_refused_before_it_is_read(start_frontend, asr_url, server):
    """A chunked upload past the limit (the frontend's 100 MiB, asr's 50 MiB) is 413 as soon as it
    passes it: no more than the limit spooled to disk, memory flat (was: the whole body spooled to a
    temporary file, 160 of 160 MiB, then 413)."""
    base = start_frontend() if server == "frontend" else asr_url
    path, size, limit = ("/api/transcribe", 160, 100) if server == "frontend" else ("/transcribe", 80, 50)
    port = int(base.rsplit(":", 1)[1])
    rss, written = _usage_mib_on(port)
    answer = httpx.post(base + path, content=_multipart(size * 2**20), timeout=120,
                        headers={"content-type": "multipart/form-data; boundary=xyz"})
    rss_after, written_after = _usage_mib_on(port)
    assert written_after - written <= limit + 1, f"{written_after - written} of {size} MiB spooled to disk"
    assert rss_after - rss < 40, f"{rss_after - rss} MiB more after the upload"
    assert answer.status_code == 413 and "too_large" in answer.json()["error"], answer.text
    assert "limit" in answer.json()["detail"]
