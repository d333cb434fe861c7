"""An OTLP/HTTP collector stand-in: receives real protobuf trace exports on loopback and decodes them."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    attributes: dict
    resource: dict


class Collector:
    """`with Collector() as c:` listens on `c.url`; `c.spans` is everything exported so far."""

    def __init__(self, host: str = "127.0.0.1"):
        self.spans: list[Span] = []
        self.posts: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.posts.append(self.path)
                if self.path == "/v1/traces":
                    collector._add(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}"
        self.port = self.server.server_port

    def _add(self, request: ExportTraceServiceRequest) -> None:
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for scope in rs.scope_spans:
                for span in scope.spans:
                    self.spans.append(Span(resource.get("service.name", ""), span.name, span.trace_id.hex(),
                                           {a.key: _value(a.value) for a in span.attributes}, resource))

    def wait_for(self, predicate, timeout: float = 20.0) -> list[Span]:
        """The spans matching `predicate`, waiting for the exporter's batch (every 5 s by default)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in list(self.spans) if predicate(s)]
            if found:
                return found
            time.sleep(0.1)
        return []

    def __enter__(self) -> "Collector":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None
