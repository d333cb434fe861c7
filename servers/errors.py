"""One error shape for the shipped servers: every answer that is not a success is JSON
`{"error": CODE, "detail": "what happened and what to do"}`, also the ones FastAPI and Starlette
make themselves (an unknown path, a wrong method, a request its validation refuses, a bug)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("uvicorn.error")
CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
         415: "unsupported_media_type", 429: "too_many_requests", 503: "not_ready"}


def error_response(status: int, code: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Answer FastAPI's and Starlette's own errors in the servers' shape."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"no such path: {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, CODES.get(exc.status_code, f"http_{exc.status_code}"), detail,
                              getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                          for e in exc.errors()[:5])
        return error_response(400, "bad_request", f"the request does not have the expected form ({where})")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 `too_large` before it is
    read whole, at once by its Content-Length, else as soon as a streamed (chunked) body passes the
    limit. Without it a JSON route reads any body into memory before its own checks run."""

    def __init__(self, app, limit: int, hint: str = "", code: str = "too_large"):
        self.app, self.limit, self.hint, self.code = app, limit, hint, code

    def detail(self, size: str) -> str:
        return f"a request body of {size} is over this server's {self.limit}-byte limit" + (
            f"; {self.hint}" if self.hint else "")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(413, self.code, self.detail(f"{int(declared)} bytes"))(scope, receive, send)
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b"")) if message["type"] == "http.request" else 0
            if seen > self.limit:  # FastAPI passes an HTTPException on; servers' handlers answer it
                raise HTTPException(413, self.detail(f"more than {self.limit} bytes"))
            return message

        await self.app(scope, counted, send)
