"""Streaming for whole-utterance models (faster-whisper, NeMo): VAD utterances, re-decoded as they grow.

pocketsphinx's endpointer (WebRTC VAD, a few µs a frame) opens and closes utterances. While one
is open, the audio not yet final is decoded again every `STEP_S` of new audio:

- whisper uses LocalAgreement-2 (Macháček et al., whisper_streaming): the words two consecutive
  hypotheses agree on, from the start, are committed as a `final` and cut from the audio; the
  rest is the `partial`. Finals never change, by construction.
- NeMo (and any model without word times) re-decodes the utterance so far for the `partial`.

When the endpointer closes the utterance, what is not final yet is decoded once more and sent
as the utterance's last `final`. Consecutive utterances never decode the same audio: the next one
starts where the last closing decode ended, so finals neither repeat words nor overlap in time.

`hangover_s` (whisper): the endpointer ends an utterance at a pause of ~0.12 s, which a phrase
has between words ("last summer, it was hot"); the final then waits until the endpointer's
speech end is `hangover_s` in the past, and speech resuming before that continues the same
utterance. The closing decode starts at once and runs during the hangover, so it costs little
wait (it only shows when the decode is quicker than the hangover).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import numpy as np

from .stream_protocol import SAMPLE_RATE, final, partial
from .stream_sphinx import ENDPOINTER

STEP_S = 1.0          # new audio between re-decodes while speaking
PAD_S = 0.2           # audio kept before the endpointer's speech start (it starts late)
HANGOVER_S = 0.3      # whisper: a pause the endpointer closed on but shorter than this is bridged
MAX_PENDING_S = 25.0  # whisper sees 30 s at most: an utterance this long without a commit is cut


def agreed_prefix(previous: list[tuple], current: list[tuple]) -> int:
    """How many leading words two hypotheses share (compared without case and punctuation)."""
    n = 0
    for a, b in zip(previous, current, strict=False):
        if _norm(a[0]) != _norm(b[0]):
            break
        n += 1
    return n


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


class UtteranceStream:
    """One session. `decode(samples, prompt, last)` runs in the backend's threads through `run`:
    with words=True it returns [(word, start_s, end_s)] while the utterance grows, else its text;
    `last` marks the utterance's closing decode, which always returns text."""

    def __init__(self, run, decode, words: bool, mode: str, hangover_s: float = 0.0):
        from pocketsphinx import Endpointer
        self.run, self.decode, self.words, self.mode, self.hangover_s = run, decode, words, mode, hangover_s
        self.ep = Endpointer(sample_rate=SAMPLE_RATE, **ENDPOINTER)
        self.pending_pcm = b""
        self.samples = np.zeros(0, np.float32)  # audio from `base_s` on
        self.base_s = 0.0                        # stream time of samples[0]
        self.now_s = 0.0                         # stream time of the end of the audio seen
        self.commit_s: float | None = None       # start of the audio not final yet (None: no utterance)
        self.last_decode_s = 0.0
        self.previous: list[tuple] = []          # the last hypothesis' words after commit_s
        self.prompt = ""                         # this utterance's final text (whisper's context)
        self.decoded_to = 0.0                    # end of the audio the last closing decode read
        self.closing: _Closing | None = None     # an utterance the endpointer ended, in its hangover

    async def feed(self, pcm: bytes, more: bool = False) -> list[dict]:
        """`more`: audio is waiting already, so a re-decode now would be stale (skipped: the
        stream catches up instead of falling further behind)."""
        data = self.pending_pcm + pcm
        step = self.ep.frame_bytes
        cut = len(data) - len(data) % step
        self.pending_pcm = data[cut:]
        self._append(data[:cut])
        events: list[dict] = []
        for offset in range(0, cut, step):
            was_speech = self.ep.in_speech
            self.ep.process(data[offset:offset + step])
            if not was_speech and self.ep.in_speech:
                if self.closing is not None:  # speech again within the hangover: the utterance goes on
                    self.closing.decoding.cancel()
                    self.closing = None
                else:  # never before the audio the last utterance decoded (it would be said twice)
                    self.commit_s = max(self.base_s, self.ep.speech_start - PAD_S, self.decoded_to)
                    self.last_decode_s = self.ep.speech_start
            elif was_speech and not self.ep.in_speech:
                self._begin_close(self.ep.speech_end)
            frame_end_s = self.now_s - (cut - offset - step) / 2 / SAMPLE_RATE
            if self.closing is not None and frame_end_s >= self.closing.end_s + self.hangover_s:
                events += await self._end_close()
        if self.ep.in_speech and not more and self.now_s - self.last_decode_s >= STEP_S:
            events += await self._update()
        self._trim()
        return events

    async def finish(self) -> list[dict]:
        was_speech = self.ep.in_speech
        self.ep.end_stream(self.pending_pcm or b"\0\0")  # it refuses an empty frame
        self._append(self.pending_pcm)
        self.pending_pcm = b""
        if self.closing is not None:  # no more audio: the hangover is over
            return await self._end_close()
        if was_speech or self.commit_s is not None:
            self._begin_close(self.now_s)
            return await self._end_close()
        return []

    async def close(self) -> None:
        if self.closing is not None:
            self.closing.decoding.cancel()
            self.closing = None
        self.samples = np.zeros(0, np.float32)

    def _append(self, pcm: bytes) -> None:
        if pcm:
            self.samples = np.concatenate([self.samples, np.frombuffer(pcm, "<i2").astype(np.float32) / 32768])
            self.now_s += len(pcm) / 2 / SAMPLE_RATE

    def _trim(self) -> None:
        """Drop audio nobody will decode again (keep PAD_S for the next utterance's start)."""
        keep_from = self.commit_s if self.commit_s is not None else self.now_s - 1.5
        drop = int((keep_from - self.base_s) * SAMPLE_RATE)
        if drop > 0:
            self.samples = self.samples[drop:]
            self.base_s += drop / SAMPLE_RATE

    def _audio(self, start_s: float, end_s: float) -> np.ndarray:
        a = int(round((start_s - self.base_s) * SAMPLE_RATE))
        b = int(round((end_s - self.base_s) * SAMPLE_RATE))
        return self.samples[max(0, a):max(0, b)]

    async def _update(self) -> list[dict]:
        self.last_decode_s = self.now_s
        start = self.commit_s
        hypothesis = await self.run(self.decode, self._audio(start, self.now_s), self.prompt, False)
        if not self.words:
            text = hypothesis.strip()
            return [partial(text, start, self.now_s)] if text else []
        words = [(w, start + a, start + b) for w, a, b in hypothesis if _norm(w)]  # no lone punctuation
        events = []
        n = agreed_prefix(self.previous, words)
        if n == 0 and self.now_s - start > MAX_PENDING_S:
            n = max(1, len(words) - 2)  # nothing agrees for too long: commit all but the last words
        if n:
            agreed, words = words[:n], words[n:]
            events.append(self._commit(agreed, agreed[-1][2]))
        self.previous = words
        if words:
            events.append(partial(_join(words), words[0][1], self.now_s))
        return events

    def _commit(self, words: list[tuple], end_s: float) -> dict:
        text = _join(words)
        event = final(text, max(words[0][1], self.commit_s), end_s)
        self.prompt = f"{self.prompt} {text}".strip()
        self.commit_s = end_s
        return event

    def _begin_close(self, end_s: float) -> None:
        """The endpointer ended the utterance: start decoding what is not final yet, once, for its
        last final (sent by _end_close when the hangover is over)."""
        start = self.commit_s
        audio_end = min(self.now_s, end_s + PAD_S)
        if start is None or end_s - start < 0.1:
            decoding = asyncio.get_running_loop().create_future()
            decoding.set_result("")
        else:
            decoding = asyncio.ensure_future(self.run(self.decode, self._audio(start, audio_end), self.prompt, True))
        self.closing = _Closing(decoding, start, end_s, audio_end)

    async def _end_close(self) -> list[dict]:
        closing, self.closing = self.closing, None
        text = (await closing.decoding).strip()
        self.commit_s, self.previous, self.prompt = None, [], ""
        self.decoded_to = closing.audio_end
        return [final(text, closing.start_s, closing.end_s)] if text else []


@dataclass
class _Closing:
    decoding: asyncio.Future  # the closing decode's text
    start_s: float | None
    end_s: float              # the endpointer's speech end: the final's end
    audio_end: float          # the end of the audio decoded


def _join(words: list[tuple]) -> str:
    return "".join(w for w, *_ in words).strip() if any(w.startswith(" ") for w, *_ in words) \
        else " ".join(w for w, *_ in words).strip()
