"""pocketsphinx streaming: its live API (Endpointer + Decoder.start_utt/process_raw/hyp) in workers.

pocketsphinx holds the GIL while it decodes, so sessions live in worker processes, each worker a
one-process executor that keeps its sessions' decoders between calls (a session is pinned to the
worker that holds its decoder). The workers start with the first stream, so a server nobody
streams to runs none: streaming costs the batch endpoint nothing while idle.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from . import loaders
from .stream_protocol import FAILED, StreamError, final, partial

# The endpointer closes an utterance once `ratio` of the last `window` s is not speech. Its defaults
# (0.3 s, 0.9, the loosest VAD) close ~0.5 s after the voice stops; these ~0.26 s after it
# (measured on flite speech) and still bridge the pauses between words. The strictest WebRTC VAD
# mode starts utterances late ("hello world" became "oh well"), so each utterance is decoded from
# PREROLL_BYTES before the start the endpointer reports.
ENDPOINTER = {"window": 0.15, "ratio": 0.8, "vad_mode": 3}
PREROLL_BYTES = 6400  # 0.2 s before the speech start the endpointer reports
HISTORY_BYTES = 2 * 32000
FIRST_MAX_BYTES = 30 * 32000  # a first utterance longer than 30 s keeps its live decode
PARTIAL_EVERY_S = 0.2  # a partial at least this often while speaking, changed or not

# --- in the worker process ------------------------------------------------------------------------

_options: dict = {}
_sessions: dict[int, "_Session"] = {}
_spare: list = []  # decoders of ended sessions, reused: building one loads the model (~0.3 s)
_learned: dict = {"cmn": None}  # the CMN of the last utterance this worker decoded


def _init(options: dict, server_pid: int) -> None:
    global _options
    threading.Thread(target=loaders._exit_with_server, args=(server_pid,), daemon=True).start()
    _options = options
    _spare.append(_new_decoder(live=True))


def _decode_whole(pcm: bytes):
    """Decode as POST /transcribe does, on a decoder kept for that (one that has decoded live
    keeps state that changes a whole-utterance result); its CMN then seeds the live decoders."""
    if "whole" not in _learned:
        _learned["whole"] = _new_decoder()
    whole = _learned["whole"]
    whole.start_utt()
    whole.process_raw(pcm, full_utt=True)
    whole.end_utt()
    _learned["cmn"] = whole.get_cmn()
    return whole.hyp()


def _new_decoder(live: bool = False):
    """live: no flat-lexicon second pass (fwdflat) at end_utt. It cost 0.10 s of each final here
    (median; 0.015 s without) and a share of every stream's CPU, and gave the same text on the
    benchmark's phrases; the whole-utterance decode (POST /transcribe's way) keeps it."""
    from pocketsphinx import Decoder
    return Decoder(loglevel="ERROR", samprate=16000, **{**_options, **({"fwdflat": False} if live else {})})


class _Session:
    def __init__(self):
        from pocketsphinx import Endpointer
        self.decoder = _spare.pop() if _spare else _new_decoder(live=True)
        self.ep = Endpointer(sample_rate=16000, **ENDPOINTER)
        self.pending = b""
        self.samples = 0          # samples handed to the endpointer
        self.last_partial = -1.0  # audio time of the last partial
        self.last_text = ""
        # The live CMN (cepstral mean normalisation) starts from the model's rough guess and learns
        # the voice and channel as audio comes: decoded live from that guess, an utterance can lose
        # a word ("this is" -> "is is"). So a session starts from the CMN the worker learnt last;
        # in a worker that has learnt none yet, the first utterance is decoded again whole, as
        # POST /transcribe does, which sets the CMN for the utterances after it.
        if _learned["cmn"]:
            self.decoder.set_cmn(_learned["cmn"])
        self.first: bytearray | None = None if _learned["cmn"] else bytearray()
        self.in_utt = False
        self.history = bytearray()  # the last HISTORY_S of audio, for the pre-roll

    def feed(self, pcm: bytes) -> list[dict]:
        events, step = [], self.ep.frame_bytes
        data = self.pending + pcm
        if self.first is not None and len(self.first) < FIRST_MAX_BYTES:
            self.first += pcm  # all of it, the silence before the speech too, as the batch endpoint sees it
        cut = len(data) - len(data) % step
        for offset in range(0, cut, step):
            was_speech = self.ep.in_speech
            frame = data[offset:offset + step]
            self.samples += step // 2
            self.history += frame
            events += self._frame(self.ep.process(frame), was_speech)
        del self.history[:max(0, len(self.history) - HISTORY_BYTES)]
        self.pending = data[cut:]
        if self.ep.in_speech:
            hyp = self.decoder.hyp()
            text = hyp.hypstr.strip() if hyp else ""
            now = self.samples / 16000
            if text and (text != self.last_text or now - self.last_partial >= PARTIAL_EVERY_S):
                events.append(partial(text, self.ep.speech_start, now))
                self.last_text, self.last_partial = text, now
        return events

    def _frame(self, speech: bytes | None, was_speech: bool) -> list[dict]:
        if speech is None:
            return []
        if not was_speech:
            self.decoder.start_utt()
            self.in_utt = True
            preroll = self._preroll()
            if preroll:  # it refuses empty data
                self.decoder.process_raw(preroll)
        self.decoder.process_raw(speech)
        if self.ep.in_speech:
            return []
        return self._end_utt()

    def _preroll(self) -> bytes:
        """The PREROLL_S of audio before the endpointer's speech start: a strict VAD starts late."""
        end = len(self.history) - (self.samples - int(self.ep.speech_start * 16000)) * 2
        return bytes(self.history[max(0, end - PREROLL_BYTES):max(0, end)])

    def _end_utt(self) -> list[dict]:
        if not self.in_utt:
            return []
        self.decoder.end_utt()
        self.in_utt = False
        hyp = self.decoder.hyp()
        if self.first is not None and len(self.first) < FIRST_MAX_BYTES:
            hyp = _decode_whole(bytes(self.first))
            self.decoder.set_cmn(_learned["cmn"])
            self.first = None
        _learned["cmn"] = self.decoder.get_cmn()
        self.last_text, self.last_partial = "", -1.0
        text = hyp.hypstr.strip() if hyp else ""
        return [final(text, self.ep.speech_start, self.ep.speech_end)] if text else []

    def finish(self) -> list[dict]:
        was_speech = self.ep.in_speech
        speech = self.ep.end_stream(self.pending or b"\0\0")  # it refuses an empty frame
        self.pending = b""
        if speech is not None:
            if not was_speech:
                self.decoder.start_utt()
                self.in_utt = True
            self.decoder.process_raw(speech)
            return self._end_utt()
        return self._end_utt() if was_speech else []

    def close(self) -> None:
        if self.in_utt:  # a session cut off mid-utterance leaves it open
            self.decoder.end_utt()
        _spare.append(self.decoder)


