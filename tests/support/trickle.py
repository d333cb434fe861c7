"""A real HTTP server on 127.0.0.1 whose chosen answers trickle: headers at once, then the body a
byte every `pause` seconds (for at most `longest` seconds), the way a stalled or hostile package
index would; or cut short: the first bytes of the body its Content-Length announces, then the
connection closed. Every other path is answered at once; an unknown path is a 404."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TrickleServer:
    def __init__(self, pause: float = 0.5, longest: float = 120.0):
        self.pause, self.longest = pause, longest
        self.answers: dict[str, tuple[str, bytes, bool]] = {}  # path -> (Content-Type, body, trickles)
        self.cut: dict[str, int] = {}  # path -> how many bytes of its body are sent before closing
        self.seen: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self, path: str, body: bytes, content_type: str = "text/html", trickle: bool = False,
              cut: int | None = None) -> None:
        self.answers[path] = (content_type, body, trickle)
        if cut is not None:
            self.cut[path] = cut

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                server.seen.append(path)
                kind, body, trickle = server.answers.get(path, ("text/plain", b"not here\n", False))
                self.send_response(200 if path in server.answers else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if not trickle:
                        self.wfile.write(body[:server.cut.get(path, len(body))])
                        return
                    self.wfile.flush()
                    end = time.monotonic() + server.longest
                    for i in range(len(body)):
                        if time.monotonic() > end:
                            return
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(server.pause)
                except OSError:
                    pass  # the client gave up: what it should do
                finally:
                    self.close_connection = True

        return Handler
