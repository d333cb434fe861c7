"""The heavy model objects, built once per process; `preload()` is the warm reloader's entry point.

With `reload = "warm"` and `preload = "servers.asr.loaders:preload"` in the stack, duplex's warm
reloader calls `preload()` once, before it imports the app: the Whisper model or the pocketsphinx
decoder pool is built here and kept in `_preloaded` while edits to the rest of the server (routes,
audio, backends) are served by re-importing the app around it. The backends ask this module for
their model; without a preload (plain uvicorn) they get a fresh one that they own.

Everything this module imports (settings, models) is "pinned" by the warm reloader: an edit to one
of these files restarts the server fully, because the objects built here hold their code.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .settings import Settings, settings_from_env

log = logging.getLogger("uvicorn.error").getChild("asr")

_preloaded: dict[tuple, object] = {}  # key -> the model object preload() built
_settings: Settings | None = None  # the settings preload() built them for


def warm(settings: Settings | None) -> bool:
    """True when preload() built this configuration's model: loading it is then instant."""
    return settings is not None and settings == _settings and bool(_preloaded)


# --- faster-whisper --------------------------------------------------------------------------------

def whisper_model(settings: Settings, model_path: str):
    """The preloaded WhisperModel for these settings, else a new one."""
    key = _whisper_key(settings, model_path)
    if key in _preloaded:
        return _preloaded[key]
    from faster_whisper import WhisperModel
    device, compute, threads = key[2], key[3], key[4]
    return WhisperModel(model_path, device=device, compute_type=compute,
                        cpu_threads=threads, num_workers=settings.workers)


cuda_warning: str | None = None  # why `auto` chose the CPU on a machine with a GPU (shown by /health)


def whisper_device(settings: Settings, *, cuda_devices=None, libs=None) -> str:
    """ASR_DEVICE with `auto` resolved: cuda when CTranslate2 sees a CUDA device and the cuBLAS and
    cuDNN it loads are there (servers/asr/cudalibs.py), else cpu (with a warning when a GPU was
    there but the libraries were not). `cuda_devices`, `libs`: stand-ins for tests."""
    global cuda_warning
    if settings.device != "auto":
        return settings.device
    if cuda_devices is None:
        import ctranslate2
        cuda_devices = ctranslate2.get_cuda_device_count
    if cuda_devices() <= 0:
        return "cpu"
    from . import cudalibs
    missing, _found = (libs or cudalibs.ensure)()
    if missing:
        cuda_warning = (f"a CUDA device is visible but {cudalibs.missing_text(missing)}: transcribing on the CPU; "
                        f"for the GPU, {cudalibs.FIX.split(', or set')[0]}")
        log.warning("asr: %s", cuda_warning)
        return "cpu"
    return "cuda"


def _whisper_key(s: Settings, model_path: str) -> tuple:
    device = whisper_device(s)  # the same key whether or not `auto` was resolved already
    compute = s.compute_type or ("float16" if device == "cuda" else "int8")
    return ("whisper", model_path, device, compute, max(1, (os.cpu_count() or 1) // s.workers),
            s.workers)


# --- NVIDIA NeMo ----------------------------------------------------------------------------------

def nemo_device(settings: Settings) -> str:
    """ASR_DEVICE with `auto` resolved: cuda when torch sees a CUDA device, else cpu."""
    if settings.device != "auto":
        return settings.device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def nemo_model(settings: Settings, checkpoint: str):
    """The preloaded NeMo ASRModel for this checkpoint and device, else one restored now."""
    key = ("nemo", checkpoint, nemo_device(settings))
    if key in _preloaded:
        return _preloaded[key]
    from nemo.collections.asr.models import ASRModel
    model = ASRModel.restore_from(checkpoint, map_location=key[2])
    model.eval()
    return model


# --- pocketsphinx: GIL-bound, so one decoder per worker process ------------------------------------

_decoder = None  # each worker process's own pocketsphinx Decoder
_started = None  # a Barrier all workers meet at once loaded: "ready" means every worker is ready


def _sphinx_init(options: dict, server_pid: int, started) -> None:
    global _decoder, _started
    name_process("asr-batch")
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True).start()
    from pocketsphinx import Decoder
    _decoder = Decoder(loglevel="ERROR", samprate=16000, **options)
    _started = started


