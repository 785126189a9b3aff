"""Request bodies. Strings are bounded so oversized input is a 422, not a slow hash, and
carry no control characters (PostgreSQL refuses NUL in text; a lone surrogate cannot even be
encoded), so such input is a 422 `invalid_request` rather than a database error."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.enforcement import MAX_GRACE_HOURS

# Path and query integers are bounded by BIGINT, so 2**64 is a 422, not an overflow.
MAX_ID = 2**63 - 1
_REFUSED = {"Cc", "Cs"}  # control characters (NUL, tab, newline, …) and lone surrogates


def printable(value: str) -> str:
    """Refuse control characters and unpaired surrogates anywhere in the string."""
    for char in value:
        if unicodedata.category(char) in _REFUSED:
            raise ValueError(f"control character U+{ord(char):04X} is not allowed")
    return value


Text = AfterValidator(printable)
Short = Annotated[str, Field(min_length=1, max_length=320), Text]
# A password being checked: any length (the 64 KiB body limit bounds it), so a wrong one of
# any length is a wrong password (401), never a 422.
Password = Annotated[str, Field(min_length=1), Text]
# A password being chosen (join, change, reset): 8 to 1024 characters. Passwords being
# checked keep the looser `Password`, so an old short one still signs in.
NewPassword = Annotated[str, Field(min_length=8, max_length=1024), Text]
Code = Annotated[str, Field(min_length=1, max_length=64), Text]
Token = Annotated[str, Field(min_length=1, max_length=200), Text]
Name = Annotated[str, Field(max_length=200), Text]


class Body(BaseModel):
    # strict: JSON types are what they say ("yes" and 1 are no boolean, "5" no integer);
    # unknown fields are ignored, as the contract promises.
    model_config = ConfigDict(extra="ignore", strict=True)


class LoginIn(Body):
    workspace: Short
    email: Short
    password: Password


B64 = Annotated[str, Field(max_length=16384)]  # base64url of what an authenticator returned


class AuthenticatorResponseIn(BaseModel):
    """`response` of a PublicKeyCredential's JSON form; the rest is checked by py_webauthn."""

    model_config = ConfigDict(extra="allow", strict=True)
    clientDataJSON: B64  # noqa: N815 - the WebAuthn JSON form's own names


class WebAuthnResponse(BaseModel):
    """A PublicKeyCredential in its JSON form (`credential.toJSON()`): a registration or an
    assertion. Its shape is checked here (422); what it proves, by py_webauthn."""

    model_config = ConfigDict(extra="allow", strict=True)
    id: B64
    rawId: B64  # noqa: N815
    type: Literal["public-key"]
    response: AuthenticatorResponseIn

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class TwoFactorIn(Body):
    """`code` (a TOTP, recovery or bypass code) or `webauthn` (a security key's assertion)."""

    challenge: Token
    code: Code | None = None
    webauthn: WebAuthnResponse | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> TwoFactorIn:
        if (self.code is None) == (self.webauthn is None):
            raise ValueError("give code or webauthn")
        return self


class ChallengeIn(Body):
    challenge: Token


class PasskeyOptionsIn(Body):
    workspace: Short | None = None


class PasskeyIn(Body):
    challenge: Token
    webauthn: WebAuthnResponse
    workspace: Short | None = None


KeyName = Annotated[str, Field(min_length=1, max_length=64), Text]


class KeyIn(Body):
    name: KeyName
    credential: WebAuthnResponse


class KeyNameIn(Body):
    name: KeyName


class AcceptIn(Body):
    token: Token
    password: NewPassword  # chosen when joining
    name: Name = ""


class PasswordChangeIn(Body):
    current_password: Password
    new_password: NewPassword


class PasswordResetIn(Body):
    workspace: Short
    email: Short


class PasswordResetConfirmIn(Body):
    token: Token
    password: NewPassword


class TokenIn(Body):
    token: Token


class CodeIn(Body):
    code: Code


class ReauthenticateIn(Body):
    """`code` (a TOTP or recovery code), or `challenge` and `webauthn`: the challenge of
    `POST /v1/me/reauthenticate/options` and a security key's assertion for it."""

    code: Code | None = None
    challenge: Token | None = None
    webauthn: WebAuthnResponse | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> ReauthenticateIn:
        with_key = self.challenge is not None and self.webauthn is not None
        if (self.code is None) == (not with_key) or (self.code and (self.challenge or self.webauthn)):
            raise ValueError("give code, or challenge and webauthn")
        return self


class MaybeCodeIn(Body):
    """A sensitive change's optional code: checked when sent; without it the session must
    have verified a second factor recently (else 403 `reauthentication_required`)."""

    code: Code | None = None


ReplaceIn = MaybeCodeIn


class PolicyIn(Body):
    """A field left out is unchanged; a body with neither is a 422."""

    require_two_factor: bool | None = None
    grace_period_hours: Annotated[int, Field(ge=0, le=MAX_GRACE_HOURS)] | None = None
    allowed_methods: Literal["any", "security_keys"] | None = None

    @model_validator(mode="after")
    def _something(self) -> PolicyIn:
        if self.require_two_factor is None and self.grace_period_hours is None \
                and self.allowed_methods is None:
            raise ValueError("give require_two_factor, grace_period_hours, allowed_methods "
                             "or several")
        return self


Locale = Literal["en", "de", "es"]  # services/i18n/locales.py SUPPORTED
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Berlin"])]


class TeammateIn(Body):
    email: Short
    name: Name = ""
    role: Literal["admin", "member"] = "member"
    locale: Locale | None = Field(default=None, description=(
        "The language of their join email and of what they read afterwards; without it, "
        "their browser's language when they join (else `en`)."))


class MeIn(Body):
    """Only the fields given change."""

    locale: Locale | None = Field(default=None, description="`en`, `de` or `es`.")
    time_zone: TimeZone | None = Field(default=None, description=(
        "An IANA time zone (`Europe/Berlin`); `null` for UTC."))


# A webhook URL is a plain bounded string: ssrf.parse_url refuses control characters in it
# itself, with the more useful code `invalid_url`.
WebhookUrl = Annotated[str, Field(min_length=1, max_length=2048)]
WebhookEventType = Annotated[str, Field(max_length=64), Text]


class WebhookIn(Body):
    url: WebhookUrl
    event_types: Annotated[list[WebhookEventType], Field(min_length=1, max_length=32)]
