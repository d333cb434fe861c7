"""WS /stream for real: uvicorn from the asr env, flite speech sent at real time, every limit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from duplex.asr_stream import latency_figures, read_pcm, speech_spans, stream_pcm
from tests.support.asr_server import asr_server
from tests.support.envs import ensure_env
from tests.support.speech import PHRASES, concatenate, synthesize, word_error_rate, words

pytestmark = pytest.mark.slow
MAX_STREAM_S, IDLE_S, MAX_STREAMS = 20, 2, 8


PASSAGE = " ".join(PHRASES)


@pytest.fixture(scope="module")
def sphinx(asr_python):
    env = {"ASR_BACKEND": "pocketsphinx", "ASR_WORKERS": "2", "ASR_STREAM_MAX_SECONDS": str(MAX_STREAM_S),
           "ASR_STREAM_IDLE_SECONDS": str(IDLE_S), "ASR_STREAM_MAX_SESSIONS": str(MAX_STREAMS)}
    with asr_server(asr_python, env, name="test-asr-stream") as server:
        yield server


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/stream"


def stream(server, path: Path, **kw):
    pcm, rate = read_pcm(path)
    return asyncio.run(stream_pcm(ws_url(server), pcm, rate, **kw))


def assert_well_formed(run) -> None:
    """ready first, summary last, finals in order of the audio, every final after partials of it."""
    kinds = [e["type"] for _, e in run.events]
    assert kinds[0] == "ready" and kinds[-1] == "summary", kinds
    assert run.close_code == 1000, (run.close_code, run.close_reason)
    finals = [e for _, e in run.of("final")]
    assert all(a["end"] <= b["start"] + 0.01 for a, b in zip(finals, finals[1:], strict=False)), finals
    assert all(f["start"] < f["end"] and f["text"] for f in finals)


def test_a_passage_streamed_at_real_time_gets_partials_then_finals_as_good_as_batch(sphinx, speech):
    run = stream(sphinx, speech["passage"])
    assert_well_formed(run)
    batch = " ".join(sphinx.transcribe(speech[f"phrase{i}"]).json()["text"] for i in range(4))
    # one final per phrase (the pauses close utterances), each preceded by partials
    assert len(run.of("final")) == 4, run.events
    assert word_error_rate(PASSAGE, run.text) <= word_error_rate(PASSAGE, batch) + 0.02, (run.text, batch)
    summary = run.events[-1][1]
    assert summary["finals"] == 4 and summary["partials"] >= 8
    assert abs(summary["audio_s"] - run.audio_s) < 0.05 and summary["final_lag_s"]["p50"] > 0
    # each phrase's final came after that phrase was spoken, and partials while it was spoken
    # (how soon: benchmarks/stream_latency.py; timing is not asserted in tests)
    pcm, rate = read_pcm(speech["passage"])
    figures = latency_figures([(run, speech_spans(pcm, rate))])
    assert figures["end_to_final_s"]["n"] == 4 and figures["onset_to_partial_s"]["n"] == 4, figures


def test_a_client_faster_than_real_time_is_decoded_as_fast_as_possible(sphinx, speech):
    realtime_s = read_pcm(speech["passage"])[0].__len__() / 32000
    started = time.monotonic()
    run = stream(sphinx, speech["passage"], realtime=False)
    assert_well_formed(run)
    assert time.monotonic() - started < realtime_s  # not paced to the audio clock
    assert word_error_rate(PASSAGE, run.text) <= 0.2, run.text


def test_other_sample_rates_are_resampled(sphinx, speech):
    run = stream(sphinx, speech["44k"])
    assert_well_formed(run)
    assert run.events[0][1]["input_sample_rate"] == 44100 and run.events[0][1]["sample_rate"] == 16000
    assert word_error_rate(PHRASES[2], run.text) <= 0.25, run.text


def test_eight_concurrent_real_time_streams_keep_up_and_a_ninth_is_refused(sphinx, speech):
    pcm, rate = read_pcm(speech["phrase0"])

    async def together():
        streams = [asyncio.create_task(stream_pcm(ws_url(sphinx), pcm, rate)) for _ in range(MAX_STREAMS)]
        await asyncio.sleep(1.5)  # all eight open (the phrase lasts 2.9 s)
        extra = await stream_pcm(ws_url(sphinx), pcm[:32000], rate)
        batch = await asyncio.to_thread(sphinx.transcribe, speech["phrase1"])  # batch still served
        return await asyncio.gather(*streams), extra, batch

    runs, extra, batch = asyncio.run(together())
    assert extra.close_code == 4429 and "ASR_STREAM_MAX_SESSIONS=8" in extra.close_reason
    assert extra.events[-1][1]["code"] == "too_many_streams"
    assert batch.status_code == 200 and word_error_rate(PHRASES[1], batch.json()["text"]) <= 0.25
    speech_end = speech_spans(pcm, rate)[-1][1]
    for run in runs:
        assert_well_formed(run)
        assert word_error_rate(PHRASES[0], run.text) <= 0.2, run.text
        assert len(run.of("final")) == 1
        # kept up: the final came within seconds of the speech's end, not after a queue of others'
        # audio (a generous functional bound; the figure is benchmarks/stream_latency.py --streams)
        assert run.of("final")[0][0] - speech_end < 5.0, (run.of("final"), speech_end)


def test_the_stream_workers_start_with_the_model_not_the_first_stream(asr_python):
    env = {"ASR_BACKEND": "pocketsphinx", "ASR_WORKERS": "1"}
    with asr_server(asr_python, env, name="test-asr-stream-workers") as server:
        # ready: the batch pool's worker and the stream worker are both up (ASR_WORKERS=1 each),
        # named so that `ps` tells them apart
        names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in worker_cpu(server))
        assert names == ["asr-batch", "asr-stream"], server.output()


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, Path]:
    """Two phrases in three voices (a man, another man, a woman): the ordered pairs of these made
    one session's transcript depend on the voice of the session before (issue 33)."""
    d = tmp_path_factory.mktemp("voices")
    texts = {"rain": "it is going to rain this afternoon", "books": "she put the books back on the shelf"}
    return {f"{name}-{voice}": synthesize(text, d / f"{name}-{voice}.wav", voice=voice)
            for name, text in texts.items() for voice in ("awb", "rms", "slt")}


