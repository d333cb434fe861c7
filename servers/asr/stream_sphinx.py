"""pocketsphinx streaming: its live API (Endpointer + Decoder.start_utt/process_raw/hyp) in workers.

pocketsphinx holds the GIL while it decodes, so sessions live in worker processes, each worker a
one-process executor that keeps its sessions' decoders between calls (a session is pinned to the
worker that holds its decoder). The workers start, and decode once to warm up, when the model
loads (the warm reloader preloads them with it, loaders.py): the first stream after a start gets
its final as soon as any other (it took 1.3-1.6 s when they started with it).
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
# PREROLL_BYTES before the start the endpointer reports. Whole-utterance models use ENDPOINTER;
# pocketsphinx's own streams close on a 0.1 s window (SPHINX_ENDPOINTER): 0.035 s sooner at the
# median on 32 phrases in four voices, one phrase more split at a pause, the same WER.
ENDPOINTER = {"window": 0.15, "ratio": 0.8, "vad_mode": 3}
SPHINX_ENDPOINTER = {**ENDPOINTER, "window": 0.1}
PREROLL_BYTES = 6400  # 0.2 s before the speech start the endpointer reports
HISTORY_BYTES = 2 * 32000
PARTIAL_EVERY_S = 0.2  # a partial at least this often while speaking, changed or not

# --- in the worker process ------------------------------------------------------------------------

CALIBRATE_BYTES = 32000  # a session's first 1 s of speech sets its CMN (see _Session._calibrate)

_options: dict = {}
_sessions: dict[int, "_Session"] = {}
_spare: list = []  # decoders of ended sessions, reused: building one loads the model (~0.3 s)
_worker: dict = {}  # "cmn": the model's own starting CMN; "estimator": a decoder that measures a CMN


def _init(options: dict, server_pid: int) -> None:
    global _options
    loaders.name_process("asr-stream")
    threading.Thread(target=loaders._exit_with_server, args=(server_pid,), daemon=True).start()
    _options = options
    _spare.append(_new_decoder(live=True))
    _worker["cmn"] = _spare[0].get_cmn()  # before any audio: the model's cmninit
    _worker["estimator"] = _new_estimator()
    _warm(_spare[0])


# A live decoder's search: no flat-lexicon second pass (fwdflat) at end_utt, which cost 0.10 s of
# each final (median; 0.015 s without) and gave the same text; at most 3,000 HMMs a frame (the
# default 30,000 is never the limit on a phrase): 30 % less CPU per stream, the same WER on 32
# phrases in four voices. POST /transcribe's whole-utterance decode keeps the defaults.
LIVE_SEARCH = {"fwdflat": False, "maxhmmpf": 3000}


def _new_decoder(live: bool = False):
    from pocketsphinx import Decoder
    return Decoder(loglevel="ERROR", samprate=16000, **{**_options, **(LIVE_SEARCH if live else {})})


def _new_estimator():
    """A decoder whose search is a single keyphrase: decoding audio whole with it costs ~3 % of
    real time (a full search ~12 %) and leaves the audio's batch CMN, the mean POST /transcribe
    normalises by. The keyphrase is the dictionary's first word: any model's dictionary has one."""
    from pathlib import Path

    import pocketsphinx
    from pocketsphinx import Decoder
    dictionary = _options.get("dict") or str(Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict")
    with open(dictionary, encoding="utf-8", errors="replace") as f:
        word = next(line.split()[0] for line in f if line.strip())
    search_free = {k: v for k, v in _options.items() if k not in ("lm", "jsgf", "kws", "keyphrase", "fsg")}
    return Decoder(loglevel="ERROR", samprate=16000, keyphrase=word, **search_free)


def _warm(decoder) -> None:
    """Run each code path a session takes once, on silence and a tone, so the first session's
    first final does not pay for first-touch costs (page faults in the model, lazy tables)."""
    import math
    tone = b"".join(int(8000 * math.sin(i / 8)).to_bytes(2, "little", signed=True) for i in range(16000))
    estimator = _worker["estimator"]
    estimator.start_utt()
    estimator.process_raw(tone, full_utt=True)
    estimator.end_utt()
    decoder.start_utt()
    decoder.process_raw(tone)
    decoder.end_utt()
    decoder.set_cmn(_worker["cmn"])


class _Session:
    def __init__(self):
        from pocketsphinx import Endpointer
        self.decoder = _spare.pop() if _spare else _new_decoder(live=True)
        # Every session starts from the model's own state: a decoder keeps the CMN it learnt from
        # the last voice it heard, and that changed the next user's transcript ("...back on the
        # shelf" came back "...back poncho for" after another speaker).
        self.decoder.set_cmn(_worker["cmn"])
        self.ep = Endpointer(sample_rate=16000, **SPHINX_ENDPOINTER)
        self.pending = b""
        self.samples = 0          # samples handed to the endpointer
        self.last_partial = -1.0  # audio time of the last partial
        self.last_text = ""
        self.in_utt = False       # an utterance is open (its audio may still be held)
        self.held: bytearray | None = bytearray()  # the session's first speech, until _calibrate
        self.history = bytearray()  # the last HISTORY_S of audio, for the pre-roll

    def feed(self, pcm: bytes) -> list[dict]:
        events, step = [], self.ep.frame_bytes
        data = self.pending + pcm
        cut = len(data) - len(data) % step
        for offset in range(0, cut, step):
            was_speech = self.ep.in_speech
            frame = data[offset:offset + step]
            self.samples += step // 2
            self.history += frame
            events += self._frame(self.ep.process(frame), was_speech)
        del self.history[:max(0, len(self.history) - HISTORY_BYTES)]
        self.pending = data[cut:]
        if self.ep.in_speech and self.held is None:
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
            self._start_utt(self._preroll())
        self._process(speech)
        if self.ep.in_speech:
            return []
        return self._end_utt()

    def _start_utt(self, preroll: bytes) -> None:
        self.in_utt = True
        if self.held is not None:
            self.held += preroll
            return
        self.decoder.start_utt()
        if preroll:  # it refuses empty data
            self.decoder.process_raw(preroll)

    def _process(self, speech: bytes) -> None:
        if self.held is None:
            self.decoder.process_raw(speech)
            return
        self.held += speech
        if len(self.held) >= CALIBRATE_BYTES or not self.ep.in_speech:
            self._calibrate()

    def _calibrate(self) -> None:
        """The live CMN (cepstral mean normalisation) starts from the model's rough guess and only
        learns the voice at the end of an utterance: decoded from the guess, a first utterance
        loses words ("this is" -> "is is"; 22 % WER on 32 phrases in four flite voices, 14 % this
        way). So the session's first second of speech is held, its own mean measured on it (cheap:
        the estimator, ~0.03 s), and the decode starts from that mean, catching up while the user
        still speaks. Nothing of another session is used."""
        estimator, audio = _worker["estimator"], bytes(self.held)
        estimator.start_utt()
        estimator.process_raw(audio, full_utt=True)
        estimator.end_utt()
        self.decoder.set_cmn(estimator.get_cmn())
        self.held = None
        self.decoder.start_utt()
        self.decoder.process_raw(audio)

    def _preroll(self) -> bytes:
        """The PREROLL_S of audio before the endpointer's speech start: a strict VAD starts late."""
        end = len(self.history) - (self.samples - int(self.ep.speech_start * 16000)) * 2
        return bytes(self.history[max(0, end - PREROLL_BYTES):max(0, end)])

    def _end_utt(self) -> list[dict]:
        if not self.in_utt:
            return []
        if self.held is not None:
            self._calibrate()
        self.decoder.end_utt()
        self.in_utt = False
        hyp = self.decoder.hyp()
        self.last_text, self.last_partial = "", -1.0
        text = hyp.hypstr.strip() if hyp else ""
        return [final(text, self.ep.speech_start, self.ep.speech_end)] if text else []

    def finish(self) -> list[dict]:
        was_speech = self.ep.in_speech
        speech = self.ep.end_stream(self.pending or b"\0\0")  # it refuses an empty frame
        self.pending = b""
        if speech is not None:
            if not was_speech:
                self._start_utt(b"")
            self._process(speech)
            return self._end_utt()
        return self._end_utt() if was_speech else []

    def close(self) -> None:
        if self.in_utt and self.held is None:  # a session cut off mid-utterance leaves it open
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
        self._next_id = 0

    def start(self, wait: float = 0) -> None:
        """Start the workers, each loading and warming its decoder; wait up to `wait` s until they
        have (the backend does, so /health says ready once a stream is served at full speed).
        Raises BrokenProcessPool when a worker cannot load the model."""
        if not self.workers:
            self.workers = [self._start_one() for _ in range(self.count)]
            self.load = {i: 0 for i in range(self.count)}
        # an executor spawns its process, and runs _init, at its first task: now, not at a stream's
        started = [worker.submit(os.getpid) for worker in self.workers]
        for future in started if wait else ():
            future.result(timeout=wait)

    def _start_one(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(1, mp_context=ctx, initializer=_init, initargs=(self.options, os.getpid()))

    async def open(self) -> "SphinxStream":
        if not self.workers:  # closed, then used again (the backend starts them when the model loads)
            self.start()
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
