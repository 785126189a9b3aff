"""What an operator scrapes and probes: /metrics, /readyz, and the per-request series.

`/metrics` serves this process's own series (requests, verification outcomes, lockouts)
and the installation-wide ones read from the database at scrape time.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import jsonlog, readiness
from services.api import openapi_errors
from services.api.errors import error_body, in_request_language
from services.api.request_log import RequestLog
from services.config import get_settings
from services.errors import N_
from services.metrics import events as event_metrics
from services.metrics.database import DatabaseCollector
from services.metrics.registry import REQUEST_SECONDS, REQUESTS, VERIFICATIONS

RETRY_AFTER_SECONDS = 5
# Routes that check a second-factor code: a 2xx is an accepted code, a 429 a locked refusal.
# (Refused codes are counted by reason from the events they record; see services.metrics.events.)
VERIFYING_ROUTES = {
    ("POST", "/v1/login/two-factor"), ("POST", "/v1/me/two-factor/confirm"),
    ("DELETE", "/v1/me/two-factor"), ("POST", "/v1/me/two-factor/recovery-codes"),
}


class RequestMetrics:
    """Counts every answer by route template (never the raw path: ids would explode the
    series) and times it. Pure ASGI, so streaming bodies pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before sending

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(route, method, str(status)).inc()
            REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)
            _count_verification(method, route, status)


def _count_verification(method: str, route: str, status: int) -> None:
    if (method, route) not in VERIFYING_ROUTES:
        return
    if 200 <= status < 300:
        VERIFICATIONS.labels("accepted").inc()
    elif status == 429:
        VERIFICATIONS.labels("locked").inc()


def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    """The database is down or restarting, or a statement ran past
    TWOFA_DATABASE_STATEMENT_TIMEOUT_MS, or every pooled connection stayed busy: a 503 to
    retry, never a 500 or a hang."""
    cancelled = type(getattr(exc, "orig", None)).__name__ == "QueryCanceled"
    message = (N_("The database did not answer in time; try again shortly.")
               if cancelled or isinstance(exc, PoolTimeout)
               else N_("The database is unreachable; try again shortly."))
    return JSONResponse(
        error_body("unavailable", in_request_language(request, message)),
        status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install(app: FastAPI) -> None:
    event_metrics.install()
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestLog, configure=_configure_logging)  # outermost: ids every answer
    app.add_exception_handler(OperationalError, _database_unreachable)
    app.add_exception_handler(InterfaceError, _database_unreachable)
    app.add_exception_handler(PoolTimeout, _database_unreachable)
    _document_errors(app)
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector())

    @app.get("/readyz", tags=["health"], responses=READY_RESPONSES, response_model=Ready,
             response_model_exclude_none=True)
    def readyz() -> Any:
        """200 when the database and the broker answer; 503 `unavailable` otherwise.

        `warnings` names what works but needs a person: invitations stalled because no worker
        takes them. A stall keeps the answer 200 (the replica itself can serve)."""
        problems = readiness.problems()
        if problems:
            return JSONResponse(
                error_body("unavailable", "Not ready: " + "; ".join(problems) + "."),
                status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return Ready(status="ready", warnings=readiness.warnings() or None)

    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format."}})
    def metrics() -> Response:
        """This process's series, then the installation-wide ones read from the database."""
        body = generate_latest(PROCESS_REGISTRY) + generate_latest(scrape)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _configure_logging() -> bool:
    """JSON lines when TWOFA_LOG_FORMAT=json; run when the server starts, not on import."""
    if get_settings().log_format != "json":
        return False
    jsonlog.configure()
    # The twofa.request line is the access log here (route template, ids, no query).
    logging.getLogger("uvicorn.access").disabled = True
    return True


def _document_errors(app: FastAPI) -> None:
    """The error statuses join the OpenAPI document when it is first built (after every
    router is included)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            openapi_errors.document(build())  # build() caches the dict it returns
        return build()

    app.openapi = openapi  # type: ignore[method-assign]


class Ready(BaseModel):
    status: Literal["ready"]
    # Only while something needs a person, e.g. "invitations stalled: …" (docs/operations.md).
    warnings: list[str] | None = None


READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database or the broker is unreachable (`unavailable`, Retry-After)."},
}
