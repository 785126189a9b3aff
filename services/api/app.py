"""The JSON API as a FastAPI application: routers, error format, health. The web console is
mounted beside it by the composition root, services/asgi.py."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel

from services import db_read
from services.api import docs, errors, observability
from services.api.body_limit import BodyLimit
from services.api.no_store import NoStore
from services.api.request_context import RequestContext
from services.api.routes import (
    admin,
    auth,
    checks,
    events,
    exemptions,
    me,
    passwords,
    sessions,
    teammates,
    two_factor,
    webauthn,
    webhooks,
)

MAX_BODY_BYTES = 64 * 1024


class Health(BaseModel):
    status: Literal["ok"]


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # What exists once the server has started (modules, routes, models: ~160,000 objects)
    # lives as long as the process. Frozen, the collector no longer walks it: a full
    # collection of it stalled the event loop for ~100 ms at a time, the long tail of every
    # request's latency (docs/measurements.md).
    gc.collect()
    gc.freeze()
    yield
    await db_read.close_pools()  # the async connections of the hot checks


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="twofa",
        version="0.1.0",
        description="Mandatory two-factor authentication for team workspaces.",
        docs_url=None,  # docs.install serves /docs without a CDN
        redoc_url=None,  # ReDoc would load from a CDN too
    )
    # Every body here is a small JSON object: anything bigger is refused unread.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RequestContext)  # events a request records carry its ip and user agent
    app.add_middleware(NoStore)  # nothing with a token, secret or teammates' data is cached
    errors.install(app)
    observability.install(app)  # /metrics, /readyz, request series, 503 when the database is down
    docs.install(app)
    for module in (auth, me, passwords, sessions, two_factor, webauthn, admin, events,
                   teammates, exemptions, webhooks, checks):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Health:
        return Health(status="ok")

    return app

