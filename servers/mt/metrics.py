"""Prometheus metrics for the translation server, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("mt_requests", "Translations answered, by route and HTTP status",
                                ["model", "route", "status"], registry=r)
        self.errors = Counter("mt_errors", "Translations refused or failed, by error code",
                              ["model", "error"], registry=r)
        self.tokens = Counter("mt_tokens", "Tokens read (prompt) and written (generated)",
                              ["model", "kind"], registry=r)
        self.latency = Histogram("mt_request_duration_seconds", "Wall time of successful translations",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.rate = Histogram("mt_generated_tokens_per_second", "Generation speed of each translation",
                              ["model"], buckets=RATE_BUCKETS, registry=r)
        self.in_flight = Gauge("mt_requests_in_flight", "Translations under way", ["model"], registry=r)
        self.streams = Gauge("mt_streams_open", "/ws/translate sessions open", ["model"], registry=r)
        self.ready = Gauge("mt_model_ready", "1 once the model is loaded", ["model"], registry=r)
        self.model = model

    def answered(self, route: str, status: int, error: str | None = None) -> None:
        self.requests.labels(self.model, route, str(status)).inc()
        if error:
            self.errors.labels(self.model, error).inc()

    def translated(self, prompt_tokens: int, output_tokens: int, wall_s: float, generate_s: float) -> None:
        self.tokens.labels(self.model, "prompt").inc(prompt_tokens)
        self.tokens.labels(self.model, "generated").inc(output_tokens)
        self.latency.labels(self.model).observe(wall_s)
        if generate_s > 0:
            self.rate.labels(self.model).observe(output_tokens / generate_s)

    def count_sessions(self, sessions) -> None:
        """`active_sessions` and `session_slots`, read from `sessions` (its .open and .limit) at each
        scrape. Unlabelled and named alike on asr and mt: the names are a contract with the cluster
        side (the autoscaler and the drain read `active_sessions`, docs/streaming.md#metrics)."""
        active = Gauge("active_sessions", "Live WebSocket sessions (/ws/translate) now", registry=self.registry)
        slots = Gauge("session_slots", "The most WebSocket sessions this server takes (MT_WS_MAX_SESSIONS)",
                      registry=self.registry)
        active.set_function(lambda: sessions.open)
        slots.set_function(lambda: sessions.limit)

    def render(self) -> bytes:
        return generate_latest(self.registry)
