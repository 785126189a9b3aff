"""Renders templates/emails/<name>/{subject.txt, body.txt, body.html} with Jinja2.

HTML templates are autoescaped, so no value injects markup; plain text is text, and the
subject is folded onto one line so no value injects a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.timestamps import in_words


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


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    # Event data carries RFC 3339 times; people read "Tuesday 2 December, 14:00 UTC".
    env.filters["in_words"] = lambda value: in_words(datetime.fromisoformat(value))
    return env


def render(name: str, context: dict[str, Any]) -> Rendered:
    env = _env()
    subject = env.get_template(f"{name}/subject.txt").render(context)
    return Rendered(
        subject=" ".join(subject.split()),  # a header is one line
        text=env.get_template(f"{name}/body.txt").render(context),
        html=env.get_template(f"{name}/body.html").render(context),
    )
