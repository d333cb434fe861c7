"""Recent requests and their spans, from the services' own OTLP/HTTP exports: when telemetry is on
and no collector of the user's listens at the stack's endpoint, the dashboard receives them itself
(as Aspire's does). Bounded: the last TRACES traces. Decoding needs opentelemetry-proto."""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

TRACES = 200


def decode(body: bytes, content_type: str, encoding: str | None = None) -> list[dict]:
    """Spans of one OTLP/HTTP export (protobuf, or JSON), as plain dicts."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    if encoding == "gzip":
        body = gzip.decompress(body)
    request = ExportTraceServiceRequest()
    if content_type.startswith("application/json"):
        json_format.Parse(body.decode("utf-8"), request)
    else:
        request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        service = attrs.get("service.name", "?")
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                spans.append({"trace": span.trace_id.hex(), "span": span.span_id.hex(),
                              "parent": span.parent_span_id.hex() or None, "service": service,
                              "name": span.name, "start": span.start_time_unix_nano / 1e9,
                              "ms": round((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6, 3),
                              "error": span.status.code == 2})
    return spans


class TraceBook:
    def __init__(self, keep: int = TRACES):
        self.keep = keep
        self.traces: OrderedDict[str, list[dict]] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, spans: list[dict]) -> None:
        with self.lock:
            for span in spans:
                self.traces.setdefault(span["trace"], []).append(span)
                self.traces.move_to_end(span["trace"])
            while len(self.traces) > self.keep:
                self.traces.popitem(last=False)

    def recent(self, limit: int = 50) -> list[dict]:
        """Newest first: each trace's root (the span without a parent here), services, duration, spans."""
        with self.lock:
            items = list(self.traces.items())[-limit:]
        out = []
        for trace, spans in reversed(items):
            spans = sorted(spans, key=lambda s: s["start"])
            ids = {s["span"] for s in spans}
            root = next((s for s in spans if s["parent"] not in ids), spans[0])
            end = max(s["start"] + s["ms"] / 1000 for s in spans)
            out.append({"trace": trace, "name": root["name"], "service": root["service"],
                        "services": list(dict.fromkeys(s["service"] for s in spans)),  # in order of first span "start": spans[0]["start"],
                        "ms": round((end - spans[0]["start"]) * 1000, 3), "error": any(s["error"] for s in spans),
                        "spans": spans})
        return out
