"""The Teammates list's filters and page as its address carries them, and the way back to
that same filtered page after an action (each action's form sends it as `back`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from fastapi import Response

from services.accounts import teammates
from services.api.schemas import MAX_ID
from services.console import web
from services.enrollment import state

TWO_FACTOR_CHOICES = ("enabled", "disabled", "app_only")
LIST_KEYS = ("two_factor", "enrollment", "q", "after", "before")


@dataclass(frozen=True)
class Shown:
    """The Teammates table's filters and page, as the page's form and links carry them
    (each action's form too, so that it comes back to the same filtered page)."""

    two_factor: str = ""
    enrollment: str = ""
    q: str = ""
    after: int | None = None
    before: int | None = None

    @classmethod
    def of(cls, two_factor: str, enrollment: str, q: str, after: int | None = None,
           before: int | None = None) -> Shown:
        """From the query string; an unknown value is left out (the page says so)."""
        return cls(two_factor if two_factor in TWO_FACTOR_CHOICES else "",
                   enrollment if enrollment in state.STATES else "", q.strip()[:200],
                   after, before)

    @classmethod
    def back(cls, form: dict[str, str]) -> Shown:
        """From an action form's `back` field (the query of the page it was sent from)."""
        given = {k: v for k, v in parse_qsl(form.get("back", "")[:1000]) if k in LIST_KEYS}
        return cls.of(given.get("two_factor", ""), given.get("enrollment", ""),
                      given.get("q", ""), _cursor(given.get("after")), _cursor(given.get("before")))

    def filters(self) -> teammates.Filters:
        return teammates.Filters(two_factor=self.two_factor or None,
                                 enrollment=self.enrollment or None, q=self.q or None)

    def query(self, **extra: object) -> str:
        """The filters (not the page) and `extra`, for links to other pages of the list."""
        given = {"two_factor": self.two_factor, "enrollment": self.enrollment, "q": self.q,
                 **extra}
        return urlencode({k: v for k, v in given.items() if v})

    def here(self) -> str:
        """This very page: filters and page, for the actions' `back`."""
        return self.query(after=self.after, before=self.before)

    def list_url(self, **extra: object) -> str:
        query = self.query(after=self.after, before=self.before, **extra)
        return f"/admin/teammates?{query}" if query else "/admin/teammates"


def _cursor(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and 0 < int(text) <= MAX_ID else None


def back_to(form: dict[str, str], notice: str, teammate_id: int) -> Response:
    """After an action: the page of the list it was done from, with what it did."""
    return web.redirect(Shown.back(form).list_url(notice=notice, teammate=teammate_id))
