"""The Teammates list as CSV (the API's and the console's export), streamed in chunks."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from services.accounts import teammates
from services.db import unit_of_work
from services.models import Workspace
from services.timestamps import rfc3339

COLUMNS = ("id", "email", "name", "role", "two_factor_enabled", "enrollment", "exempt_until",
           "methods")
CHUNK = 1000


def rows(workspace_id: int, filters: teammates.Filters) -> Iterator[str]:
    """Header, then a thousand teammates per short transaction (none held open while a slow
    client reads)."""
    yield line(COLUMNS)
    after: int | None = None
    while True:
        with unit_of_work() as session:
            current = session.get(Workspace, workspace_id)
            assert current is not None
            views, after = teammates.page(session, current, CHUNK, after, filters)
            yield "".join(line(cells(v)) for v in views)
        if after is None:
            return


def record(view: teammates.TeammateView) -> dict[str, object]:
    """One teammate as exports carry it (CSV here, the CLI's JSON): the COLUMNS, typed."""
    t = view.teammate
    until = rfc3339(t.exempt_until) if view.enrollment == "exempt" and t.exempt_until else None
    return {"id": t.id, "email": t.email, "name": t.name, "role": t.role,
            "two_factor_enabled": t.two_factor_enabled, "enrollment": view.enrollment,
            "exempt_until": until, "methods": teammates.methods_of(t)}


def cells(view: teammates.TeammateView) -> list[str]:
    return [_cell(value) for value in record(view).values()]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # methods: "totp webauthn"
        return " ".join(str(v) for v in value)
    return str(value)


def line(values: Iterable[str]) -> str:
    out = io.StringIO()
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    csv.writer(out).writerow(["'" + v if v[:1] in ("=", "+", "-", "@") else v for v in values])
    return out.getvalue()


def filename(workspace: Workspace) -> str:
    return f"{workspace.slug}-teammates.csv"
