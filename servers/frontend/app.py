"""The web frontend: transcription, voice-chat and translation pages, ASR proxy, ASR stream, moshi and mt relays.

Configured only by environment variables (read once at import, so uvicorn --reload picks up
changes): ASR_URL (or the Aspire-style services__asr__http__0, __1, ...), MOSHI_WS_URL, MT_WS_URL,
each one URL per replica, comma-separated; MOSHI_SESSIONS, ASR_SESSIONS, MT_SESSIONS (sessions one
replica takes) and DUPLEX_ALLOWED_ORIGINS (servers/origins.py: pages of other origins that may open
the relays).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import errors, origins, telemetry
from ..envvars import SettingsError
from ..errors import error_response
from . import asr_proxy, moshi_relay
from .config import Endpoints, endpoints_from_env, stream_url
from .replicas import Pool

log = logging.getLogger("uvicorn.error").getChild("frontend")
STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 100 * 2**20


def create_app(endpoints: Endpoints | None = None) -> FastAPI:
    """Build the app for the given endpoints (default: from the environment)."""
    endpoints = endpoints or endpoints_from_env()
    try:
        allowed = origins.origins_from_env(os.environ)
    except SettingsError as exc:  # the safe side: this frontend's own pages only
        log.error("%s; the relays take only this frontend's own pages and clients without Origin", exc)
        allowed = origins.Origins()
    for problem in endpoints.problems:
        log.error("frontend setting: %s", problem)
    pools = {"asr": Pool("asr", endpoints.asr_urls, endpoints.asr_sessions),
             "moshi": Pool("moshi", endpoints.moshi_ws_urls, endpoints.moshi_sessions),
             "mt": Pool("mt", endpoints.mt_ws_urls, endpoints.mt_sessions)}

    def replicas() -> dict:
        """Each service's replicas and the sessions relayed to each now."""
        now = time.monotonic()
        return {"replicas": {name: pool.view(now) for name, pool in pools.items()}}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with httpx.AsyncClient() as client:
            telemetry.instrument_client(client)  # the asr call joins the page request's trace
            app.state.http = client
            yield

    app = FastAPI(title="duplex frontend", lifespan=lifespan)
    errors.install(app)  # FastAPI's own 404/405/422/500 answers in the documented shape too
    app.add_middleware(errors.BodyLimit, limit=MAX_UPLOAD_BYTES + 64 * 1024,  # the multipart framing
                       hint=f"audio files up to {MAX_UPLOAD_BYTES // 2**20} MiB only")
    telemetry.instrument(app)  # request spans, only when OTEL_* says so
    app.state.endpoints = endpoints
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "service": "frontend", **endpoints.as_dict(), **replicas(),
                "problems": list(endpoints.problems)}

    @app.get("/api/config")
    async def config() -> dict:
        return {**endpoints.as_dict(), "moshi_relay_path": "/api/chat" if endpoints.moshi_ws_url else None,
                "translate_relay_path": "/api/translate" if endpoints.mt_ws_url else None,
                "asr_stream_path": "/api/stream" if endpoints.asr_stream_url else None, **replicas()}

    @app.post("/api/transcribe")
    async def transcribe(request: Request):
        """The multipart field `file`, forwarded to ASR; every refusal in the documented shape."""
        upload = await _read_upload(request)
        if isinstance(upload, JSONResponse):
            return upload
        filename, content, content_type = upload
        if len(content) > MAX_UPLOAD_BYTES:
            return error_response(413, "too_large", f"Audio files up to {MAX_UPLOAD_BYTES // 2**20} MiB only.")
        if not content:
            return error_response(400, "empty", "The uploaded file is empty.")
        try:
            return await asr_proxy.transcribe(app.state.http, pools["asr"], filename, content, content_type)
        except asr_proxy.ProxyError as err:
            return JSONResponse(err.body, err.status)

    @app.websocket("/api/chat")
    async def chat_relay(websocket: WebSocket) -> None:
        await moshi_relay.relay(websocket, pools["moshi"], allowed=allowed)

    @app.websocket("/api/translate")
    async def translate_relay(websocket: WebSocket) -> None:
        """Finals from the page to mt's /ws/translate, translations back (servers/mt/app.py)."""
        await moshi_relay.relay(websocket, pools["mt"], allowed=allowed)

    @app.websocket("/api/stream")
    async def stream_relay(websocket: WebSocket) -> None:
        """Live transcription: relayed to the ASR server's WS /stream (docs/streaming.md)."""
        await moshi_relay.relay(websocket, pools["asr"], allowed=allowed, target=stream_url)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/chat", include_in_schema=False)
    async def chat() -> FileResponse:
        return FileResponse(STATIC / "chat.html")

    @app.get("/translate", include_in_schema=False)
    async def translate_page() -> FileResponse:
        return FileResponse(STATIC / "translate.html")

    return app


async def _read_upload(request: Request):
    """(filename, bytes, content type) of the multipart field `file`, or the error answer: a request
    that is not a multipart upload, or has no `file` in it, is refused as the ASR server refuses it."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return error_response(400, "bad_request", "expected a multipart/form-data upload with a `file` field "
                                                  f"(curl -F file=@speech.wav ...), got {kind or 'no content-type'!r}")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:  # noqa: BLE001 - broken framing, too many parts; errors.BodyLimit's 413 past the limit
        if isinstance(exc, HTTPException) and exc.status_code == 413:
            return error_response(413, "too_large", exc.detail)
        return error_response(400, "bad_request", f"expected a multipart/form-data upload with a `file` field: {exc}")
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return error_response(400, "missing_file", "the multipart form has no `file` field holding the audio "
                                                       "(curl -F file=@speech.wav ...)")
        return upload.filename, await upload.read(MAX_UPLOAD_BYTES + 1), upload.content_type
    finally:
        await form.close()


app = create_app()
