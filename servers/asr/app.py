"""HTTP routes: GET /health, POST /transcribe, GET /metrics, WS /stream (streaming.py). Run: uvicorn servers.asr.app:app."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import errors, telemetry
from . import audio, loaders, streaming
from .backends import Backend, BackendFailure, BackendUnavailable, make_backend
from .metrics import Metrics
from .models import ModelMissing
from .settings import Settings, SettingsError, settings_from_env

log = logging.getLogger("uvicorn.error").getChild("asr")  # printed the way uvicorn prints


class ModelState:
    """The backend and where its loading stands: loading, ready, or error (with the reason)."""

    def __init__(self, settings: Settings | None, backend: Backend | None, error: str | None = None):
        self.settings, self.backend, self.error = settings, backend, error
        self.status = "error" if error else "loading"
        self.load_s: float | None = None

    def load(self) -> None:
        started = time.monotonic()
        try:
            self.backend.load()
        except (BackendUnavailable, ModelMissing) as exc:
            self.error, self.status = str(exc), "error"
        except Exception as exc:  # a broken model file, a CUDA error: report it, keep serving /health
            log.exception("ASR backend %s failed to load", self.backend.name)
            self.error, self.status = f"{type(exc).__name__}: {exc}", "error"
        else:
            self.status = "ready"
        self.load_s = round(time.monotonic() - started, 3)
        if self.error:
            log.error("ASR backend %s is not available: %s", self.backend.name, self.error)
        else:
            b = self.backend
            log.info("ASR backend %s ready in %.1f s (model %s%s, device %s, precision %s)", b.name,
                     self.load_s, b.model_path or b.model, f", {b.architecture}" if b.architecture else "",
                     b.settings.device, b.precision or "n/a")

    def health(self) -> dict:
        s, b = self.settings, self.backend
        return {
            "status": self.status, "ready": self.status == "ready", "error": self.error,
            "backend": b.name if b else (s.backend if s else None),
            "model": b.model if b else None, "model_path": b.model_path if b else None,
            "device": b.settings.device if b else (s.device if s else None),  # auto, once resolved
            "precision": b.precision if b else None, "architecture": b.architecture if b else None,
            "workers": s.workers if s else None,
            "max_seconds": s.max_seconds if s else None, "max_bytes": s.max_bytes if s else None,
            "load_s": self.load_s,
            "device_warning": _device_warning(),
        }


def _device_warning() -> str | None:
    from . import loaders
    return loaders.cuda_warning


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    try:
        settings = settings or settings_from_env()
        state = ModelState(settings, make_backend(settings))
    except SettingsError as exc:
        state = ModelState(None, None, error=f"bad setting: {exc}")
        log.error("ASR server misconfigured: %s", exc)
    metrics = Metrics(state.health()["backend"] or "unknown")
    sessions = streaming.Sessions(settings.stream_max_sessions if state.settings else 0)
    metrics.count_sessions(sessions)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if state.backend is not None and loaders.warm(settings):
            state.load()  # preloaded by the warm reloader (loaders.preload): instant, ready at once
        elif state.backend is not None:
            log.info("loading ASR backend %s, model %s", state.backend.name, state.backend.model)
            threading.Thread(target=state.load, name="asr-load", daemon=True).start()
        yield
        if state.backend is not None:
            state.backend.close()

    app = FastAPI(title="duplex ASR server", lifespan=lifespan)
    errors.install(app)  # FastAPI's own 404/405/422/500 answers in the documented shape too
    if state.settings:  # a chunked upload has no Content-Length for _transcribe to check first
        app.add_middleware(errors.BodyLimit, limit=settings.max_bytes + 64 * 1024, hint="ASR_MAX_BYTES",
                           code="file_too_large")
    app.state.model = state
    telemetry.instrument(app)  # request spans, only when OTEL_* says so

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(state.health(), status_code=200 if state.status == "ready" else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.ready.labels(metrics.backend).set(1 if state.status == "ready" else 0)
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        """Live transcription: docs/streaming.md."""
        await streaming.serve(websocket, state, settings, sessions, metrics)

    @app.post("/transcribe")
    async def transcribe(request: Request) -> JSONResponse:
        """Transcribe the multipart field `file` (WAV, FLAC, OGG or MP3, any rate and channels)."""
        started = time.monotonic()
        metrics.in_flight.labels(metrics.backend).inc()
        try:
            body = await _transcribe(request, started)
        except audio.AudioError as exc:
            metrics.answered(exc.status, exc.code)
            return error_response(exc.status, exc.code, exc.detail)
        except BackendFailure as exc:
            metrics.answered(500, "backend_failure")
            return error_response(500, "backend_failure", str(exc))
        except Exception as exc:  # a bug or a backend error: JSON like every other answer, and logged
            log.exception("transcription failed")
            metrics.answered(500, "internal_error")
            return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")
        finally:
            metrics.in_flight.labels(metrics.backend).dec()
        metrics.answered(200)
        metrics.transcribed(body["duration_s"], body["processing_s"])
        return JSONResponse(body)

    async def _transcribe(request: Request, started: float) -> dict:
        if state.status != "ready":
            raise audio.AudioError(503, "not_ready", f"the {state.health()['backend']} backend is "
                                   f"{state.status}" + (f": {state.error}" if state.error else ""))
        limit = settings.max_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit + 64 * 1024:  # refuse before reading; allow for the multipart framing
            audio.check_size(declared, limit, "the request body")
        data = await _read_upload(request, limit)
        clip = await asyncio.to_thread(audio.decode, data, max_seconds=settings.max_seconds,
                                       max_bytes=limit)
        text = await state.backend.transcribe(clip.samples)
        return {"text": text, "duration_s": round(clip.duration_s, 3),
                "processing_s": round(time.monotonic() - started, 3),
                "backend": state.backend.name, "model": state.backend.model,
                "source": {"format": clip.source_format, "sample_rate": clip.source_rate,
                           "channels": clip.source_channels}}

    return app


async def _read_upload(request: Request, limit: int) -> bytes:
    """The bytes of the multipart field `file`, refusing a missing field or an oversized file."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise audio.AudioError(400, "bad_request", "expected a multipart/form-data upload with a "
                               f"`file` field (curl -F file=@speech.wav ...), got {kind or 'no content-type'!r}")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:  # not multipart, broken framing, too many parts; errors.BodyLimit's 413
        if isinstance(exc, HTTPException) and exc.status_code == 413:
            raise audio.AudioError(413, "file_too_large", exc.detail) from None
        raise audio.AudioError(400, "bad_request", f"expected a multipart/form-data upload with "
                               f"a `file` field: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise audio.AudioError(400, "missing_file", "the multipart form has no `file` field "
                                   "holding the audio (curl -F file=@speech.wav ...)")
        data = await upload.read(limit + 1)
    finally:
        await form.close()
    audio.check_size(len(data), limit)
    return data


app = create_app()
