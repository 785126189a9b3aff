"""Exemptions that expire: an admin exempts a teammate from 2FA until a date (30 days at
most), or ends an exemption now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from services.accounts import teammates
from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.schemas import Body, Text
from services.api.types import Id, Timestamp
from services.enrollment import exemptions

router = APIRouter(prefix="/v1/workspaces/{slug}/teammates/{teammate_id}/exemption",
                   tags=["teammates"])


def _rfc3339_text(value: object) -> object:
    # JSON has no datetime type: the RFC 3339 string is what arrives (a number is refused,
    # not read as a Unix time).
    if not isinstance(value, str):
        raise ValueError("an RFC 3339 date-time string with an offset")
    return value


class ExemptionIn(Body):
    until: Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)] = Field(
        strict=False, description="RFC 3339 with an offset; future, 30 days at most")
    reason: Annotated[str, Field(min_length=1, max_length=500), Text]


class ExemptionOut(BaseModel):
    until: Timestamp
    reason: str


@router.put("")
def exempt(teammate_id: Id, body: ExemptionIn, workspace: AdminWorkspace,
           caller: FullSession, session: DB) -> ExemptionOut:
    """Not held to enrollment until `until`; then it ends by itself, and while 2FA is
    required the teammate gets their invitation unless one already went out for this
    version. Granting again replaces the date and reason."""
    target = teammates.get(session, workspace, teammate_id)
    exemptions.grant(session, workspace, target, body.until, body.reason, caller.teammate)
    return ExemptionOut(until=body.until, reason=body.reason)


@router.delete("", status_code=204)
def end_exemption(teammate_id: Id, workspace: AdminWorkspace, caller: FullSession,
                  session: DB) -> Response:
    """Ends it now (204 also when there is none)."""
    target = teammates.get(session, workspace, teammate_id)
    exemptions.end(session, workspace, target, caller.teammate)
    return Response(status_code=204)

