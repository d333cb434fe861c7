"""Recent requests and their spans, from the services' own OTLP/HTTP exports: when telemetry is on
and no collector of the user's listens at the stack's endpoint, the dashboard receives them itself
(as Aspire's does). Bounded in spans, not only traces: the last TRACES traces, at most
SPANS_PER_TRACE spans each and SPANS in all, the oldest dropped first and counted.
Decoding needs opentelemetry-proto; otlp.py is the HTTP side."""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

TRACES = 200
SPANS_PER_TRACE = 256  # a request through this project's services has a handful
SPANS = 10_000  # in all: ~10 MB of spans, and /api/traces stays a few MB at most
NAME = 200  # characters kept of a span's or a service's name
_IDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8, "trace_id": 16, "span_id": 8, "parent_span_id": 8}


@dataclass
class Decoded:
    spans: list[dict]
    rejected: int = 0  # spans of the export not taken: said to the exporter as a partial success
    why: str = ""


def decode(body: bytes, kind: str, limit: int = SPANS) -> Decoded:
    """The spans of one (decompressed) OTLP/HTTP export, `kind` "protobuf" or "json", as plain dicts;
    at most `limit`. Raises ValueError saying what is wrong with a body that is not an export."""
    from google.protobuf import json_format  # heavy: only when a service exports traces
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    request = ExportTraceServiceRequest()
    try:
        if kind == "json":
            data = json.loads(body)
            _hex_ids(data)
            # unknown fields are ignored, as the OTLP spec asks of JSON receivers (newer senders)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (ValueError, TypeError, RecursionError, DecodeError, json_format.ParseError) as exc:
        what = "JSON" if kind == "json" else "protobuf"
        raise ValueError(f"not an OTLP {what} trace export: {str(exc)[:200] or type(exc).__name__}") from None
    out, rejected, why = [], 0, ""
    for resource_spans in request.resource_spans:
        attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        service = attrs.get("service.name", "?")[:NAME]
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id):
                    rejected, why = rejected + 1, "spans without a valid 16-byte trace id and 8-byte span id"
                    continue
                if len(out) >= limit:
                    rejected, why = rejected + 1, f"more than {limit} spans in one export"
                    continue
                start = span.start_time_unix_nano / 1e9
                out.append({"trace": span.trace_id.hex(), "span": span.span_id.hex(),
                            "parent": span.parent_span_id.hex() or None, "service": service,
                            "name": span.name[:NAME], "start": start,
                            "ms": round(max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e6, 3),
                            "error": span.status.code == 2})
    return Decoded(out, rejected, why)


def _hex_ids(data) -> None:
    """OTLP/JSON writes trace and span ids in hex, not in protobuf JSON's base64 for bytes: turn
    them into what json_format reads (the spans' ids and their links')."""
    if not isinstance(data, dict):
        raise ValueError("the export is not a JSON object")
    for resource in _items(data, "resourceSpans", "resource_spans"):
        for scope in _items(resource, "scopeSpans", "scope_spans"):
            for span in _items(scope, "spans", "spans"):
                for holder in (span, *_items(span, "links", "links")):
                    for key in _IDS.keys() & holder.keys():
                        value = holder[key]
                        if not isinstance(value, str):
                            raise ValueError(f"{key} is not a hex string")
                        try:
                            holder[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise ValueError(f"{key} {value[:40]!r} is not hex (OTLP/JSON ids are hex)") from None


def _items(holder, camel: str, snake: str) -> list[dict]:
    items = holder.get(camel, holder.get(snake)) if isinstance(holder, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


class _Trace:
    __slots__ = ("spans", "dropped")

    def __init__(self):
        self.spans: deque[dict] = deque()
        self.dropped = 0


class TraceBook:
    def __init__(self, keep: int = TRACES, per_trace: int = SPANS_PER_TRACE, total: int = SPANS):
        self.keep, self.per_trace, self.total = keep, per_trace, total
        self.traces: OrderedDict[str, _Trace] = OrderedDict()
        self.spans = 0  # held now
        self.dropped = 0  # ever dropped to stay in bounds
        self.lock = threading.Lock()

    def add(self, spans: list[dict]) -> int:
        """Keep `spans`, dropping the oldest beyond the bounds; returns how many of these went at once."""
        batch = {id(span) for span in spans}
        lost = 0
        with self.lock:
            for span in spans:
                trace = self.traces.get(span["trace"])
                if trace is None:
                    trace = self.traces[span["trace"]] = _Trace()
                self.traces.move_to_end(span["trace"])
                if len(trace.spans) >= self.per_trace:
                    lost += id(trace.spans.popleft()) in batch
                    trace.dropped += 1
                    self.dropped += 1
                    self.spans -= 1
                trace.spans.append(span)
                self.spans += 1
            while len(self.traces) > self.keep or self.spans > self.total:
                _, trace = self.traces.popitem(last=False)
                lost += sum(id(span) in batch for span in trace.spans)
                self.spans -= len(trace.spans)
                self.dropped += len(trace.spans)
        return lost

    def recent(self, limit: int = 50) -> list[dict]:
        """Newest first: each trace's root (the span without a parent here), services, start,
        duration, spans, and how many of its spans were dropped."""
        with self.lock:
            items = [(trace, list(held.spans), held.dropped) for trace, held in list(self.traces.items())[-limit:]]
        out = []
        for trace, spans, dropped in reversed(items):
            spans = sorted(spans, key=lambda s: s["start"])
            ids = {s["span"] for s in spans}
            root = next((s for s in spans if s["parent"] not in ids), spans[0])
            end = max(s["start"] + s["ms"] / 1000 for s in spans)
            out.append({"trace": trace, "name": root["name"], "service": root["service"],
                        "services": list(dict.fromkeys(s["service"] for s in spans)),  # in order of first span
                        "start": spans[0]["start"], "ms": round((end - spans[0]["start"]) * 1000, 3),
                        "error": any(s["error"] for s in spans), "dropped": dropped, "spans": spans})
        return out
