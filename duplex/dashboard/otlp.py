"""The HTTP side of the dashboard's OTLP trace receiver, answering as the OpenTelemetry Collector's
OTLP/HTTP receiver does: `POST /v1/traces` in protobuf or JSON (anything else 415), gzip, deflate
or no encoding (else 415), at most MAX_BODY bytes on the wire and MAX_DECODED decompressed (413:
decompressed step by step up to the cap, never whole), decoded in a worker thread so the page, the
API and the event stream never wait on it, at most BUSY exports at once (503 with Retry-After,
which exporters retry) and READ seconds for a body to arrive (408), errors as a google.rpc.Status in the request's encoding, and a partial
success that says how many spans were not kept. Exporters carry no token (docs/dashboard.md)."""

from __future__ import annotations

import asyncio
import json
import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .traces import TraceBook, decode

MiB = 1 << 20
MAX_BODY = 4 * MiB  # on the wire; an SDK's batch of 512 spans is a few hundred KiB
MAX_DECODED = 8 * MiB  # decompressed (the Collector applies its limit there too: a 1 MiB gzip can hold 1 GiB)
BUSY = 4  # exports read and decoded at once: the receiver's memory is bounded by BUSY x the caps
READ = 5.0  # seconds for a body to arrive whole: a client that trickles it holds a slot no longer
MEDIA = {"application/x-protobuf": "protobuf", "application/json": "json"}
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # HTTP's deflate is zlib-wrapped
INVALID_ARGUMENT, UNAVAILABLE = 3, 14  # google.rpc.Code


class TooLarge(ValueError):
    pass


def media(content_type: str) -> str | None:
    """"protobuf" or "json" for the two OTLP media types (parameters such as charset allowed)."""
    return MEDIA.get(content_type.split(";", 1)[0].strip().lower())


def inflate(body: bytes, encoding: str, cap: int = MAX_DECODED) -> bytes:
    """The body decoded from its Content-Encoding, never more than `cap` bytes of it held: zlib is
    asked for at most what is left below the cap at each step (TooLarge past it; ValueError for a
    stream that is cut or corrupt). Several gzip members in a row are read as one body, as gzip does."""
    if encoding == "identity":
        if len(body) > cap:
            raise TooLarge(f"the export is larger than {cap // MiB} MiB")
        return body
    out, data = bytearray(), body
    while data:
        inflater = zlib.decompressobj(WBITS[encoding])
        try:
            while data and not inflater.eof:
                out += inflater.decompress(data, cap + 1 - len(out))
                if len(out) > cap:
                    raise TooLarge(f"the export is larger than {cap // MiB} MiB decompressed")
                data = inflater.unconsumed_tail
        except zlib.error as exc:
            raise ValueError(f"not a valid {encoding} body: {exc}") from None
        if not inflater.eof:
            raise ValueError(f"the {encoding} body is cut short")
        data = inflater.unused_data
    return bytes(out)


async def read(request: Request, cap: int = MAX_BODY) -> bytes:
    """The body as it arrives, refused (TooLarge) as soon as it passes `cap`, announced or not."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise TooLarge(f"the export is larger than {cap // MiB} MiB")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"the export is larger than {cap // MiB} MiB")
        parts.append(chunk)
    return b"".join(parts)


def failure(kind: str, status: int, message: str, code: int = INVALID_ARGUMENT, headers=None) -> Response:
    """An error as OTLP/HTTP sends one: a google.rpc.Status (code, message) in the request's encoding."""
    if kind == "json":
        return Response(json.dumps({"code": code, "message": message}), status, headers,
                        media_type="application/json")
    # google.rpc.Status is {int32 code = 1; string message = 2; ...}; opentelemetry-proto ships no
    # google.rpc, and ExportTracePartialSuccess {int64 rejected_spans = 1; string error_message = 2}
    # has the same wire shape for a code >= 0
    # heavy: protobuf loads only when a service exports traces
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTracePartialSuccess
    body = ExportTracePartialSuccess(rejected_spans=code, error_message=message).SerializeToString()
    return Response(body, status, headers, media_type="application/x-protobuf")


def success(kind: str, rejected: int, why: str) -> Response:
    """An ExportTraceServiceResponse; with a partial success when spans were not kept."""
    from google.protobuf import json_format  # heavy: only when a service exports traces
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    reply = ExportTraceServiceResponse()
    if rejected:
        reply.partial_success.rejected_spans = rejected
        reply.partial_success.error_message = why
    if kind == "json":
        return Response(json_format.MessageToJson(reply, indent=None), media_type="application/json")
    return Response(reply.SerializeToString(), media_type="application/x-protobuf")


class Receiver:
    """`await receiver(request)`: one export into `book`."""

    def __init__(self, book: TraceBook):
        self.book = book
        self.busy = 0  # only touched on the event loop

    async def __call__(self, request: Request) -> Response:
        kind = media(request.headers.get("content-type", ""))
        if kind is None:
            return PlainTextResponse(f"415 unsupported media type, supported: [{', '.join(MEDIA)}]", 415)
        encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in (*WBITS, "identity"):
            return PlainTextResponse(f"415 unsupported content encoding {encoding[:40]!r}, supported: "
                                     f"[{', '.join(WBITS)}, identity]", 415)
        if self.busy >= BUSY:
            return failure(kind, 503, "the dashboard is busy with other exports: retry", UNAVAILABLE,
                           {"Retry-After": "1"})
        self.busy += 1
        try:
            body = await asyncio.wait_for(read(request), READ)
            return await run_in_threadpool(self._take, body, kind, encoding)
        except asyncio.TimeoutError:
            return failure(kind, 408, f"the export did not arrive within {READ:g} s")
        except TooLarge as exc:
            return failure(kind, 413, str(exc))
        except ValueError as exc:
            return failure(kind, 400, str(exc))
        finally:
            self.busy -= 1

    def _take(self, body: bytes, kind: str, encoding: str) -> Response:
        decoded = decode(inflate(body, encoding), kind)
        lost = self.book.add(decoded.spans)
        why = decoded.why
        if lost:
            why = "; ".join(filter(None, [why, f"the dashboard keeps {self.book.per_trace} spans a trace, "
                                               f"{self.book.keep} traces and {self.book.total} spans: "
                                               "the oldest were dropped"]))
        return success(kind, decoded.rejected + lost, why)
