"""Prometheus metrics for the ASR server, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, backend: str):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("asr_requests", "Transcription requests answered, by HTTP status",
                                ["backend", "status"], registry=r)
        self.errors = Counter("asr_errors", "Transcription requests refused or failed, by error code",
                              ["backend", "error"], registry=r)
        self.audio_seconds = Counter("asr_audio_seconds", "Seconds of audio transcribed",
                                     ["backend"], registry=r)
        self.latency = Histogram("asr_request_duration_seconds",
                                 "Wall time of successful transcriptions (decode + recognise)",
                                 ["backend"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("asr_requests_in_flight", "Transcriptions under way", ["backend"],
                               registry=r)
        self.ready = Gauge("asr_model_ready", "1 once the model is loaded", ["backend"], registry=r)
        self.streams = Gauge("asr_streams_open", "WS /stream sessions open", ["backend"], registry=r)
        self.stream_audio = Counter("asr_stream_audio_seconds", "Seconds of audio received by WS /stream",
                                    ["backend"], registry=r)
        self.stream_sessions = Counter("asr_stream_sessions", "WS /stream sessions ended, by close code",
                                       ["backend", "close_code"], registry=r)
        self.backend = backend

    def answered(self, status: int, error: str | None = None) -> None:
        self.requests.labels(self.backend, str(status)).inc()
        if error:
            self.errors.labels(self.backend, error).inc()

    def transcribed(self, audio_s: float, wall_s: float) -> None:
        self.audio_seconds.labels(self.backend).inc(audio_s)
        self.latency.labels(self.backend).observe(wall_s)

    def stream_ended(self, close_code: int) -> None:
        self.stream_sessions.labels(self.backend, str(close_code)).inc()

    def count_sessions(self, sessions) -> None:
        """`active_sessions` and `session_slots`, read from `sessions` (its .open and .limit) at each
        scrape. Unlabelled and named alike on asr and mt: the names are a contract with the cluster
        side (the autoscaler and the drain read `active_sessions`, docs/streaming.md#metrics)."""
        active = Gauge("active_sessions", "Live WebSocket sessions (WS /stream) now", registry=self.registry)
        slots = Gauge("session_slots", "The most WebSocket sessions this server takes (ASR_STREAM_MAX_SESSIONS)",
                      registry=self.registry)
        active.set_function(lambda: sessions.open)
        slots.set_function(lambda: sessions.limit)

    def render(self) -> bytes:
        return generate_latest(self.registry)
