"""One email to many recipients: rendered and built once, then only the varying parts per copy.

A fan-out sends the same template to thousands of teammates; only the name in the body and
the To, Date and Message-ID headers change. Rendering with Jinja2 and building a MIME tree
per copy costs ~0.5 ms (docs/measurements.md), most of a send's CPU. Here the template is
rendered once with a marker for the name and serialised once by the stdlib with markers for
the rest; a copy is the bytes between the markers joined with its own values (the name
escaped for the HTML part, each part base64 as the stdlib writes it).

`first_copy_matches` checks one copy against the full render of the same values, so a
template that does more with the name than print it (a filter, a condition) is caught and the
caller falls back to rendering each copy in full.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from markupsafe import escape

from services.config import get_settings
from services.email.message import date_now
from services.email.render import Rendered, render

# Markers: private-use characters cannot come from a template, and ASCII header markers are
# short enough that the stdlib neither folds nor encodes them.
NAME = "\ue000twofa-name\ue001"
_HEADERS = {"to": "X-twofa-to-5f3c", "date": "X-twofa-date-5f3c", "message_id": "X-twofa-mid-5f3c"}
_BODIES = {"text": "X-twofa-text-5f3c", "html": "X-twofa-html-5f3c"}
_MARKER = re.compile("|".join(re.escape(m) for m in [*_HEADERS.values(), *_BODIES.values()]))
_KEY = {marker: key for key, marker in [*_HEADERS.items(), *_BODIES.items()]}


def _b64(text: str) -> bytes:
    # As email.base64mime.body_encode writes a part: 76-character lines, each ended by CRLF.
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Copy:
    to: str
    message_id: str
    data: bytes


class MessageTemplate:
    """`MessageTemplate("enrollment-invitation", context, "de", "Europe/Berlin")`, then
    `.copy(to, name, message_id)`: one per (template, language, time zone)."""

    def __init__(self, template: str, context: Mapping[str, Any], locale: str | None = None,
                 time_zone: str | None = None) -> None:
        self.template, self.context = template, dict(context)
        self.locale, self.time_zone = locale, time_zone
        rendered = render(template, {**self.context, "name": NAME}, locale, time_zone)
        self.subject = rendered.subject
        self._text = rendered.text.split(NAME)
        self._html = rendered.html.split(NAME)  # autoescape leaves the marker as it is
        self._segments = self._wire_segments(rendered.subject)

    @staticmethod
    def _wire_segments(subject: str) -> list[bytes | str]:
        """The serialised message as literal bytes and marker keys, in order."""
        mime = MIMEMultipart("alternative")
        mime["Subject"] = subject
        mime["From"] = get_settings().mail_from
        mime["To"] = _HEADERS["to"]
        mime["Date"] = _HEADERS["date"]
        mime["Message-ID"] = _HEADERS["message_id"]
        mime["Auto-Submitted"] = "auto-generated"
        for subtype in ("plain", "html"):
            part = MIMEText("", subtype, "utf-8")  # the headers of a base64 utf-8 part
            part.set_payload(_BODIES["text" if subtype == "plain" else "html"] + "\n")
            mime.attach(part)
        wire = mime.as_bytes(policy=mime.policy.clone(linesep="\r\n")).decode("ascii")
        segments: list[bytes | str] = []
        position = 0
        for found in _MARKER.finditer(wire):
            segments.append(wire[position:found.start()].encode("ascii"))
            key = _KEY[found.group()]
            segments.append(key)
            position = found.end()
            if key in _BODIES:  # the marker's own line end: the base64 brings its own
                position = wire.index("\r\n", position) + 2
        segments.append(wire[position:].encode("ascii"))
        return segments

    def bodies(self, name: str) -> tuple[str, str]:
        """(text, html) for one recipient: the name as is in text, escaped in HTML."""
        return name.join(self._text), str(escape(name)).join(self._html)

    def copy(self, to: str, name: str, message_id: str) -> Copy | None:
        """The wire bytes for one recipient, or None when this address cannot go in a header
        as it is (non-ASCII): the caller builds that one through the stdlib."""
        if not to.isascii() or "\n" in to or "\r" in to:
            return None
        text, html = self.bodies(name)
        values = {"to": to.encode(), "date": date_now().encode(),
                  "message_id": message_id.encode(), "text": _b64(text), "html": _b64(html)}
        return Copy(to, message_id, b"".join(
            s if isinstance(s, bytes) else values[s] for s in self._segments))

    def first_copy_matches(self, name: str) -> bool:
        """Whether substituting `name` gives what rendering with it gives."""
        rendered = render(self.template, {**self.context, "name": name}, self.locale,
                          self.time_zone)
        return Rendered(self.subject, *self.bodies(name)) == rendered
