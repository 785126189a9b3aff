"""Error pages in the console's look: a mistyped address (404), a wrong method (405), an
address with values a page cannot use, a refusal no form caught, and a failure on our side
(500). The JSON API (`/v1`, and the machine endpoints beside it) keeps its JSON errors: each
handler here wraps the API's and answers HTML only for the console's addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from services import errors
from services.api.errors import STATUS, allowed_methods
from services.console import web
from services.errors import N_

Handler = Callable[[Request, Any], Any]  # as Starlette keeps them
FOR_MACHINES = ("/v1/", "/openapi.json", "/docs", "/healthz", "/readyz", "/metrics")

# English message ids: render() says a page's title and message in the reader's language.
PAGES: dict[int, tuple[str, str]] = {
    404: (N_("Page not found"), N_("There is no page at this address. Check it for a typo, "
                                   "or start again from the home page.")),
    405: (N_("This page cannot do that"), N_("This address does not take that kind of "
          "request: a form may have been sent to the wrong place, or a link saved from a "
          "form. Open the page again from the home page.")),
    413: (N_("Too much to send"), N_("The form sent more than this server accepts. Shorten "
                                     "what you typed and try again.")),
    500: (N_("Something went wrong"), N_("Something went wrong on our side and the change "
          "was not saved. Try again in a moment; if it keeps happening, tell whoever runs "
          "twofa for your team.")),
}
BAD_ADDRESS = (N_("This address cannot be used"), N_("Part of this address is not valid (it "
               "may have been cut short or edited). Open the page again from the home page."))
REFUSED = N_("This cannot be done")

def for_machines(request: Request) -> bool:
    path = request.url.path
    return path == "/v1" or path.startswith(FOR_MACHINES)


def page(request: Request, status: int, title: str, message: str | web.Words) -> Response:
    return web.render(request, "error.html", {"title": title, "message": message},
                      status_code=status)


def _http_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title, message = PAGES.get(exc.status_code, PAGES[404 if exc.status_code < 500 else 500])
    response = page(request, exc.status_code, title, message)
    if exc.status_code == 405:  # the same promise as the API's: every method the path serves
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def _invalid_page(request: Request, exc: Exception) -> Response:
    return page(request, 400, *BAD_ADDRESS)


def _refused_page(request: Request, exc: Exception) -> Response:
    """A service's refusal that no form turned into words on its own page."""
    assert isinstance(exc, errors.TwofaError)
    status = next((s for kind, s in STATUS if isinstance(exc, kind)), 400)
    if status == 404:
        return page(request, 404, *PAGES[404])
    return page(request, status, REFUSED, web.describe(exc))


def _server_page(request: Request, exc: Exception) -> Response:
    return page(request, 500, *PAGES[500])


def install(app: FastAPI) -> None:
    """After the API's handlers: each answers the console's addresses with a page instead."""
    for kind, console_page in ((HTTPException, _http_page),
                               (RequestValidationError, _invalid_page),
                               (errors.TwofaError, _refused_page), (Exception, _server_page)):
        app.add_exception_handler(kind, _either(app.exception_handlers[kind], console_page))


def _either(api: Handler, console: Handler) -> Handler:
    def handle(request: Request, exc: Exception) -> Any:
        return api(request, exc) if for_machines(request) else console(request, exc)
    return handle
