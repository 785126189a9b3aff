"""A process's OpenTelemetry setup, from the standard OTEL_* variables and nothing else.

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
OTEL_TRACES_EXPORTER is set, and off when OTEL_TRACES_EXPORTER is `none` or
OTEL_SDK_DISABLED is `true`. Off, nothing of the SDK is imported. On, each process names
itself (`twofa-api`, `twofa-worker`, `twofa-relay`) with an instance id of its own, exports
in batches (OTEL_BSP_*) over OTLP/HTTP (OTEL_EXPORTER_OTLP_*), samples by OTEL_TRACES_SAMPLER,
and traces its database, Redis and outgoing HTTP calls. The entry points add their own
framework (services/api/tracing.py, workers/tracing.py).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

from services import tracing

log = logging.getLogger(__name__)
_provider: Any = None  # the process's TracerProvider once started


def exporters(environ: Mapping[str, str] | None = None) -> list[str]:
    """The trace exporters the environment asks for ([] means tracing is off)."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if "none" in named:
        return []
    if named:
        return named
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if endpoint else []


def wanted() -> bool:
    return bool(exporters())


def start(service_name: str) -> bool:
    """Set tracing up for this process (once); False, and nothing imported, when it is off."""
    global _provider
    if _provider is not None:
        return True
    chosen = exporters()
    if not chosen:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Ours win over OTEL_SERVICE_NAME: three processes, three names; other resource
    # attributes (OTEL_RESOURCE_ATTRIBUTES: deployment.environment, …) are kept.
    resource = Resource.create({"service.name": service_name,
                                "service.instance.id": str(uuid.uuid4())})
    provider = TracerProvider(resource=resource)
    for exporter in filter(None, map(_exporter, chosen)):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    _instrument_clients()
    tracing.enable()
    return True


def flush() -> None:
    """Export what is buffered (a Celery pool process ends without running atexit)."""
    if _provider is not None:
        _provider.force_flush()


def _exporter(name: str) -> Any:
    if name == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        if protocol != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; exporting over "
                        "http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none); ignored", name)
    return None


def _instrument_clients() -> None:
    """The libraries every process uses: SQLAlchemy (engines made from now on), Redis, httpx."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # It declares SQLAlchemy < 2.1 and would skip itself; the engine events it listens to
    # are unchanged in 2.1 (tests/test_tracing.py sees its spans).
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    RedisInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument(request_hook=_url_without_path)


def _url_without_path(span: Any, request: Any) -> None:
    """httpx's span names the URL; a webhook URL's path or query may be the receiver's
    secret (…/hooks/T0/B0/XXXX), so the span keeps its scheme, host and port only."""
    if not span.is_recording():
        return
    url = request.url
    kept = f"{url.scheme}://{url.netloc.decode()}/…"
    for key in ("url.full", "http.url"):
        if key in (span.attributes or {}):
            span.set_attribute(key, kept)
