"""Replicas behind the frontend, for real: two pocketsphinx asr servers (one stream each), WebSocket
echo servers standing in for moshi (one conversation each), and a frontend process that lists them
(docs/servers-frontend.md#replicas-behind-the-frontend). The choice itself: test_replicas.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from contextlib import contextmanager

import httpx
import pytest
import websockets

from duplex.asr_stream import read_pcm
from tests.support.asr_server import asr_server
from tests.support.envs import ensure_env
from tests.support.frontend import echo_servers, frontend
from tests.support.net import free_port

START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le"})
ONE_STREAM = {"ASR_BACKEND": "pocketsphinx", "ASR_STREAM_MAX_SESSIONS": "1"}


@pytest.fixture(scope="module")
def frontend_python():
    return ensure_env("frontend") / "bin" / "python"


def moshi_sessions(base: str) -> int:
    return sum(r["sessions"] for r in httpx.get(f"{base}/api/config").json()["replicas"]["moshi"])


def active_sessions(asr_url: str) -> float:
    """The `active_sessions` gauge on an asr server's /metrics (a contract with the cluster side)."""
    lines = httpx.get(f"{asr_url}/metrics", timeout=5).text.splitlines()
    values = {line.split()[0]: float(line.split()[1]) for line in lines if line and not line.startswith("#")}
    assert values["session_slots"] == 1.0, values
    return values["active_sessions"]


