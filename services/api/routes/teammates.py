"""A workspace's teammates, for its admins: list and filter, export, add, change role, remove,
resend an invitation."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from services.accounts import teammates
from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.schemas import MAX_ID, Body, TeammateIn, Text
from services.db import unit_of_work
from services.enrollment import state
from services.models import Workspace

TeammateId = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID)]
TwoFactor = Annotated[Literal["enabled", "disabled"] | None, Query()]
Enrollment = Annotated[Literal["enrolled", "not_required", "exempt", "pending", "invited",
                               "failed"] | None, Query()]
Search = Annotated[Annotated[str, Text] | None, Query(max_length=200)]

router = APIRouter(prefix="/v1/workspaces/{slug}/teammates", tags=["teammates"])


class RoleIn(Body):
    role: Literal["admin", "member"] = Field(description="the new role")


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
) -> dict[str, object]:
    """Teammates in id order; filter by `two_factor`, `enrollment` and `q` (name or email)."""
    views, next_id = teammates.page(session, workspace, limit, cursor,
                                    _filters(two_factor, enrollment, q))
    return {
        "items": [v.as_dict() for v in views],
        "next_cursor": str(next_id) if next_id is not None else None,
    }


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_teammates(
    workspace: AdminWorkspace,
    two_factor: TwoFactor = None,
    enrollment: Enrollment = None,
    q: Search = None,
) -> StreamingResponse:
    """The same list as CSV (same filters), streamed a thousand rows at a time."""
    rows = _csv_rows(workspace, _filters(two_factor, enrollment, q))
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{workspace.slug}-teammates.csv"'})


COLUMNS = ("id", "email", "name", "role", "two_factor_enabled", "enrollment")


def _csv_rows(workspace: Workspace, filters: teammates.Filters) -> Iterator[str]:
    yield _csv_line(COLUMNS)
    after: int | None = None
    while True:
        with unit_of_work() as session:  # one short transaction per chunk, none held open
            current = session.get(Workspace, workspace.id)
            assert current is not None
            views, after = teammates.page(session, current, 1000, after, filters)
            yield "".join(_csv_line([str(v.as_dict()[c]) for c in COLUMNS]) for v in views)
        if after is None:
            return


def _csv_line(values: Iterator[str] | tuple[str, ...] | list[str]) -> str:
    out = io.StringIO()
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    csv.writer(out).writerow(["'" + v if v[:1] in ("=", "+", "-", "@") else v for v in values])
    return out.getvalue()


@router.post("", status_code=201)
def add_teammate(body: TeammateIn, workspace: AdminWorkspace, caller: FullSession,
                 session: DB) -> dict[str, object]:
    teammate = teammates.add(session, workspace, body.email, body.name, body.role,
                             actor_id=caller.teammate.id)
    # Brand new, so their join email is not out yet: while 2FA is required the teammate is
    # `pending`, otherwise `not_required`.
    enrollment = state.enrollment_state(workspace, teammate, None)
    return teammates.TeammateView(teammate, enrollment).as_dict()


@router.get("/{teammate_id}")
def get_teammate(teammate_id: TeammateId, workspace: AdminWorkspace,
                 session: DB) -> dict[str, object]:
    return teammates.view(session, workspace, teammates.get(session, workspace, teammate_id)).as_dict()


@router.patch("/{teammate_id}")
def change_role(teammate_id: TeammateId, body: RoleIn, workspace: AdminWorkspace,
                caller: FullSession, session: DB) -> dict[str, object]:
    """Change the role; demoting the last admin answers 409 `last_admin`."""
    teammate = teammates.get(session, workspace, teammate_id)
    teammates.change_role(session, workspace, teammate, body.role, caller.teammate)
    return teammates.view(session, workspace, teammate).as_dict()


@router.delete("/{teammate_id}", status_code=204)
def remove_teammate(teammate_id: TeammateId, workspace: AdminWorkspace, caller: FullSession,
                    session: DB) -> Response:
    """Remove a teammate: sessions end, pending invitations are skipped, the audit trail stays;
    removing the last admin answers 409 `last_admin`."""
    teammate = teammates.get(session, workspace, teammate_id)
    teammates.remove(session, workspace, teammate, caller.teammate)
    return Response(status_code=204)


@router.post("/{teammate_id}/enrollment-invitation", status_code=202)
def resend_invitation(
    teammate_id: TeammateId, workspace: AdminWorkspace, session: DB
) -> Response:
    teammates.resend_invitation(session, workspace, teammates.get(session, workspace, teammate_id))
    return Response(status_code=202)