def test_one_users_stream_does_not_change_the_next_users_transcript(asr_python, voices):
    """Every session starts from the model's own state: the same audio gets the same transcript
    whichever voice spoke before it on the same worker (ASR_WORKERS=1: every session there)."""
    env = {"ASR_BACKEND": "pocketsphinx", "ASR_WORKERS": "1"}
    heard: dict[str, set[str]] = {name: set() for name in voices}
    with asr_server(asr_python, env, name="test-asr-stream-sessions") as server:
        for before in voices:
            for after in voices:
                stream(server, voices[before], realtime=False)
                heard[after].add(stream(server, voices[after], realtime=False).text)
    assert all(len(texts) == 1 for texts in heard.values()), heard


def raw_session(server, *messages, read_timeout: float = 10):
    """Send messages (str or bytes), return (close code, reason, events) as the server ended it."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    events = []
    with connect(ws_url(server), open_timeout=10) as ws:
        try:
            for m in messages:
                ws.send(m)
        except ConnectionClosed:
            pass  # refused before the client finished: the events and code say why
        try:
            while True:
                msg = ws.recv(timeout=read_timeout)
                events.append(json.loads(msg))
        except Exception:  # noqa: BLE001 - closed: the close code is what the test checks
            pass
        return ws.close_code, ws.close_reason, events


START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le"})


@pytest.mark.parametrize("messages, code, name", [
    (["not json"], 4400, "bad_message"),
    ([b"\x00\x01" * 100], 4400, "bad_message"),                                  # audio before start
    ([json.dumps({"type": "hello"})], 4400, "bad_message"),
    ([START, b"\x00" * 3], 4400, "bad_message"),                                   # half a sample
    ([START, START], 4400, "bad_message"),
    ([json.dumps({"type": "start", "sample_rate": 16000, "encoding": "opus"})], 4415, "unsupported_encoding"),
    ([json.dumps({"type": "start", "sample_rate": 1000})], 4422, "bad_sample_rate"),
    ([json.dumps({"type": "start", "sample_rate": "16k"})], 4422, "bad_sample_rate"),
    # nested past the parser's depth (was: 1011 backend_failure, RecursionError), or oversized
    (['{"type": "start", "x": ' + "[" * 2000 + "]" * 2000 + "}"], 4400, "bad_message"),
    ([START, '{"type": "stop", "x": ' + "[" * 2000 + "]" * 2000 + "}"], 4400, "bad_message"),
    ([json.dumps({"type": "start", "sample_rate": 16000, "pad": "x" * 5000})], 4400, "bad_message"),
])
def test_malformed_sessions_are_closed_with_their_code(sphinx, messages, code, name):
    close_code, reason, events = raw_session(sphinx, *messages)
    assert (close_code, events[-1]["code"]) == (code, name), (close_code, reason, events)
    assert reason.startswith(name) and events[-1]["detail"]


def sessions_ended(server, close_code: int) -> float:
    """asr_stream_sessions_total for one close code."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in httpx.get(f"{server.url}/metrics").text.splitlines()
               if line.startswith("asr_stream_sessions_total{") and f'close_code="{close_code}"' in line)