def eventually(check, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


async def closed(ws, timeout: float = 60) -> tuple[int, str, list]:
    """What the socket still brings until it closes: (close code, reason, messages)."""
    messages = []
    try:
        while True:
            messages.append(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.ConnectionClosed as end:
        return end.rcvd.code if end.rcvd else 1006, end.rcvd.reason if end.rcvd else "", messages


async def opened_stream(url: str):
    """A live /api/stream session, past asr's `ready` event."""
    ws = await websockets.connect(url)
    await ws.send(START)
    ready = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert ready["type"] == "ready", ready
    return ws


async def speak(ws, pcm: bytes) -> str:
    """Send the clip (faster than real time), stop, and return the text of the finals."""
    for at in range(0, len(pcm), 6400):
        await ws.send(pcm[at:at + 6400])
    await ws.send(json.dumps({"type": "stop"}))
    code, reason, messages = await closed(ws)
    assert code == 1000, (code, reason)
    events = [json.loads(m) for m in messages]
    return " ".join(e["text"] for e in events if e["type"] == "final")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    from tests.support.speech import synthesize
    pcm, rate = read_pcm(synthesize("hello world this is a test", tmp_path_factory.mktemp("clip") / "hello.wav"))
    assert rate == 16000
    return pcm


@contextmanager
def asr_pair(name: str):
    python = ensure_env("asr") / "bin" / "python"
    with asr_server(python, ONE_STREAM, name=f"{name}-a") as a, asr_server(python, ONE_STREAM, name=f"{name}-b") as b:
        yield a, b


@pytest.fixture(scope="module")
def two_asr():
    with asr_pair("replica-asr") as pair:
        yield pair


@pytest.fixture
def doomed_asr():
    """A pair of its own: the test kills one."""
    with asr_pair("replica-asr-doomed") as pair:
        yield pair


def test_streams_spread_over_the_asr_replicas_and_one_past_every_slot_is_refused_at_once(two_asr, frontend_python, clip):
    a, b = two_asr
    with frontend(frontend_python, "front-replicas-asr", ASR_URL=f"{a.url},{b.url}", ASR_SESSIONS="1") as base:
        stream = base.replace("http://", "ws://") + "/api/stream"

        async def scenario():
            first = await opened_stream(stream)
            assert (active_sessions(a.url), active_sessions(b.url)) == (1, 0)
            second = await opened_stream(stream)
            assert (active_sessions(a.url), active_sessions(b.url)) == (1, 1)
            replicas = httpx.get(f"{base}/health").json()["replicas"]["asr"]
            assert [(r["url"], r["sessions"], r["slots"]) for r in replicas] == [(a.url, 1, 1), (b.url, 1, 1)]

            started = time.monotonic()
            async with websockets.connect(stream) as third:
                code, reason, _ = await closed(third)
            assert code == 4429 and reason == "every asr replica is busy (2 of 2 sessions in use); try again shortly"
            assert time.monotonic() - started < 2

            heard = await speak(first, clip)
            assert {"hello", "world"} <= set(heard.split()), heard
            assert eventually(lambda: active_sessions(a.url) == 0)  # asr leaves it just after its close
            await second.close()
            assert eventually(lambda: not httpx.get(f"{base}/health").json()["replicas"]["asr"][1]["sessions"])
            return await speak(await opened_stream(stream), clip)  # a freed slot takes the next one

        assert "hello" in asyncio.run(scenario())
        assert [r["sessions"] for r in httpx.get(f"{base}/api/config").json()["replicas"]["asr"]] == [0, 0]


def test_a_replica_that_dies_ends_only_its_own_sessions_and_the_next_go_to_the_survivor(doomed_asr, frontend_python,
                                                                                       clip):
    a, b = doomed_asr
    with frontend(frontend_python, "front-replicas-death", ASR_URL=f"{a.url},{b.url}", ASR_SESSIONS="1") as base:
        stream = base.replace("http://", "ws://") + "/api/stream"
        wav = {"file": ("hello.wav", _wav(clip), "audio/wav")}
        for _ in range(2):  # one to each: the frontend then keeps a connection open to the one that dies
            assert httpx.post(f"{base}/api/transcribe", files=wav, timeout=60).status_code == 200

        async def scenario():
            on_a, on_b = await opened_stream(stream), await opened_stream(stream)
            assert (active_sessions(a.url), active_sessions(b.url)) == (1, 1)
            for session in (on_a, on_b):  # both mid-speech
                await session.send(clip[:len(clip) // 4 * 2])
            for pid in [a.proc.pid, *a.workers()]:
                os.kill(pid, signal.SIGKILL)
            code, reason, _ = await closed(on_a, timeout=20)
            assert (code, reason) == (1011, "asr closed the connection")
            assert "hello" in await speak(on_b, clip)  # the other replica's session goes on to its end
            down = httpx.get(f"{base}/health").json()["replicas"]["asr"]
            assert [(r["sessions"], r["down"]) for r in down] == [(0, True), (0, False)]
            survivor = await opened_stream(stream)
            assert active_sessions(b.url) == 1
            assert "hello" in await speak(survivor, clip)

        asyncio.run(scenario())
        # /api/transcribe: a dead replica costs a refused connection, never an error
        for _ in range(3):
            answer = httpx.post(f"{base}/api/transcribe", files=wav, timeout=60)
            assert answer.status_code == 200 and "hello" in answer.json()["text"], answer.text


def test_transcribe_takes_the_asr_replicas_in_turn(two_asr, frontend_python, clip):
    a, b = two_asr
    before = _transcribed(a.url), _transcribed(b.url)
    with frontend(frontend_python, "front-replicas-post", ASR_URL=f"{a.url},{b.url}") as base:
        wav = {"file": ("hello.wav", _wav(clip), "audio/wav")}
        for _ in range(4):
            assert httpx.post(f"{base}/api/transcribe", files=wav, timeout=60).status_code == 200
    assert (_transcribed(a.url) - before[0], _transcribed(b.url) - before[1]) == (2, 2)


def _transcribed(asr_url: str) -> float:
    text = httpx.get(f"{asr_url}/metrics", timeout=5).text
    return sum(float(line.split()[1]) for line in text.splitlines()
               if line.startswith("asr_requests_total{") and 'status="200"' in line)


def _wav(pcm: bytes) -> bytes:
    import io
    import wave
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(pcm)
    return out.getvalue()


def test_moshi_conversations_take_one_replica_each_skip_a_dead_one_and_a_third_is_told_at_once(frontend_python):
    dead = f"ws://127.0.0.1:{free_port()}/api/chat"
    with echo_servers(frontend_python, 2) as (one, two), \
            frontend(frontend_python, "front-replicas-moshi", MOSHI_WS_URL=f"{dead},{one},{two}") as base:
        chat = base.replace("http://", "ws://") + "/api/chat"

        async def talk(ws) -> str:
            assert await asyncio.wait_for(ws.recv(), 10) == b"\x00"
            who = (await asyncio.wait_for(ws.recv(), 10))[1:].decode()
            await ws.send(b"\x01ogg")
            assert await asyncio.wait_for(ws.recv(), 10) == b"\x01ogg"
            return who

        async def scenario():
            first = await websockets.connect(chat)
            second = await websockets.connect(chat)
            assert {await talk(first), await talk(second)} == {one.split(":")[2].split("/")[0],
                                                               two.split(":")[2].split("/")[0]}
            config = httpx.get(f"{base}/api/config").json()
            assert config["moshi_ws_url"] == dead and config["moshi_relay_path"] == "/api/chat"
            assert [(r["sessions"], r["down"]) for r in config["replicas"]["moshi"]] == [(0, True), (1, False), (1, False)]
            async with websockets.connect(chat) as third:
                code, reason, messages = await closed(third, timeout=10)
            assert (code, messages) == (4429, [])
            assert reason == "every moshi replica is busy (2 of 3 sessions in use, 1 unreachable); try again shortly"
            await first.close()
            assert eventually(lambda: moshi_sessions(base) == 1)  # the relay leaves it just after the close handshake
            again = await websockets.connect(chat)  # the freed conversation goes to the next page
            assert await talk(again)
            await again.close(), await second.close()

        asyncio.run(scenario())
