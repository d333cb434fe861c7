"""The server's settings, read once from environment variables (pure: no I/O beyond the mapping)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from ..envvars import SettingsError, positive

DEVICES = ("auto", "cpu", "cuda")  # auto: cuda when torch sees a CUDA device, else cpu
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")  # en, de, pt-BR, yue


@dataclass(frozen=True)
class Settings:
    model: str = "Qwen/Qwen3-4B"   # HF repo id ORG/NAME or a local directory
    model_revision: str | None = None
    device: str = "auto"
    source: str = "en"              # defaults for requests that name no languages
    target: str = "de"
    max_chars: int = 4000           # one request's text; a longer one is refused with 413
    max_new_tokens: int = 256


def language(value: str, what: str) -> str:
    """A language code such as `en` or `pt-BR`; SettingsError names `what` otherwise."""
    if not LANGUAGE.fullmatch(value):
        raise SettingsError(f"{what}={value!r} is not a language code such as 'en', 'de' or 'pt-BR'")
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
    )
