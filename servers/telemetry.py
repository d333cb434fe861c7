"""OpenTelemetry request spans for the shipped servers, on only when the environment says so.

A launcher (duplex, Compose, Kubernetes) sets the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED. Off by default, and while off nothing
of OpenTelemetry is even imported. Spans leave through a BatchSpanProcessor, which exports from its
own thread: nothing is sent from the event loop that serves audio.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

log = logging.getLogger("uvicorn.error").getChild("telemetry")
PACKAGES = ("Add opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http, opentelemetry-instrumentation-fastapi "
            "(and -httpx for clients) to the env's requirements.in, then `inv lock` and `inv setup`")
UNTRACED = "health,metrics"  # polled every 50 ms by health waits and scrapers: noise, not requests
# The query duplex's own probes carry (duplex.run.health.PROBE_QUERY; servers never import duplex):
# health waits, `inv status`, the dashboard's sampling, the images' health checks. Their access
# lines are left out of the log, so `inv logs` shows the service's traffic; anyone else's
# /health or /metrics request is still logged.
PROBE_MARK = "duplex-probe=1"


class _HideProbes(logging.Filter):
    hides_duplex_probes = True  # found by this name: a re-imported module's class is another class

    def filter(self, record: logging.LogRecord) -> bool:
        return PROBE_MARK not in record.getMessage()


def hide_probes() -> None:
    """Leave duplex's probes out of uvicorn's access log (once per process: the warm reloader
    re-imports the app, and with it this call)."""
    access = logging.getLogger("uvicorn.access")
    if not any(getattr(f, "hides_duplex_probes", False) for f in access.filters):
        access.addFilter(_HideProbes())


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the environment asks for traces and names somewhere to send them."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def instrument(app) -> bool:
    """Trace every request of a FastAPI app (not /health, /metrics); False when telemetry is off.
    Whether on or off, duplex's probes are left out of the access log too (`hide_probes`)."""
    hide_probes()
    provider = _provider()
    if provider is None:
        return False
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError as exc:
        log.warning("telemetry is on but %s; no request spans. %s", exc, PACKAGES)
        return False
    # One span per request: the per-chunk `http send/receive` spans cost time and say little here.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED,
                                       exclude_spans=["receive", "send"])
    return True


def instrument_client(client) -> None:
    """Trace an httpx client's calls and pass the trace on (W3C traceparent) to the next service."""
    provider = _provider()
    if provider is None:
        return
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError as exc:
        log.warning("telemetry is on but %s; outgoing calls are not traced. %s", exc, PACKAGES)
        return
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def _provider():
    if not enabled():
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # an env locked without it: say so once, serve anyway
        log.warning("telemetry is on but OpenTelemetry is not installed in this env (%s): no spans. %s",
                    exc, PACKAGES)
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # once per process: the warm reloader re-imports this module
        return current
    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
    trace.set_tracer_provider(provider)  # flushed at exit (SIGTERM from duplex stop included)
    log.info("telemetry: exporting spans as %s to %s", os.environ.get("OTEL_SERVICE_NAME", "unknown_service"),
             os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    return provider
