"""The limits of WS /ws/translate, pure: its close codes and the count of open sessions.

The numbers and names are asr's (servers/asr/stream_protocol.py, docs/streaming.md#close-codes),
copied rather than imported: the mt image carries servers/mt only. tests/servers/test_mt.py checks
that they stay the same.
"""

from __future__ import annotations

IDLE = 4408       # no message for MT_WS_IDLE_SECONDS
TOO_LONG = 4413   # the session lasted MT_WS_MAX_WALL_SECONDS
TOO_MANY = 4429   # MT_WS_MAX_SESSIONS sessions are open already

CLOSE_CODES = {IDLE: "idle_timeout", TOO_LONG: "session_too_long", TOO_MANY: "too_many_streams"}
STATUS = {IDLE: 408, TOO_LONG: 413, TOO_MANY: 429}  # the HTTP status of the `error` event, as mt's others have


class SessionEnd(Exception):
    """Ends a /ws/translate session: a close code (CLOSE_CODES) and a sentence saying what to do."""

    def __init__(self, close_code: int, detail: str):
        super().__init__(detail)
        self.close_code, self.detail = close_code, detail

    @property
    def code(self) -> str:
        return CLOSE_CODES[self.close_code]

    def event(self) -> dict:
        """The `error` event sent before the close: mt's error shape plus the close code."""
        return {"type": "error", "id": None, "status": STATUS[self.close_code], "error": self.code,
                "close_code": self.close_code, "detail": self.detail}

    def reason(self) -> str:
        """The close frame's reason: at most 123 bytes by RFC 6455."""
        return f"{self.code}: {self.detail}".encode()[:123].decode(errors="ignore")


class Sessions:
    """The open /ws/translate sessions, bounded by MT_WS_MAX_SESSIONS."""

    def __init__(self, limit: int):
        self.limit, self.open = limit, 0

    def enter(self) -> None:
        if self.open >= self.limit:
            raise SessionEnd(TOO_MANY, f"{self.open} sessions are open, the most this server takes "
                                       f"(MT_WS_MAX_SESSIONS={self.limit}); retry later")
        self.open += 1

    def leave(self) -> None:
        self.open -= 1
