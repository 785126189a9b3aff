"""Tracing for the API process (services/telemetry.py): a server span per request, the
caller's `traceparent` continued, on top of the clients every process traces."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services import telemetry

SERVICE_NAME = "twofa-api"


def install(app: FastAPI) -> None:
    """Instrument `app` when the OTEL_* variables turn tracing on (else import nothing)."""
    if not telemetry.start(SERVICE_NAME):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # OTEL_PYTHON_FASTAPI_EXCLUDED_URLS: paths left out.
    FastAPIInstrumentor.instrument_app(app, server_request_hook=_query_values_hidden)


def _query_values_hidden(span: Any, scope: dict[str, Any]) -> None:
    """The request's URL without its query values (`/join?token=…`), as in the access log:
    a join or reset link carries its token there, and traces leave the installation."""
    query = scope.get("query_string", b"").decode("latin-1")
    if not query or not span.is_recording():
        return
    hidden = "&".join(f"{part.partition('=')[0]}=…" for part in query.split("&") if part)
    attributes = span.attributes or {}
    if "url.query" in attributes:
        span.set_attribute("url.query", hidden)
    for key in ("http.url", "url.full"):
        if key in attributes:
            span.set_attribute(key, f"{str(attributes[key]).partition('?')[0]}?{hidden}")
