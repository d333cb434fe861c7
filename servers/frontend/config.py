"""The endpoints the frontend was given, read from environment variables (pure, no I/O)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

# Aspire-style service discovery: services__<name>__<endpoint>__<index>.
ASR_DISCOVERY_VARS = ("services__asr__http__0", "services__asr__https__0")


@dataclass(frozen=True)
class Endpoints:
    """Where the ASR server (HTTP), the moshi backend and the translator's stream (WebSockets)
    live; None when absent."""

    asr_url: str | None = None
    moshi_ws_url: str | None = None
    mt_ws_url: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @property
    def asr_stream_url(self) -> str | None:
        """The ASR server's WS /stream (http -> ws, https -> wss)."""
        if not self.asr_url:
            return None
        return "ws" + self.asr_url[len("http"):] + "/stream" if self.asr_url.startswith("http") else None


def _clean(value: str | None, default_scheme: str) -> str | None:
    """Strip blanks and a trailing slash; give a bare host:port the default scheme."""
    value = (value or "").strip()
    if not value:
        return None
    if "://" not in value:
        value = f"{default_scheme}://{value}"
    return value.rstrip("/")


def endpoints_from_env(environ: Mapping[str, str] | None = None) -> Endpoints:
    """ASR_URL (else services__asr__http__0), MOSHI_WS_URL and MT_WS_URL, each None when unset or empty."""
    env = os.environ if environ is None else environ
    asr = _clean(env.get("ASR_URL"), "http")
    for name in ASR_DISCOVERY_VARS:
        asr = asr or _clean(env.get(name), "http")
    return Endpoints(asr_url=asr, moshi_ws_url=_clean(env.get("MOSHI_WS_URL"), "ws"),
                     mt_ws_url=_clean(env.get("MT_WS_URL"), "ws"))
