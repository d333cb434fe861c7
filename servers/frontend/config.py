"""The endpoints the frontend was given, read from environment variables (pure, no I/O).

Each service may run as several replicas: ASR_URL, MOSHI_WS_URL and MT_WS_URL each take a
comma-separated list, one URL per replica (asr's also from Aspire's services__asr__http__0, __1, ...),
and MOSHI_SESSIONS, ASR_SESSIONS, MT_SESSIONS say how many sessions one replica takes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..envvars import SettingsError, positive

# Aspire-style service discovery: services__<name>__<endpoint>__<index>, one index per replica.
ASR_DISCOVERY = re.compile(r"services__asr__(https?)__(\d+)")

# Sessions one replica takes at once: moshi serves one conversation per process; asr's is its
# ASR_STREAM_MAX_SESSIONS default, mt's a few per sentence-sized request stream.
SESSION_DEFAULTS = {"MOSHI_SESSIONS": 1, "ASR_SESSIONS": 8, "MT_SESSIONS": 16}


@dataclass(frozen=True)
class Endpoints:
    """Where each replica of the ASR server (HTTP), the moshi backend and the translator's stream
    (WebSockets) lives, empty when absent; and how many sessions one replica of each takes."""

    asr_urls: tuple[str, ...] = ()
    moshi_ws_urls: tuple[str, ...] = ()
    mt_ws_urls: tuple[str, ...] = ()
    asr_sessions: int = SESSION_DEFAULTS["ASR_SESSIONS"]
    moshi_sessions: int = SESSION_DEFAULTS["MOSHI_SESSIONS"]
    mt_sessions: int = SESSION_DEFAULTS["MT_SESSIONS"]
    problems: tuple[str, ...] = ()  # settings that could not be used (the default stood in)

    # The first replica under the keys /health and /api/config always had (pages, inv smoke).
    @property
    def asr_url(self) -> str | None:
        return self.asr_urls[0] if self.asr_urls else None

    @property
    def moshi_ws_url(self) -> str | None:
        return self.moshi_ws_urls[0] if self.moshi_ws_urls else None

    @property
    def mt_ws_url(self) -> str | None:
        return self.mt_ws_urls[0] if self.mt_ws_urls else None

    @property
    def asr_stream_url(self) -> str | None:
        return stream_url(self.asr_url) if self.asr_url else None

    def as_dict(self) -> dict[str, str | None]:
        return {"asr_url": self.asr_url, "moshi_ws_url": self.moshi_ws_url, "mt_ws_url": self.mt_ws_url}


def stream_url(asr_url: str) -> str | None:
    """An ASR server's WS /stream (http -> ws, https -> wss)."""
    return "ws" + asr_url[len("http"):] + "/stream" if asr_url.startswith("http") else None


def _clean(value: str | None, default_scheme: str) -> str | None:
    """Strip blanks and a trailing slash; give a bare host:port the default scheme."""
    value = (value or "").strip()
    if not value:
        return None
    if "://" not in value:
        value = f"{default_scheme}://{value}"
    return value.rstrip("/")


def _urls(value: str | None, default_scheme: str) -> tuple[str, ...]:
    """A comma-separated list of URLs, each cleaned; blanks and repeats dropped, order kept."""
    cleaned = (_clean(part, default_scheme) for part in (value or "").split(","))
    return tuple(dict.fromkeys(url for url in cleaned if url))


def _discovered_asr(env: Mapping[str, str]) -> tuple[str, ...]:
    """services__asr__http__N in index order (else the https ones): Aspire's list of asr replicas."""
    found: dict[str, list[tuple[int, str]]] = {"http": [], "https": []}
    for name, value in env.items():
        match = ASR_DISCOVERY.fullmatch(name)
        if match:
            found[match[1]].append((int(match[2]), value))
    listed = sorted(found["http"]) or sorted(found["https"])
    return _urls(",".join(value for _, value in listed), "http")


def endpoints_from_env(environ: Mapping[str, str] | None = None) -> Endpoints:
    """ASR_URL (else services__asr__http__N), MOSHI_WS_URL and MT_WS_URL, each empty when unset or
    empty; the *_SESSIONS counts, the default (and a line in `problems`) for a value that is not one."""
    env = os.environ if environ is None else environ
    sessions, problems = {}, []
    for name, default in SESSION_DEFAULTS.items():
        try:
            sessions[name] = positive(env, name, default)
        except SettingsError as exc:
            sessions[name] = default
            problems.append(f"{exc}; using {default}")
    return Endpoints(asr_urls=_urls(env.get("ASR_URL"), "http") or _discovered_asr(env),
                     moshi_ws_urls=_urls(env.get("MOSHI_WS_URL"), "ws"),
                     mt_ws_urls=_urls(env.get("MT_WS_URL"), "ws"),
                     asr_sessions=sessions["ASR_SESSIONS"], moshi_sessions=sessions["MOSHI_SESSIONS"],
                     mt_sessions=sessions["MT_SESSIONS"], problems=tuple(problems))
