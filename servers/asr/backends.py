"""The speech recognisers behind one tiny interface: load() once, then transcribe(samples) -> text."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from . import chunking, loaders
from .models import ModelMissing, find_file, resolve_model
from .settings import Settings
from .stream_protocol import CANNOT_STREAM, StreamError


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
        self.precision: str | None = None  # what the weights compute in, once loaded (/health)
        self.architecture: str | None = None  # the model's class, where the backend has several
        self.pool: Executor | None = None
        self.owns_pool = True  # False for a pool preloaded for the warm reloader (loaders.py)

    def load(self) -> None:
        raise NotImplementedError

    async def transcribe(self, samples: np.ndarray) -> str:
        raise NotImplementedError

    async def open_stream(self, language: str | None):
        """A live-transcription session (feed/finish/close, see streaming.py)."""
        raise StreamError(CANNOT_STREAM, f"the {self.name} backend cannot stream; use POST /transcribe")

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        if self.pool is not None and self.owns_pool:  # wait: workers must be gone before the server exits
            self.pool.shutdown(wait=True, cancel_futures=True)


# --- pocketsphinx: GIL-bound, so one decoder per worker process (the workers run loaders.py) --

class PocketsphinxBackend(Backend):
    name = "pocketsphinx"
    chunk_s = 20.0  # longer audio is cut at pauses; the pieces decode on all workers at once

    def __init__(self, settings: Settings):
        super().__init__(dataclasses.replace(settings, device="cpu"))  # CPU only, whatever ASR_DEVICE says
        self.model = settings.model or "en-us (built-in)"
        self.options: dict = {}
        self._restarting = asyncio.Lock()

    def load(self) -> None:
        try:
            import pocketsphinx  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(f"pocketsphinx is not installed in this env ({exc}); "
                                     "run `inv setup`") from exc
        # a model dir of your own (ASR_MODEL), else the wheel's defaults
        self.options, self.model_path = loaders.sphinx_options(self.settings)
        # the streaming workers warm up while the batch pool starts; ready once both are
        self.streams, self.owns_streams = loaders.sphinx_streams(self.settings, self.options)
        self._start_pool()
        try:
            self.streams.start(wait=120)
        except BrokenProcessPool as exc:
            raise BackendUnavailable(f"pocketsphinx could not load the model in {self.model_path} for "
                                     "streaming (the worker's error is in the server log)") from exc

    async def open_stream(self, language: str | None):
        return await self.streams.open()

    def close(self) -> None:
        if getattr(self, "streams", None) is not None and self.owns_streams:
            self.streams.close()
        super().close()

    def _start_pool(self, broken: Executor | None = None) -> None:
        """The preloaded pool (warm reload), else a fresh one this backend owns."""
        try:
            self.pool, self.owns_pool = loaders.sphinx_pool(self.settings, self.options, broken)
        except BrokenProcessPool as exc:
            raise BackendUnavailable(f"pocketsphinx could not load the model in {self.model_path} "
                                     "(the worker's error is in the server log)") from exc

    async def transcribe(self, samples: np.ndarray) -> str:
        pieces = await asyncio.to_thread(chunking.chunks, samples, self.chunk_s)
        pcms = [(np.clip(p, -1.0, 1.0) * 32767).astype("<i2").tobytes() for p in pieces]
        for attempt in (1, 2):  # a worker that died (killed, out of memory) costs one retry
            pool = self.pool
            try:
                texts = await asyncio.gather(*(self._run(loaders.sphinx_decode, pcm) for pcm in pcms))
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
                if self.owns_pool:
                    broken.shutdown(wait=True, cancel_futures=True)
                try:
                    await asyncio.to_thread(self._start_pool, broken)
                except BackendUnavailable as exc:
                    raise BackendFailure(str(exc)) from exc


# --- faster-whisper: CTranslate2 releases the GIL, so threads share one model ----------------------

class WhisperBackend(Backend):
    name = "whisper"

    def load(self) -> None:
        try:
            import ctranslate2
            import faster_whisper  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(f"faster-whisper is not installed in this env ({exc}); "
                                     "run `inv setup`") from exc
        s = self.settings
        cuda = ctranslate2.get_cuda_device_count() > 0
        if s.device == "cuda" and not cuda:
            raise BackendUnavailable("ASR_DEVICE=cuda but CTranslate2 sees no CUDA device "
                                     f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        if s.device == "cuda":  # asked for explicitly: missing libraries are an error now, not at the first request
            from . import cudalibs
            missing, _ = cudalibs.ensure()
            if missing:
                raise BackendUnavailable(f"ASR_DEVICE=cuda but {cudalibs.missing_text(missing)}; {cudalibs.FIX}")
        if s.device == "auto":  # a container given a GPU uses it; a laptop runs on the CPU
            s = self.settings = dataclasses.replace(s, device=loaders.whisper_device(s))
        root = resolve_model(s.model_spec, s.model_revision)
        if find_file(root, "model.bin") is None:
            raise ModelMissing(f"{root} holds no model.bin: the whisper backend needs a "
                               "faster-whisper (CTranslate2) model, e.g. Systran/faster-whisper-base")
        self.model_path = str(find_file(root, "model.bin").parent)
        self.whisper = loaders.whisper_model(s, self.model_path)  # preloaded (warm reload) or new
        self.precision = self.whisper.model.compute_type
        self.pool = ThreadPoolExecutor(s.workers, thread_name_prefix="whisper")

    def _decode(self, samples: np.ndarray) -> str:
        segments, _info = self.whisper.transcribe(samples, language=self.settings.language,
                                                  beam_size=5)
        return " ".join(seg.text.strip() for seg in segments).strip()

    async def transcribe(self, samples: np.ndarray) -> str:
        return await self._run(self._decode, samples)

    async def open_stream(self, language: str | None):
        from .stream_utterances import HANGOVER_S, UtteranceStream
        session = {"language": language or self.settings.language}

        def decode(samples: np.ndarray, prompt: str, last: bool):
            # greedy with word times while the utterance grows (redone each second); the closing
            # decode uses the batch endpoint's beam and no word times, so finals read as batch does.
            # One temperature, no fallback: on noisy speech whisper's fallback re-decodes up to five
            # times, sampling - `inv eval` saw finals 6-11 s after the speech, a different text each
            # run; at 0.0 alone the same set's p95 was 1.0 s (max 3.2) for 2 points of WER (docs/eval.md)
            options = dict(language=session["language"], beam_size=5 if last else 1, word_timestamps=not last,
                           without_timestamps=last, condition_on_previous_text=False,
                           initial_prompt=prompt or None, vad_filter=False, temperature=0.0)
            if session["language"]:
                found = window_decode(self.whisper, samples, options)
                if found is not None:
                    return found
            segments, info = self.whisper.transcribe(samples, **options)
            segments = list(segments)
            session["language"] = session["language"] or info.language  # detected once per session
            if last:
                return " ".join(seg.text.strip() for seg in segments).strip()
            return [(w.word, w.start, w.end) for seg in segments for w in (seg.words or ())]

        return UtteranceStream(self._run, decode, words=True, mode="local-agreement", hangover_s=HANGOVER_S)


# Whisper's encoder always reads 30 s (the audio padded with silence), and on a CPU it is most of a
# decode's cost: ~1.2 CPU s of the 1.3 s a 3 s utterance took here. A live utterance is a few
# seconds, so the streaming decodes give the encoder a shorter window: at least WINDOW_FRAMES and
# MARGIN_FRAMES of silence after the audio (without that margin whisper repeats itself: a 3 s
# phrase in a 3-4 s window came out two to a hundred times). 10 s with 5 s of margin: 0.35 CPU s
# instead of 1.23 on the same 24 flite phrases and passages, and the same text (WER 0.022 vs 0.030).
WINDOW_FRAMES = 1000  # 10 ms mel frames
MARGIN_FRAMES = 500
FULL_FRAMES = 3000    # whisper's own window


def window_decode(model, samples: np.ndarray, options: dict):
    """One decode of `samples` as `model.transcribe(samples, **options)` would (text when
    without_timestamps, else [(word, start_s, end_s)]), with the encoder given a window just long
    enough; None when the audio needs whisper's whole window (the caller transcribes then)."""
    from faster_whisper.tokenizer import Tokenizer
    features = model.feature_extractor(samples)
    content = features.shape[-1] - 1  # as faster-whisper counts it
    frames = max(WINDOW_FRAMES, content + MARGIN_FRAMES)
    if frames >= FULL_FRAMES or content <= 0:
        return None
    # the options exactly as transcribe() resolves them; the generator it returns is lazy and dropped
    _, info = model.transcribe(np.zeros(1600, np.float32), **options)
    opts = info.transcription_options
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                          language=options["language"])
    encoder_output = model.encode(np.pad(features[:, :content], ((0, 0), (0, frames - content))))
    previous = tokenizer.encode(" " + opts.initial_prompt.strip()) if opts.initial_prompt else []
    prompt = model.get_prompt(tokenizer, previous, without_timestamps=opts.without_timestamps)
    result, avg_logprob, _temperature, _ratio = model.generate_with_fallback(encoder_output, prompt, tokenizer, opts)
    if (opts.no_speech_threshold is not None and result.no_speech_prob > opts.no_speech_threshold
            and (opts.log_prob_threshold is None or avg_logprob <= opts.log_prob_threshold)):
        return "" if opts.without_timestamps else []  # silence, as transcribe() skips it
    tokens = result.sequences_ids[0]
    seconds = len(samples) / 16000
    if opts.without_timestamps:
        text = tokenizer.decode([t for t in tokens if t < tokenizer.eot]).strip()
        return None if _runaway(text, seconds) else text
    segments, _seek, _single = model._split_segments_by_timestamps(
        tokenizer=tokenizer, tokens=tokens, time_offset=0.0, segment_size=content,
        segment_duration=content * model.feature_extractor.time_per_frame, seek=0)
    rest = tokens[sum(len(s["tokens"]) for s in segments):]  # the unfinished segment: transcribe() would
    if any(t < tokenizer.eot for t in rest):                   # decode it in another 30 s window; a partial shows it
        start = segments[-1]["end"] if segments else 0.0
        segments.append(dict(seek=0, start=start, end=content * model.feature_extractor.time_per_frame, tokens=rest))
    model.add_word_timestamps([segments], tokenizer, encoder_output, content, opts.prepend_punctuations,
                              opts.append_punctuations, last_speech_timestamp=0.0)
    words = [(w["word"], w["start"], w["end"]) for s in segments for w in s.get("words") or ()]
    return None if _runaway("".join(w for w, *_ in words), seconds) else words


