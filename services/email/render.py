"""Renders templates/emails/<name>/{subject.txt, body.txt, body.html} with Jinja2.

HTML templates are autoescaped, so no value injects markup; plain text is text, and the
subject is folded onto one line so no value injects a header.

Words go through Jinja2's i18n extension (`{% trans %}`) and the catalog of the reader's
language (services/locale/); times through `in_words`, in the reader's language and zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from services.i18n import catalogs, dates
from services.i18n.locales import effective

# Context keys render() adds: the reader's language and time zone, for filters.
LOCALE, TIME_ZONE = "_locale", "_time_zone"


def templates_dir() -> Path:
    """templates/emails/: the copy installed inside the package (setup.py ships the top-level
    folder as `services.email.templates`), else the checkout's own (editable installs)."""
    here = Path(__file__).resolve().parent
    installed = here / "templates" / "emails"
    return installed if installed.is_dir() else here.parents[1] / "templates" / "emails"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@pass_context
def _in_words(context: Context, value: str) -> str:
    """Event data carries RFC 3339 times; people read "Wednesday 2 December, 15:00 CET
    (14:00 UTC)" in their own language and zone."""
    return dates.in_words(datetime.fromisoformat(value), context.get(LOCALE),
                          context.get(TIME_ZONE))


@lru_cache(maxsize=8)
def _env(locale: str) -> Environment:
    """One environment per language: its catalog is installed in it once."""
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(catalogs.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["in_words"] = _in_words
    return env


def render(name: str, context: dict[str, Any], locale: str | None = None,
           time_zone: str | None = None) -> Rendered:
    """The email `name` in `locale` (English when None), its times in `time_zone` (UTC)."""
    env = _env(effective(locale))
    context = {**context, LOCALE: locale, TIME_ZONE: time_zone}
    subject = env.get_template(f"{name}/subject.txt").render(context)
    return Rendered(
        subject=" ".join(subject.split()),  # a header is one line
        text=env.get_template(f"{name}/body.txt").render(context),
        html=env.get_template(f"{name}/body.html").render(context),
    )
