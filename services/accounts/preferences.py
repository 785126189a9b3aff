"""A teammate's language and time zone: what emails and pages are said in.

Chosen by the teammate (Settings → User, PATCH /v1/me), given by the admin who adds them,
taken from the browser's Accept-Language when they join without one, and the browser's own
zone at sign-in while none is set.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.i18n.locales import check_locale, check_time_zone, is_time_zone
from services.models import Teammate

UNSET = object()  # a field a PATCH leaves as it is


def change(session: Session, teammate: Teammate, locale: str | None | object = UNSET,
           time_zone: str | None | object = UNSET) -> None:
    """Set what is given: a supported locale, an IANA zone or None (UTC); 422 otherwise."""
    if locale is not UNSET:
        teammate.locale = check_locale(str(locale)) if locale is not None else None
    if time_zone is not UNSET:
        teammate.time_zone = check_time_zone(str(time_zone)) if time_zone is not None else None
    session.flush()


def first_locale(session: Session, teammate: Teammate, browser_locale: str | None) -> None:
    """At join: the browser's language, unless the teammate already has one."""
    if browser_locale is not None and teammate.locale is None:
        teammate.locale = browser_locale
        session.flush()


def browser_zone(session: Session, teammate_id: int, zone: str | None) -> None:
    """At sign-in: the zone the browser reports, only while the teammate has none (a zone
    they chose is never overwritten by a laptop on a trip). Anything else is ignored."""
    if not zone or not is_time_zone(zone):
        return
    session.execute(update(Teammate)
                    .where(Teammate.id == teammate_id, Teammate.time_zone.is_(None))
                    .values(time_zone=zone).execution_options(synchronize_session=False))
