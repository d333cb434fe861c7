"""The speech recognisers behind one tiny interface: load() once, then transcribe(samples) -> text."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from . import chunking
from .models import ModelMissing, find_file, resolve_model
from .settings import Settings


class BackendUnavailable(Exception):
    """The backend cannot run here (package, model or device missing); the message says why."""


class BackendFailure(Exception):
    """The backend broke while transcribing (a worker died, an internal error)."""


class Backend:
    """One recogniser. `load` blocks (runs in a background thread); `transcribe` runs in a pool."""

    name = ""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model = settings.model_spec or "built-in"
        self.model_path: str | None = None
        self.pool: Executor | None = None

    def load(self) -> None:
        raise NotImplementedError

    async def transcribe(self, samples: np.ndarray) -> str:
        raise NotImplementedError

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        if self.pool is not None:  # wait: worker processes must be gone before the server exits
            self.pool.shutdown(wait=True, cancel_futures=True)


# --- pocketsphinx: GIL-bound, so one decoder per worker process ------------------------------------

_decoder = None  # each worker process's own pocketsphinx Decoder
_started = None  # a Barrier all workers meet at once loaded: "ready" means every worker is ready


def _sphinx_init(options: dict, server_pid: int, started) -> None:
    global _decoder, _started
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True).start()
    from pocketsphinx import Decoder
    _decoder = Decoder(loglevel="ERROR", samprate=16000, **options)
    _started = started


def _exit_with_server(server_pid: int) -> None:
    """A worker whose server died (SIGKILL, crash) would wait forever on its queue: exit instead."""
    while os.getppid() == server_pid:
        time.sleep(0.5)
    os._exit(0)


def _sphinx_decode(pcm: bytes) -> str:
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return hyp.hypstr.strip() if hyp else ""


def _sphinx_ping(_: int) -> int:
    _started.wait(timeout=120)  # blocks this worker until every worker has loaded its decoder
    return os.getpid()


class PocketsphinxBackend(Backend):
    name = "pocketsphinx"
    chunk_s = 20.0  # longer audio is cut at pauses; the pieces decode on all workers at once

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.model = settings.model or "en-us (built-in)"
        self.options: dict = {}
        self._restarting = asyncio.Lock()

    def load(self) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise BackendUnavailable(f"pocketsphinx is not installed in this env ({exc}); "
                                     "run `inv setup`") from exc
        if self.settings.model:  # a model dir of your own; else the wheel's defaults
            root = resolve_model(self.settings.model, self.settings.model_revision)
            self.options = _sphinx_files(root)
        else:
            root = Path(pocketsphinx.get_model_path()) / "en-us"
        self.model_path = str(root)
        self._start_pool()

    def _start_pool(self) -> None:
        workers, ctx = self.settings.workers, multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_sphinx_init,
                                        initargs=(self.options, os.getpid(), ctx.Barrier(workers)))
        try:  # one ping per worker, each held at the barrier: every worker starts and loads now
            list(self.pool.map(_sphinx_ping, range(workers)))
        except BrokenProcessPool as exc:
            raise BackendUnavailable(f"pocketsphinx could not load the model in {self.model_path} "
                                     "(the worker's error is in the server log)") from exc

    async def transcribe(self, samples: np.ndarray) -> str:
        pieces = await asyncio.to_thread(chunking.chunks, samples, self.chunk_s)
        pcms = [(np.clip(p, -1.0, 1.0) * 32767).astype("<i2").tobytes() for p in pieces]
        for attempt in (1, 2):  # a worker that died (killed, out of memory) costs one retry
            pool = self.pool
            try:
                texts = await asyncio.gather(*(self._run(_sphinx_decode, pcm) for pcm in pcms))
                return " ".join(t for t in texts if t)
            except BrokenProcessPool as exc:
                await self._restart(pool)
                if attempt == 2:
                    raise BackendFailure("a pocketsphinx worker died twice decoding this audio; "
                                         "the workers were restarted") from exc

    async def _restart(self, broken: Executor) -> None:
        """Replace a broken pool with fresh workers, once however many requests saw it break."""
        async with self._restarting:
            if self.pool is broken:
                broken.shutdown(wait=True, cancel_futures=True)
                try:
                    await asyncio.to_thread(self._start_pool)
                except BackendUnavailable as exc:
                    raise BackendFailure(str(exc)) from exc


def _sphinx_files(root: Path) -> dict:
    """Decoder options for a pocketsphinx model dir: acoustic model dir, language model, dictionary."""
    mdef = find_file(root, "mdef")
    lms = [p for p in sorted(root.rglob("*.lm.bin")) if "phone" not in p.name]  # not a phone LM
    lm, dic = (lms[0] if lms else None), find_file(root, "*.dict")
    if mdef is None or lm is None or dic is None:
        raise ModelMissing(f"{root} is not a pocketsphinx model dir: it needs an acoustic model "
                           "(a dir with mdef), a *.lm.bin language model and a *.dict dictionary")
    return {"hmm": str(mdef.parent), "lm": str(lm), "dict": str(dic)}


# --- faster-whisper: CTranslate2 releases the GIL, so threads share one model ----------------------

class WhisperBackend(Backend):
    name = "whisper"

    def load(self) -> None:
        try:
            from faster_whisper import WhisperModel
            import ctranslate2
        except ImportError as exc:
            raise BackendUnavailable(f"faster-whisper is not installed in this env ({exc}); "
                                     "run `inv setup`") from exc
        s = self.settings
        if s.device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
            raise BackendUnavailable("ASR_DEVICE=cuda but CTranslate2 sees no CUDA device "
                                     f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        root = resolve_model(s.model_spec, s.model_revision)
        if find_file(root, "model.bin") is None:
            raise ModelMissing(f"{root} holds no model.bin: the whisper backend needs a "
                               "faster-whisper (CTranslate2) model, e.g. Systran/faster-whisper-base")
        self.model_path = str(find_file(root, "model.bin").parent)
        compute = s.compute_type or ("float16" if s.device == "cuda" else "int8")
        threads = max(1, (os.cpu_count() or 1) // s.workers)
        self.whisper = WhisperModel(self.model_path, device=s.device, compute_type=compute,
                                    cpu_threads=threads, num_workers=s.workers)
        self.pool = ThreadPoolExecutor(s.workers, thread_name_prefix="whisper")

    def _decode(self, samples: np.ndarray) -> str:
        segments, _info = self.whisper.transcribe(samples, language=self.settings.language,
                                                  beam_size=5)
        return " ".join(seg.text.strip() for seg in segments).strip()

    async def transcribe(self, samples: np.ndarray) -> str:
        return await self._run(self._decode, samples)


# --- NVIDIA NeMo: ASRModel from a .nemo file (restore_from) or a pretrained name -------------------

NEMO_MISSING = ("NVIDIA NeMo is not installed in this env (import nemo.collections.asr failed: {exc}). "
                "The asr env's lock ships pocketsphinx and faster-whisper only: add "
                "nemo_toolkit[asr] to envs/asr/requirements.in, then `inv lock` and `inv setup`; "
                "or set ASR_BACKEND=pocketsphinx or whisper")


class NemoBackend(Backend):
    name = "nemo"

    def load(self) -> None:
        try:
            import nemo.collections.asr as nemo_asr
        except ImportError as exc:
            raise BackendUnavailable(NEMO_MISSING.format(exc=exc)) from exc
        s = self.settings
        root = resolve_model(s.model_spec, s.model_revision)
        checkpoint = find_file(root, "*.nemo")
        if checkpoint is None:
            raise ModelMissing(f"{root} holds no .nemo checkpoint for ASRModel.restore_from")
        self.model_path = str(checkpoint)
        self.asr = nemo_asr.models.ASRModel.restore_from(self.model_path, map_location=s.device)
        self.asr.eval()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="nemo")  # torch uses every core itself

    def _decode(self, samples: np.ndarray) -> str:
        result = self.asr.transcribe([samples], batch_size=1, verbose=False)
        if isinstance(result, tuple):  # some models return (best, all) hypotheses
            result = result[0]
        first = result[0]
        return str(getattr(first, "text", first)).strip()

    async def transcribe(self, samples: np.ndarray) -> str:
        return await self._run(self._decode, samples)


BACKENDS = {"pocketsphinx": PocketsphinxBackend, "whisper": WhisperBackend, "nemo": NemoBackend}


def make_backend(settings: Settings) -> Backend:
    return BACKENDS[settings.backend](settings)
