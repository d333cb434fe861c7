"""The streaming contract of WS /stream, pure: the start message, the events, the close codes.

The shape follows Speechmatics' real-time API (a JSON start message naming `pcm_s16le` and the
sample rate, then binary audio, then an end-of-stream message) with Deepgram/AssemblyAI-style
`type` fields; docs/streaming.md is the reference for clients and for servers/mt, which consumes
`final` events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PROTOCOL = "duplex-asr-stream/1"
SAMPLE_RATE = 16_000          # what every backend decodes; other rates are resampled (soxr)
MIN_RATE, MAX_RATE = 8_000, 48_000
ENCODINGS = ("pcm_s16le",)    # Opus is refused: the page and the example clients send PCM
MAX_FRAME_BYTES = 1 << 20     # one binary message: 32 s of 16 kHz audio, far more than any client sends
MAX_TEXT_BYTES = 4096         # one text message (start, stop): a few fields, far less than this

# WebSocket close codes (4000-4999 are the application's), each with a machine code for the reason.
NORMAL = 1000                 # "stop" received, everything final was sent, then the summary
BAD_MESSAGE = 4400            # malformed or oversized JSON, unknown type, audio before start, odd byte count
UNSUPPORTED = 4415            # encoding other than pcm_s16le (e.g. opus)
BAD_RATE = 4422               # sample_rate missing or outside 8000-48000 Hz
IDLE = 4408                   # no message for ASR_STREAM_IDLE_SECONDS: the client stalled
STALLED = 4409                # audio ASR_STREAM_MAX_LAG_SECONDS behind real time: a trickling client
TOO_LONG = 4413               # more audio than ASR_STREAM_MAX_SECONDS, or longer than ASR_STREAM_MAX_WALL_SECONDS
TOO_MANY = 4429               # ASR_STREAM_MAX_SESSIONS streams are already open
NOT_READY = 4503              # the model is loading or failed to load
CANNOT_STREAM = 4501          # this backend has no streaming mode
FAILED = 1011                 # the backend broke (a worker died); the server carries on

CLOSE_CODES = {
    NORMAL: "done", BAD_MESSAGE: "bad_message", UNSUPPORTED: "unsupported_encoding",
    BAD_RATE: "bad_sample_rate", IDLE: "idle_timeout", STALLED: "stalled", TOO_LONG: "session_too_long",
    TOO_MANY: "too_many_streams", NOT_READY: "not_ready", CANNOT_STREAM: "cannot_stream",
    FAILED: "backend_failure",
}


class StreamError(Exception):
    """Ends a session: a close code (CLOSE_CODES) and a sentence saying what to do."""

    def __init__(self, close_code: int, detail: str):
        super().__init__(detail)
        self.close_code, self.detail = close_code, detail

    @property
    def code(self) -> str:
        return CLOSE_CODES[self.close_code]

    def event(self) -> dict:
        return {"type": "error", "code": self.code, "close_code": self.close_code, "detail": self.detail}

    def reason(self) -> str:
        """The close frame's reason: at most 123 bytes by RFC 6455."""
        return f"{self.code}: {self.detail}".encode()[:123].decode(errors="ignore")


@dataclass(frozen=True)
class Start:
    sample_rate: int
    encoding: str = "pcm_s16le"
    language: str | None = None


def parse_message(text: str) -> dict:
    """A client's JSON text message as a dict with a `type`, or StreamError(BAD_MESSAGE): also one
    over MAX_TEXT_BYTES or nested deeper than the parser goes (RecursionError), never a failure."""
    if len(text) > MAX_TEXT_BYTES:
        raise StreamError(BAD_MESSAGE, f"a text message of {len(text)} characters is over the "
                                       f"{MAX_TEXT_BYTES}-character limit; send start and stop only")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise StreamError(BAD_MESSAGE, f"a text message must be JSON, got {text[:40]!r}") from None
    if not isinstance(message, dict) or message.get("type") not in ("start", "stop"):
        raise StreamError(BAD_MESSAGE, "a text message must be {\"type\": \"start\", ...} or "
                                       "{\"type\": \"stop\"}")
    return message


def parse_start(message: dict) -> Start:
    """Validate the start message: encoding pcm_s16le, an integer sample rate in range."""
    encoding = message.get("encoding", "pcm_s16le")
    if encoding not in ENCODINGS:
        raise StreamError(UNSUPPORTED, f"encoding {encoding!r} is not accepted; send 16-bit "
                                       "little-endian PCM with \"encoding\": \"pcm_s16le\"")
    rate = message.get("sample_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise StreamError(BAD_RATE, f"sample_rate {rate!r} is not an integer from {MIN_RATE} to "
                                    f"{MAX_RATE} Hz; send mono audio at 16000 Hz")
    language = message.get("language")
    if language is not None and not (isinstance(language, str) and 0 < len(language) <= 16):
        raise StreamError(BAD_MESSAGE, f"language {language!r} must be a short code such as \"en\"")
    return Start(rate, encoding, language)


def check_frame(data: bytes) -> None:
    if len(data) % 2:
        raise StreamError(BAD_MESSAGE, f"an audio frame of {len(data)} bytes is not whole 16-bit samples")
    if len(data) > MAX_FRAME_BYTES:
        raise StreamError(BAD_MESSAGE, f"an audio frame of {len(data)} bytes is over the "
                                       f"{MAX_FRAME_BYTES}-byte limit; send frames of 20-200 ms")


def partial(text: str, start: float, end: float) -> dict:
    return {"type": "partial", "text": text, "start": round(start, 3), "end": round(end, 3)}


def final(text: str, start: float, end: float) -> dict:
    return {"type": "final", "text": text, "start": round(start, 3), "end": round(end, 3)}