def test_a_nested_message_is_not_counted_as_a_backend_failure(sphinx):
    failed, refused = sessions_ended(sphinx, 1011), sessions_ended(sphinx, 4400)
    raw_session(sphinx, '{"type": "start", "x": ' + "[" * 2000 + "]" * 2000 + "}")
    assert (sessions_ended(sphinx, 1011), sessions_ended(sphinx, 4400)) == (failed, refused + 1)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://127.0.0.1.evil.example",
                                    "http://127.0.0.1:1", "file://"])
def test_a_page_of_another_origin_cannot_open_a_stream(sphinx, origin):
    """A browser sends Origin on every WebSocket handshake: another site's page is refused with 403
    before the handshake (no session, no slot), in the servers' JSON error shape."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(sphinx), additional_headers={"Origin": origin}, open_timeout=10)
    assert refused.value.response.status_code == 403
    body = json.loads(refused.value.response.body)
    assert body["error"] == "forbidden_origin" and "DUPLEX_ALLOWED_ORIGINS" in body["detail"], body


def test_the_servers_own_origin_and_clients_without_one_may_stream(sphinx):
    from websockets.sync.client import connect
    port = sphinx.url.rsplit(":", 1)[1]
    for headers in ({}, {"Origin": sphinx.url}, {"Origin": f"http://localhost:{port}"}):
        with connect(ws_url(sphinx), additional_headers=headers, open_timeout=10) as ws:
            ws.send(START)
            ws.send(json.dumps({"type": "stop"}))
            events = [json.loads(m) for m in ws]
        assert ws.close_code == 1000 and events[-1]["type"] == "summary", (headers, events)


@pytest.fixture(scope="module")
def strict(asr_python):
    """A server with short pace and wall-time limits (and one listed origin)."""
    env = {"ASR_BACKEND": "pocketsphinx", "ASR_WORKERS": "1", "ASR_STREAM_IDLE_SECONDS": "2",
           "ASR_STREAM_MAX_LAG_SECONDS": "3", "ASR_STREAM_MAX_WALL_SECONDS": "6",
           "DUPLEX_ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000"}
    with asr_server(asr_python, env, name="test-asr-stream-strict") as server:
        yield server


def test_a_trickling_client_is_closed_as_stalled_and_its_slot_freed(strict):
    """Two bytes every second keep the idle timeout (2 s) away; the audio falls a second behind real
    time each second, and past ASR_STREAM_MAX_LAG_SECONDS (3 s) the session ends as stalled."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    started = time.monotonic()
    with connect(ws_url(strict), open_timeout=10) as ws:
        ws.send(START)
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        events = []
        try:
            while time.monotonic() - started < 20:
                ws.send(b"\0\0")
                time.sleep(1)
        except ConnectionClosed:
            pass
        try:
            while True:
                events.append(json.loads(ws.recv(timeout=5)))
        except ConnectionClosed:
            pass
    assert ws.close_code == 4409 and events[-1]["code"] == "stalled", (ws.close_code, ws.close_reason, events)
    assert "ASR_STREAM_MAX_LAG_SECONDS" in ws.close_reason and time.monotonic() - started < 12
    assert_no_stream_open(strict)


def test_a_stream_longer_than_the_wall_time_limit_is_closed(strict, speech):
    run = stream(strict, speech["passage"])  # 12.6 s at real time, the wall-time limit 6 s
    assert run.close_code == 4413 and "ASR_STREAM_MAX_WALL_SECONDS" in run.close_reason, run.close_reason
    assert run.events[0][1]["limits"]["max_wall_seconds"] == 6 and 5 < run.events[-1][0] < 9
    assert_no_stream_open(strict)


def test_a_listed_origin_may_stream(strict):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    for origin in ("https://app.example.com", "http://LOCALHOST:3000"):
        with connect(ws_url(strict), additional_headers={"Origin": origin}, open_timeout=10) as ws:
            ws.send(START)
            ws.send(json.dumps({"type": "stop"}))
            assert [json.loads(m) for m in ws][-1]["type"] == "summary"
    with pytest.raises(InvalidStatus):
        connect(ws_url(strict), additional_headers={"Origin": "http://app.example.com"}, open_timeout=10)