def name_process(name: str) -> None:
    """Name this worker process (Linux: `ps -o comm`, top, /proc/PID/comm), so that a batch worker
    and a streaming worker, both "python" otherwise, can be told apart."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass  # not Linux: the name is a convenience


def _exit_with_server(server_pid: int) -> None:
    """A worker whose server died (SIGKILL, crash) would wait forever on its queue: exit instead."""
    while os.getppid() == server_pid:
        time.sleep(0.5)
    os._exit(0)


def sphinx_decode(pcm: bytes) -> str:
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return hyp.hypstr.strip() if hyp else ""


def _sphinx_ping(_: int) -> int:
    _started.wait(timeout=120)  # blocks this worker until every worker has loaded its decoder
    return os.getpid()


def sphinx_pool(settings: Settings, options: dict,
                broken: ProcessPoolExecutor | None = None) -> tuple[ProcessPoolExecutor, bool]:
    """(pool, owned): the preloaded pool (owned by this module; replaced here when `broken`), else
    a new pool the caller owns and shuts down. Raises BrokenProcessPool when workers cannot load."""
    key = ("pocketsphinx", tuple(sorted(options.items())), settings.workers)
    shared = _preloaded.get(key)
    if shared is None:
        return start_sphinx_pool(options, settings.workers), True
    if shared is broken:
        broken.shutdown(wait=True, cancel_futures=True)
        shared = _preloaded[key] = start_sphinx_pool(options, settings.workers)
    return shared, False


def sphinx_streams(settings: Settings, options: dict):
    """(workers, owned): the live-streaming workers (stream_sphinx.py), started (their warm-up goes
    on while the caller does more: `start(wait=...)` waits for it); the preloaded ones when
    preload() built them (owned by this module), else new ones the caller owns and closes."""
    from .stream_sphinx import SphinxWorkers  # its workers import this module: imported here, not at the top
    key = ("pocketsphinx-streams", tuple(sorted(options.items())), settings.workers)
    shared = _preloaded.get(key)
    if shared is not None:
        return shared, False
    workers = SphinxWorkers(options, settings.workers)
    workers.start()
    return workers, True


def start_sphinx_pool(options: dict, workers: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_sphinx_init,
                               initargs=(options, os.getpid(), ctx.Barrier(workers)))
    try:  # one ping per worker, each held at the barrier: every worker starts and loads now
        list(pool.map(_sphinx_ping, range(workers)))
    except BrokenProcessPool:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return pool


def sphinx_options(settings: Settings) -> tuple[dict, str]:
    """Decoder options and the model dir: a model dir of your own (ASR_MODEL), else the wheel's."""
    from pathlib import Path

    import pocketsphinx

    from .models import resolve_model, sphinx_files
    if settings.model:
        root = resolve_model(settings.model, settings.model_revision)
        return sphinx_files(root), str(root)
    return {}, str(Path(pocketsphinx.get_model_path()) / "en-us")


# --- the warm reloader's entry point ---------------------------------------------------------------

def preload():
    """Build the configured backend's model once (ASR_* variables, like the app); return release().

    A failure is logged and left for the app to report through /health, as it would without a
    preload: the app then loads the model itself.
    """
    global _settings
    started = time.monotonic()
    settings = settings_from_env()
    try:
        if settings.backend == "whisper":
            from .models import find_file, resolve_model
            root = resolve_model(settings.model_spec, settings.model_revision)
            found = find_file(root, "model.bin")
            if found is None:
                return release
            path = str(found.parent)
            _preloaded[_whisper_key(settings, path)] = whisper_model(settings, path)
        elif settings.backend == "pocketsphinx":
            options, _root = sphinx_options(settings)
            streams, _owned = sphinx_streams(settings, options)
            pool, _owned = sphinx_pool(settings, options)
            streams.start(wait=120)
            _preloaded[("pocketsphinx", tuple(sorted(options.items())), settings.workers)] = pool
            _preloaded[("pocketsphinx-streams", tuple(sorted(options.items())), settings.workers)] = streams
        elif settings.backend == "nemo":
            from .models import find_file, resolve_model
            found = find_file(resolve_model(settings.model_spec, settings.model_revision), "*.nemo")
            if found is None:
                return release
            _preloaded[("nemo", str(found), nemo_device(settings))] = nemo_model(settings, str(found))
    except Exception as exc:  # noqa: BLE001 - the app reports it properly at its own load
        log.warning("preload of the %s model failed (%s: %s); the app loads it itself",
                    settings.backend, type(exc).__name__, exc)
        return release
    _settings = settings
    log.info("preloaded the %s model in %.2f s", settings.backend, time.monotonic() - started)
    return release


def release() -> None:
    """Free what preload() built (the warm reloader calls it before the server process exits)."""
    global _settings
    for obj in _preloaded.values():
        if isinstance(obj, ProcessPoolExecutor):
            obj.shutdown(wait=True, cancel_futures=True)
        elif type(obj).__name__ == "SphinxWorkers":  # not imported here unless preload() built them
            obj.close()
    _preloaded.clear()
    _settings = None
