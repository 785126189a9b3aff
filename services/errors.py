"""Domain errors. Each carries a stable snake_case code; the HTTP layer maps kinds to statuses."""

from __future__ import annotations


class TwofaError(Exception):
    code = "error"
    # Whether the transaction that raised it must still commit (failed attempts are counted
    # and audited even though the request fails).
    keep_changes = False

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


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

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
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

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
