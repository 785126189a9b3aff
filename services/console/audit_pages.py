"""Settings → Audit log (/admin/audit-log): who did what to whom, in words, filtered by
teammate, dates and type, and exported as CSV with the same filters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from services import browsers
from services.accounts import teammates
from services.accounts import teammates_export as csv_cells
from services.api.deps import DB
from services.api.schemas import MAX_ID
from services.console import web
from services.console.words import Words
from services.db import unit_of_work
from services.errors import N_
from services.events import audit
from services.events.catalog import EventType
from services.i18n.catalogs import translate
from services.models import Event, Teammate, Workspace
from services.timestamps import rfc3339

router = APIRouter(prefix="/admin", include_in_schema=False)
EVENT_TYPES = [t.value for t in EventType]
PAGE_SIZE = 50
EXPORT_CHUNK = 1000
COLUMNS = ("time", "type", "summary", "by", "teammate", "ip", "browser", "data")
Text = Annotated[str, Query(max_length=200)]


@dataclass(frozen=True)
class Shown:
    """The filters as the page's form and links carry them; `problems` says what was not
    understood (and so not applied)."""

    type: str = ""
    teammate: str = ""
    since: str = ""
    until: str = ""
    problems: list[Words] = field(default_factory=list)

    @classmethod
    def of(cls, type_: str, teammate: str, since: str, until: str) -> Shown:
        problems = []
        if type_ and type_ not in EVENT_TYPES:
            problems.append(Words(N_("There is no event type “{type}”: showing every type."),
                                  {"type": type_}))
            type_ = ""
        dates = []
        for label, value in ((N_("From"), since), (N_("To"), until)):
            if value and _day(value) is None:
                problems.append(Words(N_("{field}: give a date such as 2026-12-31."),
                                      {"field": Words(label, {})}))
                value = ""
            dates.append(value)
        return cls(type_, teammate.strip(), dates[0], dates[1], problems)

    def filter(self, session: Session, workspace: Workspace) -> audit.Filter:
        ids = (tuple(teammates.matching(session, workspace, self.teammate))
               if self.teammate else None)
        since = _day(self.since)
        through = _day(self.until)
        return audit.Filter(
            type=self.type or None, teammate_ids=ids,
            since=datetime.combine(since, time(), UTC) if since else None,
            # "To 2026-12-20" includes that whole day.
            until=datetime.combine(through + timedelta(days=1), time(), UTC) if through else None)

    def query(self, **extra: object) -> str:
        given = {"type": self.type, "teammate": self.teammate, "from": self.since,
                 "to": self.until, **extra}
        return urlencode({k: v for k, v in given.items() if v})


def _together(sentences: list[Words]) -> Words | None:
    # Only a glue of sentences, each translated on its own: not a message id of its own.
    if not sentences:
        return None
    return Words(" ".join(f"{{s{i}}}" for i in range(len(sentences))),
                 {f"s{i}": said for i, said in enumerate(sentences)})


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@router.get("/audit-log")
def audit_log(request: Request, caller: web.AdminCaller, session: DB, type: Text = "",
              teammate: Text = "", since: Annotated[str, Query(alias="from", max_length=32)] = "",
              until: Annotated[str, Query(alias="to", max_length=32)] = "",
              before: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> Response:
    shown = Shown.of(type, teammate, since, until)
    chosen = shown.filter(session, caller.workspace)
    events, next_seq = audit.newest_first(session, caller.workspace, chosen, before, PAGE_SIZE)
    return web.render(request, "audit_log.html", {
        "title": N_("Audit log"),
        "rows": rows(session, caller.workspace, events, web.page_locale(request, caller)),
        "next_seq": next_seq, "types": EVENT_TYPES, "shown": shown, "before": before,
        "notice": _together(shown.problems)}, caller=caller)


@router.get("/audit-log/export.csv")
def export(caller: web.AdminCaller, session: DB, type: Text = "", teammate: Text = "",
           since: Annotated[str, Query(alias="from", max_length=32)] = "",
           until: Annotated[str, Query(alias="to", max_length=32)] = "") -> Response:
    shown = Shown.of(type, teammate, since, until)
    chosen = shown.filter(session, caller.workspace)
    workspace_id, slug = caller.workspace.id, caller.workspace.slug
    return StreamingResponse(
        _csv(workspace_id, chosen), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{slug}-audit-log.csv"',
                 "Cache-Control": "no-store"})


def _csv(workspace_id: int, chosen: audit.Filter) -> Iterator[str]:
    """Newest first, a thousand events per short transaction. In English whatever the
    reader's language: its column names and types are for spreadsheets and scripts, and a
    file that is handed on reads the same to everyone."""
    yield csv_cells.line(COLUMNS)
    before: int | None = None
    while True:
        with unit_of_work() as session:
            workspace = session.get(Workspace, workspace_id)
            assert workspace is not None
            events, before = audit.newest_first(session, workspace, chosen, before, EXPORT_CHUNK)
            yield "".join(csv_cells.line(_cells(row)) for row in rows(session, workspace, events))
        if before is None:
            return


@dataclass(frozen=True)
class Row:
    time: str
    type: str
    sentence: Markup
    actor: str
    teammate: str
    ip: str
    browser: str
    data: dict[str, Any]


def rows(session: Session, workspace: Workspace, events: list[Event],
         locale: str = "en") -> list[Row]:
    """The events in words (in `locale`), with the people they name looked up once."""
    people = teammates.by_ids(session, workspace, {i for e in events for i in _named(e)})
    # The sentences live in a template (words in one place); its macro escapes what it
    # inserts, and says them in the language its module is made with.
    sentence = web.templates.env.get_template("_audit_sentence.html").make_module(
        {web.LOCALE: locale}).sentence  # type: ignore[attr-defined]
    out = []
    for e in events:
        actor_id, subject_id = _actor(e), _subject(e)
        actor = _person(people, actor_id, locale)
        who = _person(people, subject_id, locale)
        out.append(Row(time=rfc3339(e.time), type=e.type,
                       sentence=escape(sentence({"type": e.type, "data": e.data}, actor, who)),
                       actor=actor, teammate=who, ip=str(e.data.get("ip") or ""),
                       browser=browsers.in_words(e.data.get("user_agent"), locale)
                       if e.data.get("user_agent") else "", data=e.data))
    return out


def _cells(row: Row) -> list[str]:
    return [row.time, row.type, row.sentence.striptags(), row.actor, row.teammate, row.ip,
            row.browser, json.dumps(row.data, sort_keys=True)]


def _actor(event: Event) -> int | None:
    value = event.data.get("actor_id", event.data.get("changed_by"))
    return value if isinstance(value, int) else None


def _subject(event: Event) -> int | None:
    if event.subject and event.subject.startswith("teammates/"):
        return int(event.subject.removeprefix("teammates/"))
    value = event.data.get("teammate_id")
    return value if isinstance(value, int) else None


def _named(event: Event) -> list[int]:
    return [i for i in (_actor(event), _subject(event)) if i is not None]


def _person(people: dict[int, Teammate], teammate_id: int | None, locale: str) -> str:
    if teammate_id is None:
        return ""
    t = people.get(teammate_id)
    if t is None:  # removed since: the event still says who, by number
        return translate(locale, "teammate #{id}", id=teammate_id)
    return f"{t.name} ({t.email})" if t.name and t.name != t.email else t.email
