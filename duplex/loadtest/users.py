"""Simulated users: each speaks one passage at real time over the contract the page uses and
records what it waited for. asr: WS /stream (the frontend's /api/stream relays it); translate: the
same stream, each final passed on to mt's /ws/translate (the frontend's /api/translate) as the
translation page does. Every wait is bounded by the session's timeout."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field

from ..asr_stream import finals_after_speech, stream_pcm
from ..scoring import word_error_rate
from .speech import RATE, Passage

REFUSED = {4429}  # asr's and mt's "too many sessions", and the frontend's "every replica is busy"


@dataclass
class Outcome:
    state: str = "ok"  # "ok" | "refused" | "failed"
    detail: str = ""
    finals_s: list[float] = field(default_factory=list)  # end of speech -> final, per utterance
    lags_s: list[float] = field(default_factory=list)    # final -> its translation
    turnaround_s: list[float] = field(default_factory=list)  # moshi: how late its output for the end of speech came
    backlog: int | None = None  # moshi: frames sent minus audio frames back (how far behind real time)
    wer: float | None = None
    audio_s: float = 0.0


def _ended(outcome: Outcome, code: int | None, reason: str) -> Outcome:
    if code in REFUSED:
        outcome.state, outcome.detail = "refused", f"{code} {reason}".strip()
    elif code != 1000:
        outcome.state, outcome.detail = "failed", f"closed {code} {reason}".strip()
    return outcome


async def asr_user(url: str, passage: Passage, delay: float, timeout: float,
                   context: ssl.SSLContext | None = None) -> Outcome:
    await asyncio.sleep(delay)
    outcome = Outcome(audio_s=passage.seconds)
    try:
        run = await stream_pcm(url, passage.pcm, RATE, ssl_context=context, timeout=timeout,
                               start={"type": "start", "sample_rate": RATE, "encoding": "pcm_s16le", "language": "en"})
    except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
        return Outcome("failed", f"{type(exc).__name__}: {exc}"[:200], audio_s=passage.seconds)
    except Exception as exc:  # noqa: BLE001 - websockets' handshake errors: InvalidStatus, InvalidMessage...
        return Outcome("failed", f"{type(exc).__name__}: {exc}"[:200], audio_s=passage.seconds)
    outcome.finals_s = finals_after_speech(run, passage.spans)
    outcome.wer = round(word_error_rate(passage.text, run.text), 3)
    return _ended(outcome, run.close_code, run.close_reason)


async def translate_user(asr_url: str, mt_url: str, passage: Passage, delay: float, timeout: float,
                         context: ssl.SSLContext | None = None) -> Outcome:
    """The translation page's chain: each final of the live stream sent to the translator as it
    comes (languages: the translator's defaults); the lag is the final's send to its translation."""
    from websockets.asyncio.client import connect  # heavy: only a load test opens these
    await asyncio.sleep(delay)
    outcome = Outcome(audio_s=passage.seconds)
    sent: dict[int, float] = {}
    texts: asyncio.Queue = asyncio.Queue()
    try:
        async with connect(mt_url, ssl=context, open_timeout=15, close_timeout=5) as mt:
            async def forward() -> None:
                ident = 0
                while (text := await texts.get()) is not None:
                    ident += 1
                    sent[ident] = time.monotonic()
                    await mt.send(json.dumps({"type": "final", "text": text, "id": ident}))

            async def collect() -> None:
                async for message in mt:
                    event = json.loads(message) if isinstance(message, str) else {}
                    if event.get("type") == "translation" and event.get("id") in sent:
                        outcome.lags_s.append(round(time.monotonic() - sent.pop(event["id"]), 4))
                    elif event.get("type") == "error":
                        outcome.state, outcome.detail = "failed", f"mt: {event.get('error')} {event.get('detail')}"[:200]

            def on_event(_t: float, event: dict) -> None:
                if event.get("type") == "final" and event.get("text"):
                    texts.put_nowait(event["text"])

            forwarder, collector = asyncio.create_task(forward()), asyncio.create_task(collect())
            run = await stream_pcm(asr_url, passage.pcm, RATE, ssl_context=context, timeout=timeout,
                                   on_event=on_event,
                                   start={"type": "start", "sample_rate": RATE, "encoding": "pcm_s16le",
                                          "language": "en"})
            texts.put_nowait(None)
            await asyncio.wait_for(forwarder, timeout)
            waited = time.monotonic() + timeout
            while sent and not collector.done() and time.monotonic() < waited:
                await asyncio.sleep(0.05)
            collector.cancel()
            if sent and outcome.state == "ok":  # the translator closed (refused: 4429) or never answered
                if mt.close_code:
                    _ended(outcome, mt.close_code, f"mt: {mt.close_reason or ''}")
                if outcome.state == "ok":
                    outcome.state, outcome.detail = "failed", f"{len(sent)} translations never came"
    except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
        return Outcome("failed", f"{type(exc).__name__}: {exc}"[:200], audio_s=passage.seconds)
    except Exception as exc:  # noqa: BLE001 - websockets' handshake and close errors
        return Outcome("failed", f"{type(exc).__name__}: {exc}"[:200], audio_s=passage.seconds)
    outcome.finals_s = finals_after_speech(run, passage.spans)
    outcome.wer = round(word_error_rate(passage.text, run.text), 3)
    return _ended(outcome, run.close_code, run.close_reason) if outcome.state == "ok" else outcome
