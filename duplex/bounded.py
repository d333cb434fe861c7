"""One HTTP GET with an overall deadline and a size cap, for answers duplex does not trust.

urllib's `timeout` bounds each socket operation only: a server trickling a byte every few seconds
holds the caller for as long as it likes. Here a timer shuts the request's sockets when the whole
request is out of time, and the body is read to a cap. Proxies come from the environment, as with
`urlopen`.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request
from email.message import Message

DEADLINE_READS = 3  # a request's overall deadline, in per-read timeouts


class TooSlow(TimeoutError):
    """The whole answer did not arrive within the deadline (a stalled or trickling server)."""


class TooLarge(ValueError):
    """The answer is larger than the caller's cap."""


class Incomplete(ConnectionError):
    """The server closed the connection before the body its Content-Length announced had arrived
    (http.client returns the short body without a word: a half page read as a whole one)."""


class _Deadline:
    """Shuts a request's sockets when its time is up: the blocked read returns at once."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def connection(self, cls):
        """`cls` (an http.client connection class) whose sockets this deadline may shut."""
        deadline = self

        class Timed(cls):
            def connect(self):
                super().connect()
                with deadline._lock:
                    deadline._sockets.append(self.sock)
                    if deadline.expired:
                        raise TimeoutError("out of time")
        return Timed

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    class Http(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(deadline.connection(http_class), req, **kwargs)

    class Https(urllib.request.HTTPSHandler):
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(deadline.connection(http_class), req, **kwargs)
    return urllib.request.build_opener(Http, Https)


def get(request: urllib.request.Request, timeout: float, limit: int) -> tuple[bytes, Message]:
    """The body (at most `limit` bytes) and headers (names case-insensitive) of one request, all
    within DEADLINE_READS x `timeout`. Raises TooSlow, TooLarge, Incomplete (an OSError) for a body
    cut short, urllib.error.HTTPError for an error status, and urllib's or http.client's errors otherwise."""
    with _Deadline(timeout * DEADLINE_READS) as deadline:
        try:
            with _opener(deadline).open(request, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length") or ""
                if length.isdigit() and int(length) > limit:
                    raise TooLarge(f"an answer of {int(length)} bytes (at most {limit} expected)")
                body = resp.read(limit + 1)
                headers = resp.headers
                if length.isdigit() and len(body) < int(length) and not deadline.expired:
                    raise Incomplete(f"{urllib.parse.urlsplit(request.full_url).netloc} closed the connection "
                                     f"after {len(body)} of the {int(length)} bytes it announced")
        except (TooLarge, Incomplete):
            raise
        except Exception:
            if deadline.expired:
                raise TooSlow(_too_slow(request, deadline)) from None
            raise
        if deadline.expired:  # the body ended because the deadline shut the socket
            raise TooSlow(_too_slow(request, deadline))
    if len(body) > limit:
        raise TooLarge(f"an answer larger than {limit} bytes")
    return body, headers


def _too_slow(request: urllib.request.Request, deadline: _Deadline) -> str:
    host = urllib.parse.urlsplit(request.full_url).netloc
    return f"{host} did not finish its answer within {deadline.seconds:.0f} s (stalled or trickling)"