def _runaway(text: str, seconds: float) -> bool:
    """More text than anyone says in that time: whisper looping. The whole window decodes it again."""
    return len(text) > 30 * seconds + 40


# --- NVIDIA NeMo: ASRModel from a .nemo file (restore_from) ---------------------------------------

NEMO_MISSING = ("NVIDIA NeMo is not installed in this env (import nemo.collections.asr failed: {exc}). "
                "The asr env ships pocketsphinx and faster-whisper only: run the asr service in the "
                "asr-nemo env, which adds nemo_toolkit[asr] and torch (env = \"asr-nemo\" in stack.toml, "
                "then `inv setup --env asr-nemo`; docs/servers.md#nemo), or set ASR_BACKEND=pocketsphinx "
                "or whisper")
NEMO_PRECISIONS = ("float32", "bfloat16", "float16")


class NemoBackend(Backend):
    name = "nemo"

    def load(self) -> None:
        try:
            import nemo.collections.asr  # noqa: F401
            import torch
        except ImportError as exc:
            raise BackendUnavailable(NEMO_MISSING.format(exc=exc)) from exc
        s = self.settings
        if s.device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("ASR_DEVICE=cuda but torch sees no CUDA device "
                                     f"(torch {torch.__version__}; CUDA_VISIBLE_DEVICES="
                                     f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        precision = s.compute_type or "float32"
        if precision not in NEMO_PRECISIONS:
            raise BackendUnavailable(f"ASR_COMPUTE_TYPE={precision!r} is not one of "
                                     f"{', '.join(NEMO_PRECISIONS)} (the nemo backend's precisions)")
        if s.device == "auto":
            s = self.settings = dataclasses.replace(s, device=loaders.nemo_device(s))
        root = resolve_model(s.model_spec, s.model_revision)
        checkpoint = find_file(root, "*.nemo")
        if checkpoint is None:
            raise ModelMissing(f"{root} holds no .nemo checkpoint for ASRModel.restore_from")
        self.model_path = str(checkpoint)
        self.asr = loaders.nemo_model(s, self.model_path)  # preloaded (warm reload) or restored now
        self.architecture = type(self.asr).__name__
        self.precision = precision
        self.dtype = getattr(torch, precision)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="nemo")  # torch uses every core itself

    def _decode(self, samples: np.ndarray) -> str:
        import torch
        device = "cuda" if self.settings.device == "cuda" else "cpu"
        with torch.inference_mode(), torch.autocast(device, dtype=self.dtype, enabled=self.precision != "float32"):
            result = self.asr.transcribe([samples], batch_size=1, verbose=False)
        if isinstance(result, tuple):  # some models return (best, all) hypotheses
            result = result[0]
        first = result[0]
        return str(getattr(first, "text", first)).strip()

    async def transcribe(self, samples: np.ndarray) -> str:
        return await self._run(self._decode, samples)

    async def open_stream(self, language: str | None):
        from .stream_utterances import UtteranceStream

        def text(samples: np.ndarray, _prompt: str, _last: bool) -> str:
            return self._decode(samples) if len(samples) >= 1600 else ""  # under 0.1 s: nothing to say

        return UtteranceStream(self._run, text, words=False, mode="chunked")


BACKENDS = {"pocketsphinx": PocketsphinxBackend, "whisper": WhisperBackend, "nemo": NemoBackend}


def make_backend(settings: Settings) -> Backend:
    return BACKENDS[settings.backend](settings)