def test_a_stalled_client_is_closed_and_its_session_freed(sphinx, speech):
    pcm, _ = read_pcm(speech["phrase0"])
    started = time.monotonic()
    code, reason, events = raw_session(sphinx, START, pcm[:16000], read_timeout=IDLE_S + 8)
    assert code == 4408 and "ASR_STREAM_IDLE_SECONDS" in reason, (code, reason)
    assert IDLE_S <= time.monotonic() - started < IDLE_S + 5
    assert_no_stream_open(sphinx)


def test_a_stream_over_the_length_limit_gets_its_finals_then_is_closed(sphinx, speech):
    run = stream(sphinx, speech["long"], realtime=False)  # ~29 s > 20 s
    assert run.close_code == 4413 and "ASR_STREAM_MAX_SECONDS" in run.close_reason
    assert len(run.of("final")) >= 4  # what came before the limit was decoded and sent
    assert all(e["end"] <= MAX_STREAM_S + 0.01 for _, e in run.of("final"))


def test_a_vanished_client_frees_its_session_and_others_carry_on(sphinx, speech):
    pcm, _ = read_pcm(speech["phrase0"])
    sock = socket.create_connection(("127.0.0.1", int(sphinx.url.rsplit(":", 1)[1])))
    from websockets.sync.client import connect
    with connect(ws_url(sphinx), sock=sock, close_timeout=0.1) as ws:
        ws.send(START)
        ws.send(pcm[:32000])
        ws.recv(timeout=10)  # ready
        sock.shutdown(socket.SHUT_RDWR)  # gone without a close frame, as a crashed tab or lost network
    assert_no_stream_open(sphinx)
    run = stream(sphinx, speech["phrase1"], realtime=False)
    assert_well_formed(run)
    assert word_error_rate(PHRASES[1], run.text) <= 0.25, run.text


def test_a_killed_stream_worker_fails_its_session_only(sphinx, speech):
    pcm, rate = read_pcm(speech["passage"])

    async def killed():
        before = worker_cpu(sphinx)
        task = asyncio.create_task(stream_pcm(ws_url(sphinx), pcm, rate))
        await asyncio.sleep(1.5)
        busy = [pid for pid, cpu in worker_cpu(sphinx).items() if cpu > before.get(pid, 0)]
        assert busy, "no worker decoded the stream"
        for pid in busy:  # the stream's worker (the batch pool's sit idle)
            os.kill(pid, signal.SIGKILL)
        return await task

    run = asyncio.run(killed())
    assert run.close_code == 1011 and run.events[-1][1]["code"] == "backend_failure", run.close_reason
    again = stream(sphinx, speech["phrase3"], realtime=False)  # a fresh worker serves the next stream
    assert_well_formed(again)
    assert word_error_rate(PHRASES[3], again.text) <= 0.25, again.text
    assert sphinx.transcribe(speech["phrase3"]).status_code == 200


def worker_cpu(server) -> dict[int, int]:
    """CPU ticks so far of each spawned worker (the stream workers and the batch pool's)."""
    ticks = {}
    for pid in server.workers():
        try:
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks[pid] = int(fields[11]) + int(fields[12])
        except OSError:
            continue  # gone
    return ticks


