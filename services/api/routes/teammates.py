"""A workspace's teammates, for its admins: list and filter, export, add, change role, remove,
resend an invitation."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from services.accounts import teammates, teammates_export
from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.paging import Cursor, Page
from services.api.recent_factor import SENSITIVE_IF_MAKING_ADMIN
from services.api.schemas import Body, TeammateIn, Text
from services.api.types import Id, Timestamp
from services.enrollment import state
from services.i18n.locales import effective

EnrollmentState = Literal["enrolled", "not_required", "exempt", "pending", "invited", "failed"]
TwoFactor = Annotated[Literal["enabled", "disabled", "app_only"] | None, Query(
    description="`app_only`: an authenticator app and no security key")]
Enrollment = Annotated[EnrollmentState | None, Query()]
Search = Annotated[Annotated[str, Text] | None, Query(max_length=200)]

router = APIRouter(prefix="/v1/workspaces/{slug}/teammates", tags=["teammates"])


class RoleIn(Body):
    role: Literal["admin", "member"] = Field(description="the new role")


class TeammateOut(BaseModel):
    """A teammate as admins see them, in lists and alone."""

    id: int
    email: str
    name: str
    role: Literal["admin", "member"]
    status: Literal["invited", "active"] = Field(
        description="`invited` until they set a password with the join email's link.")
    two_factor_enabled: bool
    methods: list[Literal["totp", "webauthn"]] = Field(
        description="second factors by kind: `totp` (an app), `webauthn` (security keys)")
    enrollment: EnrollmentState = Field(description=(
        "`enrolled` (has 2FA), `not_required` (no 2FA, policy off), `exempt` (live "
        "exemption), `pending` (invitation not yet handed to SMTP), `invited` (sent) or "
        "`failed` (could not be sent after all retries)."))
    exempt_until: Timestamp | None = Field(
        default=None, description="when the exemption ends, while `enrollment` is `exempt`")
    locale: Literal["en", "de", "es"] = Field(
        default="en", description="the language of their emails and pages")
    time_zone: str | None = Field(
        default=None, description="IANA time zone their times are said in; `null`: UTC")

    @classmethod
    def of(cls, view: teammates.TeammateView) -> TeammateOut:
        t = view.teammate
        # Validated, not cast: a role, status or state outside the documented ones fails here.
        return cls.model_validate({
            "id": t.id, "email": t.email, "name": t.name, "role": t.role, "status": t.status,
            "two_factor_enabled": t.two_factor_enabled, "methods": teammates.methods_of(t),
            "enrollment": view.enrollment,
            "exempt_until": t.exempt_until if view.enrollment == "exempt" else None,
            "locale": effective(t.locale), "time_zone": t.time_zone})


def _filters(two_factor: str | None, enrollment: str | None, q: str | None) -> teammates.Filters:
    return teammates.Filters(two_factor=two_factor, enrollment=enrollment, q=q)


@router.get("")
def list_teammates(
    workspace: AdminWorkspace,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
    two_factor: TwoFactor = None,
    enrollment: Enrollment = None,
    q: Search = None,
) -> Page[TeammateOut]:
    """Teammates in id order; filter by `two_factor`, `enrollment` and `q` (name or email)."""
    views, next_id = teammates.page(session, workspace, limit, cursor,
                                    _filters(two_factor, enrollment, q))
    return Page[TeammateOut].of([TeammateOut.of(v) for v in views], next_id)


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_teammates(
    workspace: AdminWorkspace,
    two_factor: TwoFactor = None,
    enrollment: Enrollment = None,
    q: Search = None,
) -> StreamingResponse:
    """The same list as CSV (same filters, plus `exempt_until`), streamed a thousand rows at
    a time."""
    rows = teammates_export.rows(workspace.id, _filters(two_factor, enrollment, q))
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{teammates_export.filename(workspace)}"'})


@router.post("", status_code=201)
def add_teammate(body: TeammateIn, workspace: AdminWorkspace, caller: FullSession,
                 session: DB) -> TeammateOut:
    teammate = teammates.add(session, workspace, body.email, body.name, body.role,
                             actor_id=caller.teammate.id, locale=body.locale)
    # Brand new, so their join email is not out yet: while 2FA is required the teammate is
    # `pending`, otherwise `not_required`.
    enrollment = state.enrollment_state(workspace, teammate, None)
    return TeammateOut.of(teammates.TeammateView(teammate, enrollment))


@router.get("/{teammate_id}")
def get_teammate(teammate_id: Id, workspace: AdminWorkspace, session: DB) -> TeammateOut:
    return TeammateOut.of(teammates.view(session, workspace,
                                         teammates.get(session, workspace, teammate_id)))


@router.patch("/{teammate_id}", dependencies=[SENSITIVE_IF_MAKING_ADMIN])
def change_role(teammate_id: Id, body: RoleIn, workspace: AdminWorkspace,
                caller: FullSession, session: DB) -> TeammateOut:
    """Change the role; demoting the last admin answers 409 `last_admin`."""
    teammate = teammates.get(session, workspace, teammate_id)
    teammates.change_role(session, workspace, teammate, body.role, caller.teammate)
    return TeammateOut.of(teammates.view(session, workspace, teammate))


@router.delete("/{teammate_id}", status_code=204)
def remove_teammate(teammate_id: Id, workspace: AdminWorkspace, caller: FullSession,
                    session: DB) -> Response:
    """Remove a teammate: sessions end, pending invitations are skipped, the audit trail stays;
    removing the last admin answers 409 `last_admin`."""
    teammate = teammates.get(session, workspace, teammate_id)
    teammates.remove(session, workspace, teammate, caller.teammate)
    return Response(status_code=204)


@router.post("/{teammate_id}/enrollment-invitation", status_code=202, response_class=Response,
             responses={202: {"description": "Queued: the email goes out shortly."}})
def resend_invitation(
    teammate_id: Id, workspace: AdminWorkspace, session: DB
) -> Response:
    teammates.resend_invitation(session, workspace, teammates.get(session, workspace, teammate_id))
    return Response(status_code=202)
