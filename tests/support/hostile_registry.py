"""A registry that lies: a small real HTTP server on 127.0.0.1 speaking just enough of the Registry
HTTP API v2 (`/v2/`, `/v2/NAME/manifests/REF`, a bearer token realm) to answer duplex's questions
the way a broken, hostile or stalled registry (or mirror) would.

Each answer is set per manifest path as an `Answer`: status, headers and body, and optionally
`trickle` (seconds between single bytes, for the headers or the body). A well-formed image
manifest (`manifest()`) is the default, so a test changes only the one thing it is about.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def manifest() -> bytes:
    """A real-looking v2 image manifest: a config and one layer."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1000,
                   "digest": "sha256:" + "1" * 64},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 30_000_000,
                    "digest": "sha256:" + "2" * 64}]}).encode()


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class Answer:
    status: int = 200
    body: bytes = field(default_factory=manifest)
    headers: dict = field(default_factory=dict)  # added to (or replacing) Content-Type and Docker-Content-Digest
    trickle_headers: float = 0.0  # seconds between bytes of the status line and headers
    trickle_body: float = 0.0  # seconds between bytes of the body
    trickle_for: float = 120.0  # how long a trickle goes on at most


class HostileRegistry:
    def __init__(self):
        self.manifests: dict[str, Answer] = {}  # "NAME/manifests/REF" -> what to answer
        self.tokens: Answer | None = None  # the realm's answer (GET /token)
        self.root = Answer(200, b"{}", {"Content-Type": "application/json"})  # GET /v2/
        self.seen: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "HostileRegistry":
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                registry.seen.append(self.path)
                if path in ("/v2/", "/v2"):
                    answer = registry.root
                elif path == "/token":
                    answer = registry.tokens or Answer(404, b"")
                else:
                    key = path.removeprefix("/v2/")
                    answer = registry.manifests.get(key, Answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}',
                                                                 {"Content-Type": "application/json"}))
                    if answer.status == 401 and "Authorization" in self.headers and registry.tokens:
                        answer = registry.manifests.get(key + "#authorized", answer)
                self._answer(answer)

            def _answer(self, answer: Answer):
                headers = {"Content-Length": str(len(answer.body))}
                if answer.status == 200 and "/manifests/" in self.path:
                    headers.update({"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": digest_of(answer.body)})
                headers.update(answer.headers)
                head = f"HTTP/1.1 {answer.status} X\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in headers.items() if v is not None) + "\r\n"
                try:
                    if self._send(head.encode("latin-1"), answer.trickle_headers, answer.trickle_for):
                        self._send(answer.body, answer.trickle_body, answer.trickle_for)
                except OSError:
                    pass  # the client gave up: what it should do
                self.close_connection = True

            def _send(self, data: bytes, pause: float, longest: float) -> bool:
                """Whether all of `data` went out (a trickle that runs out of time ends the answer)."""
                if not pause:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                ends = time.monotonic() + longest
                for i in range(len(data)):
                    if time.monotonic() > ends:
                        return False
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(pause)
                return True

        return Handler
