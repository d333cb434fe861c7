"""WS /stream: one live-transcription session, its limits, and the summary at the end.

Two tasks per session: `_receive` reads the client's messages (start, audio, stop) into a buffer,
`_decode` hands the buffered audio to the backend's stream and sends its events back. Audio that
arrives faster than real time is decoded as fast as the backend goes, in bigger pieces; the buffer
is bounded, so a client far ahead is slowed by TCP, not by the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import origins
from . import stream_protocol as proto
from .stream_protocol import StreamError

log = logging.getLogger("uvicorn.error").getChild("asr.stream")

MAX_BUFFER_S = 10.0  # audio received but not decoded yet; beyond it the reader waits
MAX_PIECE_S = 0.5    # most audio handed to the backend at once: a backlog still yields partials


class Sessions:
    """The open streams, bounded by ASR_STREAM_MAX_SESSIONS."""

    def __init__(self, limit: int):
        self.limit, self.open = limit, 0

    def enter(self) -> None:
        if self.open >= self.limit:
            raise StreamError(proto.TOO_MANY, f"{self.open} streams are open, the most this server "
                                              f"takes (ASR_STREAM_MAX_SESSIONS={self.limit}); retry later")
        self.open += 1


class Session:
    def __init__(self, ws: WebSocket, backend, settings, metrics):
        self.ws, self.backend, self.settings, self.metrics = ws, backend, settings, metrics
        self.audio = bytearray()        # 16 kHz pcm_s16le received, not yet decoded
        self.received = 0               # samples received (16 kHz)
        self.arrivals: list[tuple[int, float]] = []  # (samples received so far, wall time)
        self.stopped = False            # "stop" received
        self.limit_error: StreamError | None = None
        self.wake = asyncio.Event()     # audio, stop or an error arrived
        self.room = asyncio.Event()     # the buffer has room again
        self.resampler = None
        self.started = time.monotonic()
        self.waited = 0.0               # seconds spent waiting for the client's audio since start
        self.lags: list[float] = []     # seconds from receiving a final's last sample to sending it
        self.counts = {"partial": 0, "final": 0}
        self.first_partial_s: float | None = None

    async def run(self) -> None:
        start = await self._start()
        self.stream = await self.backend.open_stream(start.language)
        try:
            await self._send({"type": "ready", "protocol": proto.PROTOCOL, "backend": self.backend.name,
                              "model": self.backend.model, "mode": self.stream.mode,
                              "sample_rate": proto.SAMPLE_RATE, "input_sample_rate": start.sample_rate,
                              "encodings": list(proto.ENCODINGS),
                              "limits": {"max_seconds": self.settings.stream_max_seconds,
                                         "idle_seconds": self.settings.stream_idle_seconds,
                                         "max_lag_seconds": self.settings.stream_max_lag_seconds,
                                         "max_wall_seconds": self.settings.stream_max_wall_seconds}})
            reader = asyncio.create_task(self._receive())
            try:
                await self._decode(reader)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        finally:
            await self.stream.close()
        if self.limit_error:
            raise self.limit_error
        await self._send(self.summary())
        await self.ws.close(proto.NORMAL, "done")

    async def _start(self) -> proto.Start:
        message = await self._next_message()
        if "bytes" in message and message["bytes"] is not None:
            raise StreamError(proto.BAD_MESSAGE, "the first message must be the JSON start message "
                                                 "{\"type\": \"start\", \"sample_rate\": 16000, \"encoding\": \"pcm_s16le\"}")
        parsed = proto.parse_message(message.get("text") or "")
        if parsed["type"] != "start":
            raise StreamError(proto.BAD_MESSAGE, "the first message must be {\"type\": \"start\", ...}")
        start = proto.parse_start(parsed)
        if start.sample_rate != proto.SAMPLE_RATE:
            import soxr
            self.resampler = soxr.ResampleStream(start.sample_rate, proto.SAMPLE_RATE, 1, dtype="float32")
        return start

    async def _next_message(self) -> dict:
        asked = time.monotonic()
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.settings.stream_idle_seconds)
        except asyncio.TimeoutError:
            raise StreamError(proto.IDLE, f"no message for {self.settings.stream_idle_seconds:g} s "
                                          "(ASR_STREAM_IDLE_SECONDS); send audio or {\"type\": \"stop\"}") from None
        finally:
            self.waited += time.monotonic() - asked
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1006))
        return message

    def _check_pace(self) -> None:
        """A client whose audio falls far behind the time spent waiting for it (a few bytes every few
        seconds keeps the idle timeout away) has stalled. Only the client's time counts: while the
        buffer is full and the reader waits for the decoder, the server is the slow one."""
        behind = self.waited - self.received / proto.SAMPLE_RATE
        if behind > self.settings.stream_max_lag_seconds:
            limit = self.settings.stream_max_lag_seconds
            raise StreamError(proto.STALLED, f"the audio is {behind:.0f} s behind real time, more than {limit:g} s "
                                             "(ASR_STREAM_MAX_LAG_SECONDS): send audio at least as fast as it is spoken")

    async def _receive(self) -> None:
        """Read audio into the buffer until stop or a limit; errors end the session via _decode."""
        while not self.stopped:
            message = await self._next_message()
            if message.get("bytes") is not None:
                self._add_audio(message["bytes"])
                self._check_pace()
            else:
                if proto.parse_message(message.get("text") or "")["type"] == "start":
                    raise StreamError(proto.BAD_MESSAGE, "the session has started already; send audio or stop")
                if self.resampler is not None:  # the resampler holds a few ms back: flush them
                    self._append(self._pcm(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)))
                self.stopped = True
            self.wake.set()
            while len(self.audio) > MAX_BUFFER_S * 32000 and not self.stopped:
                self.room.clear()
                await self.room.wait()

    def _add_audio(self, data: bytes) -> None:
        proto.check_frame(data)
        if self.resampler is not None:
            data = self._pcm(self.resampler.resample_chunk(np.frombuffer(data, "<i2").astype(np.float32) / 32768))
        self._append(data)

    @staticmethod
    def _pcm(samples: np.ndarray) -> bytes:
        return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()

    def _append(self, data: bytes) -> None:
        """Buffer 16 kHz audio, up to ASR_STREAM_MAX_SECONDS; past it, stop with TOO_LONG."""
        if self.stopped:
            return
        room = int(self.settings.stream_max_seconds * proto.SAMPLE_RATE) - self.received
        if len(data) // 2 > room:
            data = data[:max(0, room) * 2]
            self.limit_error = StreamError(proto.TOO_LONG, f"the stream passed {self.settings.stream_max_seconds:g} s "
                                                           "of audio (ASR_STREAM_MAX_SECONDS); start a new stream")
            self.stopped = True
        self.audio += data
        self.received += len(data) // 2
        self.arrivals.append((self.received, time.monotonic()))
        self.metrics.stream_audio.labels(self.metrics.backend).inc(len(data) / 2 / proto.SAMPLE_RATE)

    async def _decode(self, reader: asyncio.Task) -> None:
        reader.add_done_callback(lambda _: self.wake.set())
        while True:
            self.wake.clear()
            if reader.done() and reader.exception() is not None:
                raise reader.exception()  # the client vanished, stalled or broke the protocol
            if not self.audio and not self.stopped:
                await self.wake.wait()
                continue
            piece = bytes(self.audio[:int(MAX_PIECE_S * proto.SAMPLE_RATE) * 2])
            del self.audio[:len(piece)]
            self.room.set()
            if piece:
                await self._send_events(await self.stream.feed(piece, more=bool(self.audio)))
            else:  # stopped, and everything decoded
                await self._send_events(await self.stream.finish())
                return

    async def _send_events(self, events: list[dict]) -> None:
        now = time.monotonic()
        for event in events:
            kind = event["type"]
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == "final":
                self.lags.append(now - self._arrival(event["end"]))
            elif self.first_partial_s is None:
                self.first_partial_s = round(now - self.started, 3)
            await self._send(event)

    def _arrival(self, audio_s: float) -> float:
        """When the sample at `audio_s` reached the server."""
        target = audio_s * proto.SAMPLE_RATE
        for i, (received, at) in enumerate(self.arrivals):
            if received >= target:
                del self.arrivals[:i]  # finals come in audio order: earlier frames are not asked again
                return at
        return self.arrivals[-1][1] if self.arrivals else self.started

    async def _send(self, event: dict) -> None:
        await self.ws.send_json(event)

    def summary(self) -> dict:
        lags = sorted(self.lags)
        return {"type": "summary", "audio_s": round(self.received / proto.SAMPLE_RATE, 3),
                "wall_s": round(time.monotonic() - self.started, 3), "finals": self.counts["final"],
                "partials": self.counts["partial"], "first_partial_s": self.first_partial_s,
                "final_lag_s": {"p50": round(statistics.median(lags), 3) if lags else None,
                                "max": round(lags[-1], 3) if lags else None}}


async def serve(ws: WebSocket, state, settings, sessions: Sessions, metrics) -> None:
    """Run one session; every way it ends is a close code from stream_protocol and a log line.
    A page from a foreign origin is refused before the handshake (servers/origins.py)."""
    if await origins.refuse_foreign(ws, settings.origins if state.settings else origins.Origins()):
        return
    await ws.accept()
    entered = False
    try:
        if state.status != "ready":
            raise StreamError(proto.NOT_READY, f"the {state.health()['backend']} backend is {state.status}"
                                               + (f": {state.error}" if state.error else ""))
        sessions.enter()
        entered = True
        metrics.streams.labels(metrics.backend).set(sessions.open)
        try:  # the wall-time limit: audio and pace limits alone let a session last forever
            session = Session(ws, state.backend, settings, metrics)
            await asyncio.wait_for(session.run(), settings.stream_max_wall_seconds)
        except asyncio.TimeoutError:
            raise StreamError(proto.TOO_LONG, f"the stream lasted {settings.stream_max_wall_seconds:g} s "
                                              "(ASR_STREAM_MAX_WALL_SECONDS); start a new stream") from None
        metrics.stream_ended(proto.NORMAL)
    except StreamError as exc:
        metrics.stream_ended(exc.close_code)
        log.info("stream closed: %s", exc.reason())
        await _close(ws, exc)
    except WebSocketDisconnect:
        metrics.stream_ended(1006)  # the client vanished: the stream's decoder was freed above
    except Exception as exc:  # a bug: tell the client, log it, keep serving
        log.exception("stream failed")
        metrics.stream_ended(proto.FAILED)
        await _close(ws, StreamError(proto.FAILED, f"{type(exc).__name__}: {exc}"))
    finally:
        if entered:
            sessions.open -= 1
            metrics.streams.labels(metrics.backend).set(sessions.open)


async def _close(ws: WebSocket, exc: StreamError) -> None:
    if ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        await ws.send_json(exc.event())
        await ws.close(exc.close_code, exc.reason())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client is gone already
