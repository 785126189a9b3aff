"""Every error is {"error": {"code", "message"}} with a 4xx status; bad input is never a 500.

The `code` never changes; the `message` is said in the language the request's
Accept-Language prefers among those twofa speaks (services/locale/), else English.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException

from services import errors
from services.api import field_problems
from services.errors import N_
from services.i18n.catalogs import translate
from services.i18n.locales import from_accept_language

log = logging.getLogger(__name__)

STATUS: list[tuple[type[errors.TwofaError], int]] = [
    (errors.RateLimited, 429),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.InvalidInput, 422),
    (errors.Unavailable, 503),
]


# Errors raised by the framework itself: our code and, where it helps, our own words.
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    404: ("not_found", ""),
    405: ("method_not_allowed", ""),
    413: ("payload_too_large", ""),
}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def in_request_language(request: Request, message: str, **params: object) -> str:
    """`message` (an English message id) in the request's language."""
    return translate(from_accept_language(request.headers.get("accept-language")), message,
                     **params)


def _twofa_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.TwofaError)
    return response_for(request, exc)


def response_for(request: Request, exc: errors.TwofaError) -> JSONResponse:
    """The answer to a domain error (what the handler installed below answers), its message
    in the request's language."""
    status = next((s for kind, s in STATUS if isinstance(exc, kind)), 400)
    headers = {}
    if isinstance(exc, errors.RateLimited | errors.Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    message = in_request_language(request, exc.template, **exc.params)
    return JSONResponse(error_body(exc.code, message), status_code=status, headers=headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    locale = from_accept_language(request.headers.get("accept-language"))
    problems = [field_problems.in_words(err, locale) for err in exc.errors()[:5]]
    return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)


NOT_JSON = N_("The body is not JSON in UTF-8.")


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI's only 400: a body it could not even decode (not UTF-8). Bad input is 422
        # `invalid_request` everywhere else, so here too.
        return JSONResponse(error_body("invalid_request", in_request_language(request, NOT_JSON)),
                            status_code=422)
    code, message = HTTP_ERRORS.get(exc.status_code, ("http_error", str(exc.detail)))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return JSONResponse(
        error_body(code, message or str(exc.detail)), status_code=exc.status_code,
        headers=headers
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path serves (Starlette names only the first route's)."""
    methods: set[str] = set()
    path = request.scope["path"]
    for route in iter_route_contexts(request.app.router.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and route.methods and pattern.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    """Last safety net: a uniqueness race the service did not turn into its own Conflict."""
    log.warning("integrity error answered 409: %s", exc)
    return JSONResponse(error_body("conflict", in_request_language(request, N_(
        "This conflicts with a change made meanwhile; reload and try again."))), status_code=409)


def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """Last safety net: a value the database refuses (the schemas should have said so)."""
    log.warning("data error answered 422: %s", exc)
    return JSONResponse(error_body("invalid_request",
                                   in_request_language(request, N_("A value is not acceptable."))),
                        status_code=422)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else (e.g. a COMMIT the database refused) is a 500, still in the error shape."""
    return JSONResponse(error_body("internal_error", in_request_language(request, N_(
        "Something went wrong on our side; the change was not saved."))), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.TwofaError, _twofa_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _internal_error)
