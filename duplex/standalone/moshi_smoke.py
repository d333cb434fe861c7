"""moshi's speech latency, measured inside its container (`inv smoke --latency` runs it there).

    python /opt/duplex/moshi_smoke.py --port 8998 --wav /tmp/duplex-speech.wav [--tls] [--timeout 30]
    python /opt/duplex/moshi_smoke.py --url ws://127.0.0.1:8010/api/chat --sessions 4 --wav ...

The second form is `inv loadtest`'s moshi users (run in a container of moshi's image beside the
stack, on the host's network): `--sessions N` conversations at once, started `--stagger` seconds
apart at most, one JSON line with each session's figures (or its error: refused with the close
code, busy) and this process's own CPU seconds, so the report can say when it was the limit.

Streams the WAV's speech to moshi's /api/chat at real time as its web client does (Ogg Opus, one
80 ms frame each 80 ms, each frame sent once captured), then silence, and prints one JSON line.
moshi answers every 80 ms input frame with an 80 ms output frame, so what a listener feels is how
far output frame k comes after input frame k was sent (decoded from the Ogg Opus it sends back):
`lag_end_s` at the frame holding the end of the speech, `lag_p50_s`/`lag_p95_s`/`lag_max_s` over
the conversation, and the backlog, input frames sent minus output frames received, at its worst
(`backlog_max_frames`) and at the end (`backlog_frames`). A moshi that cannot keep up shows a lag
growing frame by frame; `end_to_audio_s` (the first audio message after the end of speech) cannot
show it: moshi sends something every step whether or not it keeps up. Uses the moshi image's own sphn, numpy and aiohttp (a WebSocket client that speaks
moshi's protocol needs an Opus encoder, which duplex itself does not carry); imports nothing from
duplex. Exit 0 with the figures, 1 with `{"error": ...}` (busy with a conversation, not ready).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
import wave

RATE = 24000  # moshi's (mimi's) sample rate
FRAME = 1920  # 80 ms at 24 kHz: one model step
TAIL_S = 2.0  # silence after the speech, so moshi keeps stepping and answers


def load(path: str):
    """The WAV (16-bit mono, any rate) as float32 at 24 kHz, and where its speech ends (samples)."""
    import numpy as np
    with wave.open(path, "rb") as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    pcm = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    if rate != RATE:  # linear interpolation: plenty for a latency figure
        pcm = np.interp(np.arange(int(len(pcm) * RATE / rate)) * rate / RATE, np.arange(len(pcm)), pcm)
    pcm = pcm.astype(np.float32)
    frames = len(pcm) // FRAME
    rms = [float(np.sqrt(np.mean(pcm[i * FRAME:(i + 1) * FRAME] ** 2))) for i in range(frames)]
    loud = [i for i, r in enumerate(rms) if r > 0.1 * max(rms, default=0.0)]
    end = (loud[-1] + 1) * FRAME if loud else len(pcm)
    return np.concatenate([pcm, np.zeros(int(TAIL_S * RATE), dtype=np.float32)]), end


async def measure(url: str, audio, speech_end: int, timeout: float, delay: float = 0.0) -> dict:
    import aiohttp
    await asyncio.sleep(delay)
    import sphn
    context = None
    if url.startswith("wss://"):  # moshi's own certificate, on the container's loopback
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    writer, opus_in = sphn.OpusStreamWriter(RATE), sphn.OpusStreamReader(RATE)
    back: list[tuple[float, int]] = []
    decoded: list[tuple[float, int]] = []  # (when, output samples decoded so far)
    sent_at: list[float] = []  # when input frame k was handed over
    problems: list[str] = []  # moshi's audio that could not be decoded
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, ssl=context, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
            asked = time.monotonic()
            try:
                first = await asyncio.wait_for(ws.receive(), timeout)
            except asyncio.TimeoutError:
                return {"error": "no ready byte: moshi is busy with a conversation or still loading"}
            if first.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                code = first.data if first.type == aiohttp.WSMsgType.CLOSE else ws.close_code
                return {"error": f"closed {code} {first.extra or ''}".strip(), "close_code": code}
            if first.type != aiohttp.WSMsgType.BINARY or first.data != b"\x00":
                return {"error": f"the first message is not moshi's ready byte: {first.type} {first.data!r:.40}"}

            async def receive():
                total = 0
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY and message.data:
                        now = time.monotonic()
                        back.append((now, message.data[0]))
                        if message.data[0] == 1:
                            try:
                                pcm = opus_in.append_bytes(message.data[1:])
                            except Exception as exc:  # noqa: BLE001 - said in the figures, the rest still counted
                                problems.append(f"{type(exc).__name__}: {exc}"[:200])
                                continue
                            total += len(pcm)
                            decoded.append((now, total))
            reader = asyncio.create_task(receive())
            began = time.monotonic()
            ready_s = round(began - asked, 3)  # moshi serves one conversation: a queued one waits here
            ended = None
            for start in range(0, len(audio) - FRAME + 1, FRAME):
                # a microphone hands a frame over once it is whole: send it at its end, not its start
                await asyncio.sleep(max(0.0, began + (start + FRAME) / RATE - time.monotonic()))
                data = writer.append_pcm(audio[start:start + FRAME])
                if data:
                    await ws.send_bytes(b"\x01" + data)
                sent_at.append(time.monotonic())
                if ended is None and start + FRAME >= speech_end:
                    ended = time.monotonic()
            sent = len(range(0, len(audio) - FRAME + 1, FRAME))
            await asyncio.sleep(0.5)
            await ws.close()
            reader.cancel()
    audio_at = [t for t, kind in back if kind == 1]
    after = [t for t in audio_at if ended is not None and t >= ended]
    return {"end_to_audio_s": round(after[0] - ended, 3) if after else None,
            "first_audio_s": round(audio_at[0] - began, 3) if audio_at else None,
            "audio_frames": len(audio_at), "text_frames": sum(kind == 2 for _t, kind in back),
            "speech_s": round(speech_end / RATE, 2), "audio_s": round(len(audio) / RATE, 2),
            "sent_frames": sent, "ready_s": ready_s, **({"decode_errors": problems[:3]} if problems else {}),
            **lag_figures(sent_at, decoded, (speech_end + FRAME - 1) // FRAME - 1)}


def lag_figures(sent_at: list[float], decoded: list[tuple[float, int]], end_frame: int) -> dict:
    """How far moshi's output runs behind its input (pure): output frame k is there once FRAME * (k+1)
    samples have been decoded; its lag is that moment minus when input frame k was sent."""
    lags, i = [], 0
    for k, sent in enumerate(sent_at):
        while i < len(decoded) and decoded[i][1] < FRAME * (k + 1):
            i += 1
        if i == len(decoded):
            break  # never came back
        lags.append(decoded[i][0] - sent)
    events = sorted([(t, 1) for t in sent_at] + [(t, -1) for t, _n in _frames_out(decoded)])
    backlog = worst = 0
    for _t, step in events:
        backlog += step
        worst = max(worst, backlog)
    ordered = sorted(lags)

    def pick(q: float):
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3) if ordered else None
    return {"lag_end_s": round(lags[end_frame], 3) if 0 <= end_frame < len(lags) else None,
            "lag_p50_s": pick(0.5), "lag_p95_s": pick(0.95), "lag_max_s": pick(1.0),
            "backlog_frames": len(sent_at) - len(lags), "backlog_max_frames": worst}


def _frames_out(decoded: list[tuple[float, int]]):
    """(when, 1) for each whole output frame decoded (a message may hold several, or part of one)."""
    done = 0
    for t, total in decoded:
        while (done + 1) * FRAME <= total:
            done += 1
            yield t, done


async def many(url: str, audio, speech_end: int, timeout: float, sessions: int, stagger: float) -> list[dict]:
    async def one(i: int) -> dict:
        try:
            return await asyncio.wait_for(measure(url, audio, speech_end, timeout, i * stagger / sessions),
                                          timeout + stagger + len(audio) / RATE + 5)
        except Exception as exc:  # noqa: BLE001 - one session's failure is a figure, not the end of the run
            return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    return await asyncio.gather(*(one(i) for i in range(sessions)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="moshi_smoke.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8998)
    p.add_argument("--path", default="/api/chat")
    p.add_argument("--wav", required=True)
    p.add_argument("--tls", action="store_true", help="moshi runs with --ssl: wss://")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--url", help="the whole WebSocket URL (default: moshi on this machine's --port)")
    p.add_argument("--sessions", type=int, default=0, help="conversations at once (the load test's form)")
    p.add_argument("--stagger", type=float, default=1.0)
    args = p.parse_args(argv)
    audio, end = load(args.wav)
    url = args.url or f"{'wss' if args.tls else 'ws'}://127.0.0.1:{args.port}{args.path}"
    if args.sessions > 0:
        started, cpu = time.monotonic(), time.process_time()
        found = asyncio.run(many(url, audio, end, args.timeout, args.sessions, args.stagger))
        print(json.dumps({"sessions": found, "cpu_s": round(time.process_time() - cpu, 3),
                          "wall_s": round(time.monotonic() - started, 3)}), flush=True)
        return 0
    try:
        result = asyncio.run(asyncio.wait_for(measure(url, audio, end, args.timeout),
                                              args.timeout + len(audio) / RATE + 5))
    except Exception as exc:  # noqa: BLE001 - one line for the smoke row, never a traceback
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
