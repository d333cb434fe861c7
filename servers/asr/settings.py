"""The server's settings, read once from environment variables (pure: no I/O beyond the mapping)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Mapping

from ..envvars import SettingsError, positive
from ..origins import Origins, origins_from_env

BACKENDS = ("pocketsphinx", "whisper", "nemo")
DEVICES = ("auto", "cpu", "cuda")  # auto: cuda when the backend sees a CUDA device, else cpu

# What each backend loads when ASR_MODEL is unset.
DEFAULT_MODELS = {
    "pocketsphinx": "",  # the English model inside the pocketsphinx wheel
    "whisper": "Systran/faster-whisper-base",
    "nemo": "nvidia/parakeet-tdt-0.6b-v2",
}


@dataclass(frozen=True)
class Settings:
    backend: str = "pocketsphinx"
    model: str = ""              # HF repo id ORG/NAME, a local path, or "" for the backend default
    model_revision: str | None = None
    device: str = "auto"
    compute_type: str = ""       # whisper: "" picks int8 on CPU, float16 on CUDA
    language: str | None = None  # whisper / nemo language hint; None lets whisper detect it
    workers: int = 1
    max_seconds: float = 600.0
    max_bytes: int = 50 * 1024 * 1024
    stream_max_sessions: int = 8        # WS /stream sessions open at once
    stream_max_seconds: float = 3600.0  # audio one stream may carry
    stream_idle_seconds: float = 10.0   # a client silent this long has stalled: its session ends
    stream_max_lag_seconds: float = 30.0  # a client this far behind real time (trickling) has stalled too
    stream_max_wall_seconds: float = 3900.0  # wall time one stream may last (default: the audio limit + 300 s)
    origins: Origins = Origins()        # pages that may open /stream besides clients without Origin

    @property
    def model_spec(self) -> str:
        return self.model or DEFAULT_MODELS[self.backend]

    def as_dict(self) -> dict:
        return asdict(self)


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ASR_* variables; raise SettingsError naming the variable and the accepted values."""
    env = os.environ if environ is None else environ
    backend = env.get("ASR_BACKEND", "").strip().lower() or "pocketsphinx"
    if backend not in BACKENDS:
        raise SettingsError(f"ASR_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    device = env.get("ASR_DEVICE", "").strip().lower() or "auto"
    if device not in DEVICES:
        raise SettingsError(f"ASR_DEVICE={device!r} is not one of {', '.join(DEVICES)}")
    default_workers = min(2, os.cpu_count() or 1)
    max_s = positive(env, "ASR_STREAM_MAX_SECONDS", 3600.0, float)
    return Settings(
        backend=backend,
        model=env.get("ASR_MODEL", "").strip(),
        model_revision=env.get("ASR_MODEL_REVISION", "").strip() or None,
        device=device,
        compute_type=env.get("ASR_COMPUTE_TYPE", "").strip(),
        language=env.get("ASR_LANGUAGE", "").strip() or None,
        workers=positive(env, "ASR_WORKERS", default_workers),
        max_seconds=positive(env, "ASR_MAX_SECONDS", 600.0, float),
        max_bytes=positive(env, "ASR_MAX_BYTES", 50 * 1024 * 1024),
        stream_max_sessions=positive(env, "ASR_STREAM_MAX_SESSIONS", 8),
        stream_max_seconds=max_s,
        stream_idle_seconds=positive(env, "ASR_STREAM_IDLE_SECONDS", 10.0, float),
        stream_max_lag_seconds=positive(env, "ASR_STREAM_MAX_LAG_SECONDS", 30.0, float),
        stream_max_wall_seconds=positive(env, "ASR_STREAM_MAX_WALL_SECONDS", max_s + 300.0, float),
        origins=origins_from_env(env),
    )
