"""Email addresses: validated by email-validator, stored normalized, compared case-insensitively.

No hand-written rules: `x@evil.test>,<victim@demo.test` and the like are refused by the
library's RFC 5322/6531 syntax checks. No DNS or deliverability look-ups (a sign-in must
not wait on a resolver). Special-use domains (`.test`, `.invalid`, …) are allowed: demos,
tests and the default sender use them, and twofa only ever mails what an admin typed in.
"""

from __future__ import annotations

from functools import cache

import email_validator
from sqlalchemy import ColumnElement, func

from services.errors import InvalidInput
from services.models import Teammate


@cache
def _configure() -> None:
    # email-validator is configured through module attributes (its documented way); its
    # special-use list would refuse @demo.test. Done on first use, not at import.
    email_validator.SPECIAL_USE_DOMAIN_NAMES = []


def normalize_email(address: str) -> str:
    """The normalized ASCII form (`Anna@bücher.example` → `Anna@xn--bcher-kva.example`).

    The local part keeps its case (RFC 5321 lets servers tell cases apart); lookups compare
    with `matches`, case-insensitively. Internationalised local parts are refused: without
    SMTPUTF8, which twofa does not rely on, no mail server can be handed such an address.
    """
    _configure()
    try:
        valid = email_validator.validate_email(
            address.strip(), check_deliverability=False, allow_smtputf8=False,
            allow_display_name=False, allow_domain_literal=False, allow_quoted_local=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidInput("{address} is not an email address: {problem}", "invalid_email",
                           address=repr(address), problem=str(exc)) from None
    return str(valid.ascii_email)


def matches(address: str) -> ColumnElement[bool]:
    """`Teammate.email` equals `address` whatever the case (uses the lower(email) index)."""
    return func.lower(Teammate.email) == address.lower()


LOCAL_PART_MAX = 64  # RFC 5321, 4.5.3.1.1: mail servers may refuse a longer local part


def new_address(address: str) -> str:
    """A teammate's address being added: normalized, and mailable (at most 64 characters
    before the @). Lookups keep `normalize_email` alone, so nobody already stored is shut out."""
    email = normalize_email(address)
    local = email.rpartition("@")[0]
    if len(local) > LOCAL_PART_MAX:
        raise InvalidInput("Email: the part before the @ has {length} characters, and "
                           "email addresses allow at most {limit}.", "invalid_email",
                           length=len(local), limit=LOCAL_PART_MAX)
    return email
