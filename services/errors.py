"""Domain errors. Each carries a stable snake_case code; the HTTP layer maps kinds to statuses.

The message is English, and a message id of the catalogs (services/locale/) too: values go in
as `{name}` placeholders with keyword arguments, never formatted in beforehand, so the HTTP
layer can say the same in the reader's language (services/api/errors.py).
"""

from __future__ import annotations

from typing import Any


class TwofaError(Exception):
    code = "error"
    # Whether the transaction that raised it must still commit (failed attempts are counted
    # and audited even though the request fails).
    keep_changes = False

    def __init__(self, message: str, code: str | None = None, **params: Any) -> None:
        self.template, self.params = message, params
        self.message = message.format(**params) if params else message
        super().__init__(self.message)
        if code:
            self.code = code


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for the marker
    """Marks an English message for the catalogs where it is kept apart from the error that
    carries it (a table, a helper): `pybabel extract` finds it by this name."""
    return message


class InvalidInput(TwofaError):
    code = "invalid_request"


class NotFound(TwofaError):
    code = "not_found"


class Conflict(TwofaError):
    code = "conflict"


class Unauthenticated(TwofaError):
    code = "unauthenticated"


class Forbidden(TwofaError):
    code = "forbidden"


class RateLimited(TwofaError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, **params: Any) -> None:
        super().__init__(message, **params)
        self.retry_after = max(1, retry_after)


class AttemptFailed(TwofaError):
    """A failed credential or code: refused, but the failure itself is recorded."""

    keep_changes = True


class InvalidCredentials(AttemptFailed, Unauthenticated):
    code = "invalid_credentials"


class InvalidCode(AttemptFailed, Unauthenticated):
    code = "invalid_code"


class Throttled(RateLimited):
    """Rate limited after recording the attempt that crossed the limit."""

    keep_changes = True


class Unavailable(TwofaError):
    """Overloaded (or a dependency is down): try again after `retry_after` seconds."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: int, **params: Any) -> None:
        super().__init__(message, **params)
        self.retry_after = max(1, retry_after)
