"""Tracing for the API process (services/telemetry.py): a server span per request, the
caller's `traceparent` continued, on top of the clients every process traces."""

from __future__ import annotations

from fastapi import FastAPI

from services import telemetry

SERVICE_NAME = "twofa-api"


def install(app: FastAPI) -> None:
    """Instrument `app` when the OTEL_* variables turn tracing on (else import nothing)."""
    if not telemetry.start(SERVICE_NAME):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app)  # OTEL_PYTHON_FASTAPI_EXCLUDED_URLS: paths left out
