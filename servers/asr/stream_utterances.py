"""Streaming for whole-utterance models (faster-whisper, NeMo): VAD utterances, re-decoded as they grow.

pocketsphinx's endpointer (WebRTC VAD, a few µs a frame) opens and closes utterances. While one
is open, the audio not yet final is decoded again every `STEP_S` of new audio:

- whisper uses LocalAgreement-2 (Macháček et al., whisper_streaming): the words two consecutive
  hypotheses agree on, from the start, are committed as a `final` and cut from the audio; the
  rest is the `partial`. Finals never change, by construction.
- NeMo (and any model without word times) re-decodes the utterance so far for the `partial`.

When the endpointer closes the utterance, what is not final yet is decoded once more and sent
as the utterance's last `final`.
"""

from __future__ import annotations

import re

import numpy as np

from .stream_protocol import SAMPLE_RATE, final, partial
from .stream_sphinx import ENDPOINTER

STEP_S = 1.0          # new audio between re-decodes while speaking
PAD_S = 0.2           # audio kept before the endpointer's speech start (it starts late)
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

    def __init__(self, run, decode, words: bool, mode: str):
        from pocketsphinx import Endpointer
        self.run, self.decode, self.words, self.mode = run, decode, words, mode
        self.ep = Endpointer(sample_rate=SAMPLE_RATE, **ENDPOINTER)
        self.pending_pcm = b""
        self.samples = np.zeros(0, np.float32)  # audio from `base_s` on
        self.base_s = 0.0                        # stream time of samples[0]
        self.now_s = 0.0                         # stream time of the end of the audio seen
        self.commit_s: float | None = None       # start of the audio not final yet (None: no utterance)
        self.last_decode_s = 0.0
        self.previous: list[tuple] = []          # the last hypothesis' words after commit_s
        self.prompt = ""                         # this utterance's final text (whisper's context)

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
                self.commit_s = max(self.base_s, self.ep.speech_start - PAD_S)
                self.last_decode_s = self.ep.speech_start
            elif was_speech and not self.ep.in_speech:
                events += await self._close(self.ep.speech_end)
        if self.ep.in_speech and not more and self.now_s - self.last_decode_s >= STEP_S:
            events += await self._update()
        self._trim()
        return events

    async def finish(self) -> list[dict]:
        was_speech = self.ep.in_speech
        self.ep.end_stream(self.pending_pcm or b"\0\0")  # it refuses an empty frame
        self._append(self.pending_pcm)
        self.pending_pcm = b""
        return await self._close(self.now_s) if was_speech or self.commit_s is not None else []

    async def close(self) -> None:
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

    async def _close(self, end_s: float) -> list[dict]:
        """The utterance ended: decode what is not final yet, once, as its last final."""
        start, self.commit_s = self.commit_s, None
        self.previous, prompt, self.prompt = [], self.prompt, ""
        if start is None or end_s - start < 0.1:
            return []
        text = await self.run(self.decode, self._audio(start, min(self.now_s, end_s + PAD_S)), prompt, True)
        return [final(text.strip(), start, end_s)] if text.strip() else []


def _join(words: list[tuple]) -> str:
    return "".join(w for w, *_ in words).strip() if any(w.startswith(" ") for w, *_ in words) \
        else " ".join(w for w, *_ in words).strip()
