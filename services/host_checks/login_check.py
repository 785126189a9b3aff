"""POST /v1/checks/login: a host application has checked the first factor; what now?"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts import sessions
from services.accounts.email_address import matches, normalize_email
from services.errors import InvalidInput, NotFound
from services.host_checks.api_keys import KeyHolder
from services.models import Teammate


def check_login(session: Session, holder: KeyHolder, email: str) -> sessions.SignIn:
    """The answers of /v1/login without the password: the host vouches for the first factor.

    Only active teammates of the key's own workspace are found; anyone else is 404. The
    session this leads to is a host session: it never reaches an admin route, so a key holder
    cannot turn an admin's address into admin powers. It ends when the key is revoked.
    """
    workspace = holder.workspace
    try:
        email = normalize_email(email)
    except InvalidInput:
        raise NotFound("No such teammate in this workspace.", "unknown_teammate") from None
    teammate = session.scalar(select(Teammate).where(
        Teammate.workspace_id == workspace.id, matches(email), Teammate.status == "active"))
    if teammate is None:
        raise NotFound("No such teammate in this workspace.", "unknown_teammate")
    return sessions.after_first_factor(session, teammate, workspace, origin="host",
                                       api_key_id=holder.api_key_id)
