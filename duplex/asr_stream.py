"""A client of the asr server's WS /stream (docs/streaming.md), and the latency figures of one run.

`stream_pcm` replays 16-bit mono PCM at real time (or as fast as the socket takes it) and records
each event with the moment it arrived, on the clock of the audio sent. At real time it sends as a
microphone does: a frame leaves once the last of its audio has been "spoken" (the frame holding
audio 0.30-0.35 s leaves at wall second 0.35, not 0.30), so "end of speech -> final", the final's
arrival minus the reference's speech end, is what a user waits, framing included. `latency_figures` turns runs into p50/p95 figures (pure).
"""

from __future__ import annotations

import array
import asyncio
import json
import ssl
import statistics
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

FRAME_S = 0.05  # 50 ms frames, what the page sends too (servers/frontend/static/live.js)


@dataclass
class StreamRun:
    events: list[tuple[float, dict]] = field(default_factory=list)  # (seconds after the first frame, event)
    close_code: int | None = None
    close_reason: str = ""
    audio_s: float = 0.0

    def of(self, kind: str) -> list[tuple[float, dict]]:
        return [(t, e) for t, e in self.events if e.get("type") == kind]

    @property
    def text(self) -> str:
        return " ".join(e["text"] for _, e in self.of("final")).strip()


def read_pcm(path: Path) -> tuple[bytes, int]:
    """(16-bit mono PCM, sample rate) of a WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path} is not 16-bit mono WAV")
        return w.readframes(w.getnframes()), w.getframerate()


async def stream_pcm(url: str, pcm: bytes, rate: int = 16000, *, realtime: bool = True,
                     start: dict | None = None, ssl_context: ssl.SSLContext | None = None,
                     timeout: float = 120, on_event=None) -> StreamRun:
    """Send the start message, `pcm` in FRAME_S frames, then stop; collect every event until close.
    `on_event(t, event)`, when given, is called as each event arrives (a translation chain passes
    finals on while the stream goes on)."""
    from websockets.asyncio.client import connect  # heavy: only `inv smoke` and the benchmarks stream
    from websockets.exceptions import ConnectionClosed

    run = StreamRun(audio_s=len(pcm) / 2 / rate)
    step = int(rate * FRAME_S) * 2
    async with connect(url, max_size=2**22, ssl=ssl_context, open_timeout=15, close_timeout=5) as ws:
        t0 = time.monotonic()

        async def send() -> None:
            try:
                await ws.send(json.dumps(start or {"type": "start", "sample_rate": rate, "encoding": "pcm_s16le"}))
                for offset in range(0, len(pcm), step):
                    frame = pcm[offset:offset + step]
                    if realtime:  # once its audio has been captured: at the end of the frame
                        spoken = (offset + len(frame)) / 2 / rate
                        await asyncio.sleep(max(0.0, t0 + spoken - time.monotonic()))
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "stop"}))
            except ConnectionClosed:
                pass  # the server ended the session early: its close code says why

        async def receive() -> None:
            try:
                async for message in ws:
                    if isinstance(message, str):
                        run.events.append((time.monotonic() - t0, json.loads(message)))
                        if on_event is not None:
                            on_event(*run.events[-1])
            except ConnectionClosed:
                pass  # closed with an error code: kept in run.close_code

        sender = asyncio.create_task(send())
        try:
            await asyncio.wait_for(receive(), timeout)
        finally:
            sender.cancel()
        run.close_code, run.close_reason = ws.close_code, ws.close_reason or ""
    return run


def speech_spans(pcm: bytes, rate: int, threshold: float = 0.02, min_gap_s: float = 0.5) -> list[tuple[float, float]]:
    """(start_s, end_s) of the loud stretches of `pcm`, pauses shorter than min_gap_s bridged: the
    reference onsets and ends of speech of synthesised test audio (pure)."""
    samples = array.array("h", pcm)  # native order: little-endian on every machine duplex runs on
    win, level = max(1, rate // 100), int(threshold * 32768)  # 10 ms windows
    frames = [max(map(abs, samples[i:i + win])) > level for i in range(0, len(samples) - win + 1, win)]
    spans: list[list[float]] = []
    for i, loud in enumerate(frames):
        if not loud:
            continue
        t = i * win / rate
        if spans and t - spans[-1][1] < min_gap_s:
            spans[-1][1] = t + win / rate
        else:
            spans.append([t, t + win / rate])
    return [(a, b) for a, b in spans]


def latency_figures(runs: list[tuple[StreamRun, list[tuple[float, float]]]]) -> dict:
    """p50/p95 of end of speech -> final, onset -> first partial, partial cadence (pure).

    Each speech span is matched with the first final that ends after the span starts and arrives
    after it ends; cadence is the gap between partials (and the final) while a span is spoken.
    """
    end_to_final, onset_to_partial, gaps = [], [], []
    for run, spans in runs:
        finals, partials = run.of("final"), run.of("partial")
        end_to_final += finals_after_speech(run, spans)
        for start, end in spans:
            arrived = [t for t, e in finals if e["end"] >= start and t >= end]
            first = [t for t, e in partials if t >= start]
            if first and first[0] <= end + 1.0:
                onset_to_partial.append(first[0] - start)
            times = [t for t, _ in partials if start <= t <= end] + arrived[:1]
            gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
    return {"end_to_final_s": spread(end_to_final), "onset_to_partial_s": spread(onset_to_partial),
            "partial_gap_s": spread(gaps)}


def finals_after_speech(run: StreamRun, spans) -> list[float]:
    """Per speech span, the seconds from its end to the first final that covers it (pure)."""
    finals, waits = run.of("final"), []
    for start, end in spans:
        arrived = [t for t, e in finals if e["end"] >= start and t >= end]
        if arrived:
            waits.append(arrived[0] - end)
    return waits


def spread(values: list[float]) -> dict:
    """p50 (median) and p95 (nearest rank), rounded to the millisecond, and n."""
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3), "n": len(ordered)}


def passage(pcm: bytes, rate: int, times: int = 3, gap_s: float = 0.8) -> bytes:
    """`pcm` said `times` times with `gap_s` of silence after each: a few utterances to time."""
    return (pcm + b"\0\0" * int(gap_s * rate)) * times


def stream_url(http_url: str) -> str:
    """An asr server's (or the frontend's relay's) base URL -> its WebSocket URL."""
    return "ws" + http_url[len("http"):] if http_url.startswith("http") else http_url


async def replay(url: str, pcm: bytes, rate: int, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 120) -> dict:
    """Stream `pcm` at real time to WS `url`: the latency figures, the finals' text and what the
    server said (backend, mode, close code)."""
    run = await stream_pcm(url, pcm, rate, ssl_context=ssl_context, timeout=timeout)
    spans = speech_spans(pcm, rate)
    ready = run.events[0][1] if run.events and run.events[0][1].get("type") == "ready" else {}
    return {**latency_figures([(run, spans)]), "text": run.text, "spans": len(spans), "finals": len(run.of("final")),
            "backend": ready.get("backend"), "mode": ready.get("mode"),
            "close_code": run.close_code, "close_reason": run.close_reason}
