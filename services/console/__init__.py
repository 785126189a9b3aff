"""The web console: server-rendered pages for people, beside the JSON API (services/api).

A second thin layer over the same service functions the JSON routes call; it adds cookie
sessions, CSRF tokens and HTML, and no rules of its own.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from services.console import (
    audit_pages,
    auth_pages,
    authentication_pages,
    dev_mail,
    error_pages,
    hosts,
    keys_pages,
    password_pages,
    preferences_pages,
    reauth_pages,
    records_pages,
    sessions_pages,
    settings_pages,
    teammates_pages,
    web,
)

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the console's pages, static files and error pages on the API's app."""
    web.install_handlers(app)
    error_pages.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    # /dev/mail decides per request whether it exists (dev_mail.local_only): importing the
    # app reads no settings. Every page first checks the Host it was asked for.
    for module in (auth_pages, keys_pages, password_pages, preferences_pages, settings_pages,
                   sessions_pages,
                   authentication_pages, teammates_pages, audit_pages, records_pages,
                   reauth_pages, dev_mail):
        app.include_router(module.router, dependencies=[Depends(hosts.check_host),
                                                        Depends(web.posts_from_this_site)])
