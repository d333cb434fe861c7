"""HTTP routes: GET /health, POST /translate, WebSocket /ws/translate, GET /metrics.
Run: uvicorn servers.mt.app:app.

/ws/translate takes a sequence of JSON messages such as the streaming ASR's `final` events
(`{"type": "final", "text": ...}`; other types such as `partial` are skipped) and answers each final
with `{"type": "translation", ...}` as soon as it is translated, in order. A session is closed when
idle or too long, and one past MT_WS_MAX_SESSIONS is refused, with asr's close codes (limits.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.websockets import WebSocketState

from .. import errors, origins, telemetry
from ..errors import error_response
from .limits import IDLE, TOO_LONG, SessionEnd, Sessions
from .metrics import Metrics
from .settings import Settings, SettingsError, language, settings_from_env
from .translator import ModelMissing, Translator

log = logging.getLogger("uvicorn.error").getChild("mt")


class Refused(Exception):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    source: str | None = None
    target: str | None = None


class ModelState:
    """The translator and where its loading stands: loading, ready, or error (with the reason)."""

    def __init__(self, settings: Settings | None, error: str | None = None):
        self.settings, self.error = settings, error
        self.translator = Translator(settings) if settings else None
        self.status = "error" if error else "loading"
        self.load_s: float | None = None

    def load(self) -> None:
        started = time.monotonic()
        try:
            self.translator.load()
        except ModelMissing as exc:
            self.error, self.status = str(exc), "error"
        except Exception as exc:  # a broken checkpoint, a CUDA error: report it, keep serving /health
            log.exception("MT model failed to load")
            self.error, self.status = f"{type(exc).__name__}: {exc}", "error"
        else:
            self.status = "ready"
        self.load_s = round(time.monotonic() - started, 3)
        if self.error:
            log.error("MT model %s is not available: %s", self.settings.model, self.error)
        else:
            t = self.translator
            log.info("MT model %s ready in %.1f s (%s, device %s, precision %s)", self.settings.model,
                     self.load_s, t.architecture, t.device, t.precision)

    def health(self) -> dict:
        s, t = self.settings, self.translator
        return {"status": self.status, "ready": self.status == "ready", "error": self.error,
                "model": s.model if s else None, "model_path": str(t.model_path) if t and t.model_path else None,
                "device": t.device if t else None, "precision": t.precision if t else None,
                "architecture": t.architecture if t else None, "load_s": self.load_s,
                "source": s.source if s else None, "target": s.target if s else None,
                "max_chars": s.max_chars if s else None, "max_new_tokens": s.max_new_tokens if s else None}


def create_app(settings: Settings | None = None) -> FastAPI:
    try:
        settings = settings or settings_from_env()
        state = ModelState(settings)
    except SettingsError as exc:
        state = ModelState(None, error=f"bad setting: {exc}")
        log.error("MT server misconfigured: %s", exc)
    metrics = Metrics(settings.model if state.settings else "unknown")
    limits = settings if state.settings else Settings()  # a bad setting: the defaults bound the stream
    sessions = Sessions(limits.ws_max_sessions)
    metrics.count_sessions(sessions)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if state.translator is not None:
            log.info("loading MT model %s", settings.model)
            threading.Thread(target=state.load, name="mt-load", daemon=True).start()
        yield

    app = FastAPI(title="duplex MT server", lifespan=lifespan)
    errors.install(app)  # FastAPI's own 404/405/422/500 answers in the documented shape too
    app.add_middleware(errors.BodyLimit, limit=message_limit(settings.max_chars if state.settings else 4000),
                       hint="send the text sentence by sentence (MT_MAX_CHARS)")
    app.state.model = state
    telemetry.instrument(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({**state.health(), "ws_idle_seconds": limits.ws_idle_seconds,
                             "ws_max_sessions": limits.ws_max_sessions,
                             "ws_max_wall_seconds": limits.ws_max_wall_seconds, "ws_open": sessions.open},
                            status_code=200 if state.status == "ready" else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.ready.labels(metrics.model).set(1 if state.status == "ready" else 0)
        return Response(metrics.render(), media_type=metrics.content_type)

    async def translate_one(text, source, target) -> dict:
        """Check, translate, count; Refused for what the caller must change."""
        if state.status != "ready":
            raise Refused(503, "not_ready", f"the model is {state.status}"
                          + (f": {state.error}" if state.error else "; try again once /health says ready"))
        if not isinstance(text, str) or not text.strip():
            raise Refused(400, "empty_text", "`text` must hold the words to translate")
        if len(text) > settings.max_chars:
            raise Refused(413, "too_large", f"`text` has {len(text)} characters; at most {settings.max_chars} "
                          "(MT_MAX_CHARS) per request: send it sentence by sentence")
        try:
            source = language(settings.source if source is None else source, "source")
            target = language(settings.target if target is None else target, "target")
        except SettingsError as exc:
            raise Refused(400, "bad_language", str(exc)) from None
        started = time.monotonic()
        metrics.in_flight.labels(metrics.model).inc()
        try:
            out = await asyncio.to_thread(state.translator.translate, text.strip(), source, target)
        finally:
            metrics.in_flight.labels(metrics.model).dec()
        wall = time.monotonic() - started
        metrics.translated(out.prompt_tokens, out.output_tokens, wall, out.generate_s)
        return {"text": text, "translation": out.text, "source": source, "target": target, "model": settings.model,
                "prompt_tokens": out.prompt_tokens, "output_tokens": out.output_tokens,
                "processing_s": round(wall, 4), "generate_s": round(out.generate_s, 4),
                "tokens_per_s": round(out.output_tokens / out.generate_s, 1) if out.generate_s > 0 else None}

    @app.post("/translate")
    async def translate(body: TranslateRequest) -> JSONResponse:
        """Translate `text` from `source` to `target` (language codes; default MT_SOURCE, MT_TARGET)."""
        try:
            answer = await translate_one(body.text, body.source, body.target)
        except Refused as exc:
            metrics.answered("translate", exc.status, exc.code)
            return error_response(exc.status, exc.code, exc.detail)
        except Exception as exc:  # a bug or a generation error: JSON like every other answer, and logged
            log.exception("translation failed")
            metrics.answered("translate", 500, "internal_error")
            return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")
        metrics.answered("translate", 200)
        return JSONResponse(answer)

    @app.websocket("/ws/translate")
    async def stream(ws: WebSocket) -> None:
        """Finals in, translations out, in order; `?source=&target=` set the pair for the session.
        A bad message gets an `error` event and the session goes on; the limits (idle, wall time,
        sessions open) end it with an `error` event and asr's close codes."""
        if await origins.refuse_foreign(ws, settings.origins if state.settings else origins.Origins()):
            return
        await ws.accept()
        try:
            sessions.enter()
        except SessionEnd as exc:
            metrics.answered("stream", 429, exc.code)
            log.info("translation stream refused: %s", exc.reason())
            await _close(ws, exc)
            return
        metrics.streams.labels(metrics.model).set(sessions.open)
        try:
            await session(ws)
        except SessionEnd as exc:
            metrics.answered("stream", exc.event()["status"], exc.code)
            log.info("translation stream closed: %s", exc.reason())
            await _close(ws, exc)
        except WebSocketDisconnect:
            pass
        finally:
            sessions.leave()
            metrics.streams.labels(metrics.model).set(sessions.open)

    async def next_message(ws: WebSocket, deadline: float) -> dict:
        """The client's next message within MT_WS_IDLE_SECONDS and before the session's deadline;
        SessionEnd otherwise, WebSocketDisconnect when the client left."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise SessionEnd(TOO_LONG, f"the session lasted {limits.ws_max_wall_seconds:g} s "
                                       "(MT_WS_MAX_WALL_SECONDS); open a new one")
        try:
            message = await asyncio.wait_for(ws.receive(), min(limits.ws_idle_seconds, left))
        except asyncio.TimeoutError:
            if limits.ws_idle_seconds < left:
                raise SessionEnd(IDLE, f"no message for {limits.ws_idle_seconds:g} s (MT_WS_IDLE_SECONDS); "
                                       "open a new session when there is text to translate") from None
            raise SessionEnd(TOO_LONG, f"the session lasted {limits.ws_max_wall_seconds:g} s "
                                       "(MT_WS_MAX_WALL_SECONDS); open a new one") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1006))
        return message

    async def session(ws: WebSocket) -> None:
        source, target = ws.query_params.get("source") or None, ws.query_params.get("target") or None
        limit = message_limit(settings.max_chars if state.settings else 4000)
        deadline = time.monotonic() + limits.ws_max_wall_seconds
        while True:
            try:
                message = await next_message(ws, deadline)
                event = parse_event(message.get("text"), limit)
            except Refused as exc:
                metrics.answered("stream", exc.status, exc.code)
                await _refuse(ws, None, exc)
                continue
            if event.get("type", "final") != "final":
                continue  # partials and others: translated once they are final
            received = time.monotonic()
            try:
                answer = await translate_one(event.get("text"), event.get("source", source),
                                             event.get("target", target))
            except Refused as exc:
                metrics.answered("stream", exc.status, exc.code)
                await _refuse(ws, event.get("id"), exc)
                continue
            metrics.answered("stream", 200)
            await ws.send_json({"type": "translation", "id": event.get("id"), **answer,
                                "answered_s": round(time.monotonic() - received, 4)})

    return app


def message_limit(max_chars: int) -> int:
    """The most bytes one /ws/translate message may hold: its text at MT_MAX_CHARS, every character
    escaped (`\\uXXXX`), and room for the other fields."""
    return 6 * max_chars + 4096


def parse_event(text: str | None, limit: int) -> dict:
    """One /ws/translate message as a JSON object, or Refused: not text, too long, not JSON, nested
    past what the parser takes (a RecursionError), or not an object."""
    example = '{"type": "final", "text": "..."}'
    if text is None:
        raise Refused(400, "bad_request", f"send JSON text messages such as {example}, not binary ones")
    if len(text) > limit:
        raise Refused(413, "too_large", f"a message of {len(text)} characters is over the {limit}-character "
                      "limit (MT_MAX_CHARS); send the text sentence by sentence")
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(400, "bad_request", f"send JSON text messages such as {example}") from None
    if not isinstance(event, dict):
        raise Refused(400, "bad_request", "each message must be a JSON object")
    return event


async def _refuse(ws: WebSocket, ident, exc: Refused) -> None:
    await ws.send_json({"type": "error", "id": ident, "status": exc.status, "error": exc.code, "detail": exc.detail})


async def _close(ws: WebSocket, exc: SessionEnd) -> None:
    """The `error` event, then the close frame; nothing when the client is gone already."""
    if ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        await ws.send_json(exc.event())
        await ws.close(exc.close_code, exc.reason())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


app = create_app()
