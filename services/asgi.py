"""The one ASGI application `twofa api` and `twofa up` serve: the JSON API (services/api) with
the web console's pages beside it (services/console). Composed here, above both, so that
neither HTTP layer imports the other."""

from __future__ import annotations

from fastapi import FastAPI

from services import console
from services.api import tracing
from services.api.app import create_app as create_api


def create_app() -> FastAPI:
    app = create_api()
    console.install(app)
    tracing.install(app)  # the console's pages and the API alike, when OTEL_* asks for it
    return app


app = create_app()
