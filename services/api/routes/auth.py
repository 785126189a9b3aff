"""Sign-in: /v1/login, /v1/invitations/accept, /v1/sessions/introspect, /v1/logout."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from services.accounts import login as login_service
from services.accounts import sessions, teammates
from services.accounts.sessions import Level
from services.api.deps import BEARER_DOCUMENTED, DB, AnySession, bearer_token, client_ip
from services.api.schemas import AcceptIn, LoginIn, TokenIn
from services.host_checks import introspection
from services.i18n.locales import from_accept_language
from services.verification import webauthn_sign_in

router = APIRouter(prefix="/v1", tags=["sign-in"])


# What a passed first factor leads to (/v1/login, /v1/invitations/accept, /v1/checks/login)
# and a passed second one (/v1/login/two-factor): one shape per `status`.
class Authenticated(BaseModel):
    status: Literal["authenticated"]
    token: str = Field(description="A session token at `full` level.")


class TwoFactorRequired(BaseModel):
    status: Literal["two_factor_required"]
    challenge: str = Field(description="Send it with a code to /v1/login/two-factor.")
    methods: list[str] = Field(description="The teammate's second factors: `totp`, `webauthn`, "
                                           "and always `recovery_code`.")
    webauthn: dict[str, Any] | None = Field(
        default=None, description="With a security key: request options bound to this "
        "challenge (`PublicKeyCredential.parseRequestOptionsFromJSON`).")


class EnrollmentRequired(BaseModel):
    status: Literal["enrollment_required"]
    token: str = Field(description="A session token at `enrollment` level: /v1/me… only.")


SignIn = Annotated[Authenticated | TwoFactorRequired | EnrollmentRequired,
                   Field(discriminator="status")]


def sign_in(signed: sessions.SignIn,
            session: Session) -> Authenticated | TwoFactorRequired | EnrollmentRequired:
    if signed.status == "two_factor_required":
        assert signed.challenge is not None
        step = webauthn_sign_in.second_step(session, signed.challenge)
        return TwoFactorRequired(status=signed.status, challenge=signed.challenge,
                                 methods=step.methods, webauthn=step.webauthn)
    assert signed.token is not None
    if signed.status == "enrollment_required":
        return EnrollmentRequired(status=signed.status, token=signed.token)
    return Authenticated(status=signed.status, token=signed.token)


class ActiveSession(BaseModel):
    active: Literal[True]
    teammate_id: int
    email: str
    workspace: str
    level: Level


class InactiveSession(BaseModel):
    """Unknown, ended, expired, or another workspace's: nothing more is told."""

    active: Literal[False]


Introspection = Annotated[ActiveSession | InactiveSession, Field(discriminator="active")]


@router.post("/login", response_model_exclude_none=True)
def login(body: LoginIn, session: DB, ip: Annotated[str, Depends(client_ip)]) -> SignIn:
    return sign_in(login_service.login(session, body.workspace, body.email, body.password, ip),
                   session)


@router.post("/invitations/accept", response_model_exclude_none=True)
def accept_invitation(body: AcceptIn, session: DB, request: Request) -> SignIn:
    """Set a password with the join email's token; then, while 2FA is required, enroll.
    A teammate added without a `locale` gets the language Accept-Language prefers."""
    return sign_in(teammates.accept(session, body.token, body.password, body.name,
                                    from_accept_language(request.headers.get("accept-language"))),
                   session)


@router.post("/sessions/introspect", response_model=Introspection, openapi_extra={
    **BEARER_DOCUMENTED,
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": TokenIn.model_json_schema(ref_template="#/components/schemas/{model}")}}}})
async def introspect(request: Request) -> Response:
    """"May this session in?", asked by a host application with its workspace's API key.

    A token of another workspace answers exactly like an unknown one: a key tells nothing
    about other workspaces' sessions. Async and one SELECT: hosts call it on every request.
    """
    key = bearer_token(request, "invalid_api_key", "twofa_sk_…")  # before the body is read
    # The body parsed here, not by FastAPI's body machinery: this is the hosts' hot path, and
    # one pydantic call on the raw bytes does the same checks (a 422 is the same answer).
    try:
        body = TokenIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False),
                                     body=None) from None
    found = await introspection.introspect(key, body.token)
    if found.teammate_id is None:
        answer: ActiveSession | InactiveSession = InactiveSession(active=False)
    else:
        assert found.email is not None and found.level is not None
        answer = ActiveSession(active=True, teammate_id=found.teammate_id, email=found.email,
                               workspace=found.workspace, level=found.level)
    # Serialised here: the hot path skips FastAPI validating the model it was just built
    # from (the schema above still documents it, and schemathesis checks it).
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/logout", status_code=204)
def logout(caller: AnySession, session: DB) -> Response:
    sessions.end(session, caller.auth)
    return Response(status_code=204)