def _open(sid: int) -> int:
    _sessions[sid] = _Session()
    return os.getpid()


def _feed(sid: int, pcm: bytes) -> list[dict]:
    return _sessions[sid].feed(pcm)


def _finish(sid: int) -> list[dict]:
    return _sessions[sid].finish()


def _close(sid: int) -> None:
    session = _sessions.pop(sid, None)
    if session is not None:
        session.close()


# --- in the server --------------------------------------------------------------------------------

class SphinxWorkers:
    """`count` one-process executors, started on first use; each session goes to the least busy."""

    def __init__(self, options: dict, count: int):
        self.options, self.count = options, count
        self.workers: list[ProcessPoolExecutor] = []
        self.load: dict[int, int] = {}  # worker index -> open sessions
        self._starting = asyncio.Lock()
        self._next_id = 0

    def _start_one(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(1, mp_context=ctx, initializer=_init, initargs=(self.options, os.getpid()))

    async def open(self) -> "SphinxStream":
        async with self._starting:
            if not self.workers:
                self.workers = await asyncio.to_thread(lambda: [self._start_one() for _ in range(self.count)])
                self.load = {i: 0 for i in range(self.count)}
        index = min(self.load, key=self.load.get)
        self._next_id += 1
        stream = SphinxStream(self, index, self._next_id)
        self.load[index] += 1
        try:
            await stream.call(_open, stream.sid)
        except StreamError:
            self.load[index] -= 1
            raise
        return stream

    def replace(self, index: int, broken: ProcessPoolExecutor) -> None:
        """A worker died (killed, out of memory): its sessions fail, the next ones get a fresh one."""
        if self.workers and self.workers[index] is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self.workers[index] = self._start_one()

    def close(self) -> None:
        for worker in self.workers:
            worker.shutdown(wait=True, cancel_futures=True)
        self.workers = []


class SphinxStream:
    """One session's handle: its decoder lives in worker `index`."""

    mode = "incremental"

    def __init__(self, workers: SphinxWorkers, index: int, sid: int):
        self.workers, self.index, self.sid = workers, index, sid
        self.closed = False  # its decoder is gone (closed, or died with its worker)
        self.counted = True  # still counted in workers.load

    async def call(self, fn, *args):
        worker = self.workers.workers[self.index]
        try:
            return await asyncio.get_running_loop().run_in_executor(worker, fn, *args)
        except BrokenProcessPool as exc:
            self.closed = True  # its decoder died with the worker
            self.workers.replace(self.index, worker)
            raise StreamError(FAILED, "the pocketsphinx worker decoding this stream died; "
                                      "start a new stream") from exc

    async def feed(self, pcm: bytes, more: bool = False) -> list[dict]:
        return await self.call(_feed, self.sid, pcm)  # cheap: partials even when behind

    async def finish(self) -> list[dict]:
        return await self.call(_finish, self.sid)

    async def close(self) -> None:
        if self.counted:
            self.counted = False
            self.workers.load[self.index] -= 1
        if self.closed:
            return
        self.closed = True
        try:
            await self.call(_close, self.sid)
        except StreamError:
            pass
