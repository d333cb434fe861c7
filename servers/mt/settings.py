"""The server's settings, read once from environment variables (pure: no I/O beyond the mapping)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from ..envvars import SettingsError, positive
from ..origins import Origins, origins_from_env
from .languages import known

DEVICES = ("auto", "cpu", "cuda")  # auto: cuda when torch sees a CUDA device, else cpu


@dataclass(frozen=True)
class Settings:
    model: str = "Qwen/Qwen3-4B"   # HF repo id ORG/NAME or a local directory
    model_revision: str | None = None
    device: str = "auto"
    source: str = "en"              # defaults for requests that name no languages
    target: str = "de"
    max_chars: int = 4000           # one request's text; a longer one is refused with 413
    max_new_tokens: int = 256
    origins: Origins = Origins()    # pages that may open /ws/translate besides clients without Origin
    ws_idle_seconds: float = 300.0  # a /ws/translate client silent this long is closed (4408)
    ws_max_sessions: int = 16       # /ws/translate sessions open at once; one more is refused (4429)
    ws_max_wall_seconds: float = 3900.0  # a session this long is closed (4413), however busy: asr's default


def language(value: object, what: str) -> str:
    """An ISO 639-1 code such as `en`, or one with a region or script (`pt-BR`); SettingsError names
    `what` otherwise (also for a value that is not a string: a JSON number, list or object)."""
    if known(value) is None:
        shown = repr(value) if isinstance(value, str) else f"a JSON {type(value).__name__} ({str(value)[:40]})"
        raise SettingsError(f"{what}={shown[:80]} is not an ISO 639-1 language code such as 'en', 'de' or "
                            "'pt-BR' (the list: docs/translate.md#languages)")
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read MT_* variables; raise SettingsError naming the variable and what it accepts."""
    env = os.environ if environ is None else environ
    device = env.get("MT_DEVICE", "").strip().lower() or "auto"
    if device not in DEVICES:
        raise SettingsError(f"MT_DEVICE={device!r} is not one of {', '.join(DEVICES)}")
    return Settings(
        model=env.get("MT_MODEL", "").strip() or Settings.model,
        model_revision=env.get("MT_MODEL_REVISION", "").strip() or None,
        device=device,
        source=language(env.get("MT_SOURCE", "").strip() or "en", "MT_SOURCE"),
        target=language(env.get("MT_TARGET", "").strip() or "de", "MT_TARGET"),
        max_chars=positive(env, "MT_MAX_CHARS", 4000),
        max_new_tokens=positive(env, "MT_MAX_NEW_TOKENS", 256),
        origins=origins_from_env(env),
        ws_idle_seconds=positive(env, "MT_WS_IDLE_SECONDS", 300.0, float),
        ws_max_sessions=positive(env, "MT_WS_MAX_SESSIONS", 16),
        ws_max_wall_seconds=positive(env, "MT_WS_MAX_WALL_SECONDS", 3900.0, float),
    )
