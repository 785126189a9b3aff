"""The error answers of each operation, written into the OpenAPI document.

Every error has one shape, `{"error": {"code", "message"}}`; which statuses an operation can
answer follows from what it takes: a body (413, 422), parameters (422, and 404 for ids in the
path), a caller (401, 403 for what the caller may not do, 404 for another workspace), a
change (409), a POST (429: sign-in and code checks are throttled). Any operation may answer
503 `unavailable`.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    }},
}
MEANING = {
    401: "No valid session or API key (`unauthenticated`, `invalid_api_key`, …).",
    403: "The caller may not do this (`forbidden`, `enrollment_required`, "
         "`reauthentication_required`, …).",
    404: "Not found, or not the caller's to see.",
    409: "Conflicts with the current state.",
    413: "The body is over 64 KiB (`payload_too_large`).",
    422: "Invalid input (`invalid_request` and more specific codes), also for a body that is "
         "not JSON in UTF-8.",
    429: "Too many attempts (`rate_limited`); see Retry-After.",
    503: "Overloaded or the database is unreachable (`unavailable`); see Retry-After.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
# Operations anyone may call: every other /v1 operation needs a session or an API key.
PUBLIC = {("post", "/v1/login"), ("post", "/v1/invitations/accept"), ("post", "/v1/login/two-factor")}
CHANGES = {"post", "put", "patch", "delete"}
# Operations besides POSTs that check a code, and so share its failure throttle (429).
CODE_CHECKS = {("delete", "/v1/me/two-factor")}


def document(openapi: dict[str, Any]) -> None:
    """Add the error responses to every /v1 operation of a built OpenAPI document. FastAPI's
    own 422 shape (`detail`) is replaced: validation errors answer in the common shape."""
    for path, operations in openapi.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses(method, path, operation)):
                if str(status) not in responses or status == 422:
                    responses[str(status)] = _response(status)


def statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    found = {401, 503}  # 401 for a wrong password or code as for a missing session
    places = {p.get("in") for p in operation.get("parameters", [])}
    if "requestBody" in operation:
        found |= {413, 422}
    if places & {"path", "query"}:
        found.add(422)
    if "path" in places:
        found.add(404)
    if (method, path) not in PUBLIC:
        found |= {403, 404}
    if method in CHANGES:
        found |= {409, 422}
    if method == "post" or (method, path) in CODE_CHECKS:
        found.add(429)
    return found


def _response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": MEANING[status],
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response
