"""Caught mail (/dev/mail): what `twofa up`'s local mail catcher holds, readable in the browser.

It shows join links, so it exists only for the embedded default: without TWOFA_SMTP_URL (the
catcher is the mail server) and only over loopback connections, which is every connection
when the server listens on a loopback address.
"""

from __future__ import annotations

import email
import ipaddress
import re
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from markupsafe import Markup, escape

from services.config import get_settings
from services.console import web
from services.errors import N_

NAME = r"[0-9A-Za-z-]{1,80}\.eml"
LINK = re.compile(r"https?://[^\s<>\"']+")
SHOWN = 200


def enabled() -> bool:
    """No mail server configured: mail goes to `twofa up`'s own catcher (which `up` hands to
    its children as TWOFA_SMTP_URL, so that URL counts as unset too)."""
    settings = get_settings()
    catcher = settings.model_copy(update={"smtp_url": None}).resolved_smtp_url
    return settings.smtp_url in (None, catcher)


def local_only(request: Request) -> None:
    """404 unless this connection arrived on a loopback address of this machine."""
    server = request.scope.get("server") or ("", 0)
    try:
        loopback = ipaddress.ip_address(str(server[0])).is_loopback
    except ValueError:
        loopback = False
    if not (loopback and enabled()):
        raise web.NotMounted()


router = APIRouter(prefix="/dev/mail", include_in_schema=False, dependencies=[Depends(local_only)])


@dataclass(frozen=True)
class Caught:
    name: str
    sender: str
    to: str
    subject: str
    date: str


@router.get("")
def inbox(request: Request) -> Response:
    files = sorted(get_settings().mail_dir.glob("*.eml"), reverse=True)[:SHOWN]
    return web.render(request, "dev_mail.html", {
        "title": N_("Caught mail"), "messages": [_summary(f) for f in files],
        "folder": str(get_settings().mail_dir)})


@router.get("/{name}")
def message(request: Request, name: Annotated[str, Path(pattern=f"^{NAME}$")]) -> Response:
    path = get_settings().mail_dir / name
    if not path.is_file():
        raise web.NotMounted()
    parsed = _parse(path)
    return web.render(request, "dev_mail_message.html", {
        "title": str(parsed["Subject"] or "(no subject)"), "mail": _summary(path),
        "body": linkify(_plain_text(parsed))})


def linkify(text: str) -> Markup:
    """Escape the text, then make its http(s) links clickable (nothing else becomes markup)."""
    out, last = [], 0
    for match in LINK.finditer(text):
        out.append(escape(text[last:match.start()]))
        url = escape(match.group(0))
        out.append(Markup('<a href="{0}">{0}</a>').format(url))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def _parse(path: FilePath) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _summary(path: FilePath) -> Caught:
    parsed = _parse(path)
    return Caught(path.name, str(parsed["From"] or ""), str(parsed["To"] or ""),
                  str(parsed["Subject"] or "(no subject)"), str(parsed["Date"] or ""))


def _plain_text(parsed: EmailMessage) -> str:
    part = parsed.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else "(no plain-text part)"
