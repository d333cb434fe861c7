"""The web frontend: transcription page, voice-chat page, ASR proxy and moshi relay.

Configured only by environment variables (read once at import, so uvicorn --reload picks up
changes): ASR_URL (or the Aspire-style services__asr__http__0) and MOSHI_WS_URL.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import FastAPI, File, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import telemetry
from . import asr_proxy, moshi_relay
from .config import Endpoints, endpoints_from_env

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 100 * 2**20


def create_app(endpoints: Endpoints | None = None) -> FastAPI:
    """Build the app for the given endpoints (default: from the environment)."""
    endpoints = endpoints or endpoints_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with httpx.AsyncClient() as client:
            telemetry.instrument_client(client)  # the asr call joins the page request's trace
            app.state.http = client
            yield

    app = FastAPI(title="duplex frontend", lifespan=lifespan)
    telemetry.instrument(app)  # request spans, only when OTEL_* says so
    app.state.endpoints = endpoints
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "service": "frontend", **endpoints.as_dict()}

    @app.get("/api/config")
    async def config() -> dict:
        return {**endpoints.as_dict(), "moshi_relay_path": "/api/chat" if endpoints.moshi_ws_url else None}

    @app.post("/api/transcribe")
    async def transcribe(file: Annotated[UploadFile, File()]):
        content = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            return JSONResponse(
                {"error": "too_large", "detail": f"Audio files up to {MAX_UPLOAD_BYTES // 2**20} MiB only."}, 413
            )
        if not content:
            return JSONResponse({"error": "empty", "detail": "The uploaded file is empty."}, 400)
        try:
            return await asr_proxy.transcribe(
                app.state.http, endpoints.asr_url, file.filename, content, file.content_type
            )
        except asr_proxy.ProxyError as err:
            return JSONResponse(err.body, err.status)

    @app.websocket("/api/chat")
    async def chat_relay(websocket: WebSocket) -> None:
        await moshi_relay.relay(websocket, endpoints.moshi_ws_url)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/chat", include_in_schema=False)
    async def chat() -> FileResponse:
        return FileResponse(STATIC / "chat.html")

    return app


app = create_app()