def assert_no_stream_open(server, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        metrics = httpx.get(f"{server.url}/metrics").text
        line = next(l for l in metrics.splitlines() if l.startswith("asr_streams_open"))
        if line.endswith(" 0.0"):
            return
        assert time.monotonic() < deadline, line
        time.sleep(0.1)


def test_a_backend_that_is_not_ready_says_so(asr_python, tmp_path):
    env = {"ASR_BACKEND": "whisper", "ASR_MODEL": str(tmp_path / "no-model")}
    with asr_server(asr_python, env, name="test-asr-stream-notready", ready=False) as server:
        code, reason, events = raw_session(server, START)
    assert code == 4503 and events[-1]["code"] == "not_ready", (code, reason)


# -- faster-whisper: LocalAgreement-2 commits, VAD closes utterances ------------------------------

@pytest.fixture(scope="module")
def whisper(asr_python):
    from tests.support.whisper_model import whisper_base_dir
    env = {"ASR_BACKEND": "whisper", "ASR_MODEL": str(whisper_base_dir()), "ASR_WORKERS": "1"}
    with asr_server(asr_python, env, name="test-asr-stream-whisper") as server:
        yield server


def test_whisper_streams_finals_as_good_as_batch(whisper, speech, tmp_path):
    two = concatenate([speech["phrase0"], speech["phrase1"]], tmp_path / "two.wav", gap_s=0.8)
    reference = f"{PHRASES[0]} {PHRASES[1]}"
    pcm, rate = read_pcm(two)
    run = asyncio.run(stream_pcm(ws_url(whisper), pcm, rate, timeout=240,
                                 start={"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", "language": "en"}))
    assert_well_formed(run)
    assert run.events[0][1]["mode"] == "local-agreement"
    batch = " ".join(whisper.transcribe(speech[f"phrase{i}"]).json()["text"] for i in range(2))
    assert word_error_rate(reference, run.text) <= word_error_rate(reference, batch) + 0.05, (run.text, batch)
    finals = [e for _, e in run.of("final")]
    assert finals[-1]["end"] > 3.5 and finals[0]["start"] < 1.0  # both phrases, times in the audio


def test_smoke_latency_replays_speech_through_the_stream(sphinx):
    from duplex.plan import Health
    from duplex.run.smoke import smoke
    from duplex.run.smoke_apps import ASR_APP
    from duplex.run.smoke_results import Target
    target = Target("asr", "native", sphinx.url, Health("http", sphinx.url + "/health", 5.0), ASR_APP)
    report = smoke([target], latency=True)
    row = next(r for r in report.results if r.check == "latency")
    assert row.status == "pass", row
    assert row.detail["finals"] == row.detail["spans"] == 3 and row.detail["backend"] == "pocketsphinx"
    assert row.detail["end_to_final_s"]["n"] == 3 and "after end of speech" in row.reason


# -- NeMo: chunked re-decoding of VAD utterances (the tiny untrained FastConformer-CTC) -------------

def test_nemo_streams_in_chunks(asr_python, speech):
    """The tiny model is untrained (its text is noise): what is tested is the session's shape, that
    each utterance is decoded (partials while it grows, a final when it ends) and the limits hold."""
    from tests.support.tiny_models import NEMO_FILES, tiny_nemo
    from tests.support.whisper_model import TESTDATA
    model = tiny_nemo(TESTDATA / "tiny-nemo") / NEMO_FILES[0]
    python = ensure_env("asr-nemo") / "bin" / "python"
    env = {"ASR_BACKEND": "nemo", "ASR_MODEL": str(model.parent), "ASR_DEVICE": "cpu", "ASR_STREAM_MAX_SESSIONS": "1"}
    with asr_server(python, env, name="test-asr-stream-nemo", timeout=300) as server:
        pcm, rate = read_pcm(speech["passage"])

        async def two():
            first = asyncio.create_task(stream_pcm(ws_url(server), pcm, rate))
            await asyncio.sleep(1)
            return await stream_pcm(ws_url(server), pcm[:3200], rate), await first

        refused, run = asyncio.run(two())
    assert refused.close_code == 4429
    assert_well_formed(run)
    assert run.events[0][1]["mode"] == "chunked" and run.events[0][1]["backend"] == "nemo"
    # one final per phrase, each around its phrase; partials while the phrases grew
    spans = speech_spans(pcm, rate)
    finals = [e for _, e in run.of("final")]
    assert len(finals) == len(spans) == 4 and run.of("partial"), run.events
    assert all(f["start"] - 0.5 < a < b < f["end"] + 0.5
               for f, (a, b) in zip(finals, spans, strict=True)), (finals, spans)
    assert abs(run.events[-1][1]["audio_s"] - run.audio_s) < 0.05
    assert "Traceback" not in server.output()


def test_whisper_finals_never_decode_the_same_audio_twice(whisper, tmp_path):
    """A phrase the endpointer splits at its 0.1 s pause ("...last summer. it was hot" in flite's slt
    voice), then two phrases 0.3 s apart. Each utterance used to decode from 0.2 s before its start,
    back into audio the last utterance's closing decode had read: its final said the last word again
    ("...last summer." then "Summer, it was hot.") and began before the last one ended."""
    texts = ("we went to spain last summer. it was hot", PHRASES[1], PHRASES[3])
    clips = [synthesize(t, tmp_path / f"slt{i}.wav", voice="slt") for i, t in enumerate(texts)]
    pcm, rate = read_pcm(concatenate(clips, tmp_path / "close.wav", gap_s=0.3))
    run = asyncio.run(stream_pcm(ws_url(whisper), pcm, rate, timeout=240,
                                 start={"type": "start", "sample_rate": rate, "encoding": "pcm_s16le", "language": "en"}))
    assert_well_formed(run)  # finals in order, none overlapping the one before
    finals = [words(e["text"]) for _, e in run.of("final")]
    assert all(a[-1] != b[0] for a, b in zip(finals, finals[1:], strict=False)), finals  # no word said twice
    reference = " ".join(texts)
    assert len(words(run.text)) <= len(words(reference)) and word_error_rate(reference, run.text) <= 0.1, run.text
