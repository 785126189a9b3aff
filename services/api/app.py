"""The FastAPI application: routers, error format, health."""

from __future__ import annotations

from fastapi import FastAPI

from services.api import docs, errors, observability
from services.api.body_limit import BodyLimit
from services.api.routes import admin, auth, checks, me, teammates, two_factor, webhooks

MAX_BODY_BYTES = 64 * 1024


def create_app() -> FastAPI:
    app = FastAPI(
        title="twofa",
        version="0.1.0",
        description="Mandatory two-factor authentication for team workspaces.",
        docs_url=None,  # docs.install serves /docs without a CDN
        redoc_url=None,  # ReDoc would load from a CDN too
    )
    # Every body here is a small JSON object: anything bigger is refused unread.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    errors.install(app)
    observability.install(app)  # /metrics, /readyz, request series, 503 when the database is down
    docs.install(app)
    for module in (auth, me, two_factor, admin, teammates, webhooks, checks):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
