"""An invitation built once per batch reads exactly like one rendered and built in full."""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.message import Message

import pytest

CONTEXT = {"workspace_slug": "acme", "enroll_url": "https://twofa.example.test/enroll?workspace=acme",
           "deadline": ""}


def _read(message: Message) -> dict[str, object]:
    """What a mail client shows: decoded headers and decoded parts (not the boundary)."""
    headers = {h: str(make_header(decode_header(str(message[h]))))
               for h in ("Subject", "From", "To", "Message-ID", "Auto-Submitted")}
    parts = [(p.get_content_type(), p.get_content_charset(), p.get_payload(decode=True))
             for p in message.walk() if not p.is_multipart()]
    return {"headers": headers, "type": message.get_content_type(), "parts": parts,
            "defects": [d for p in message.walk() for d in p.defects]}


@pytest.mark.parametrize(("workspace_name", "name", "deadline"), [
    ("Acme & Co <Team>", "Jane Doe", ""),
    ("Zürich Ünïcode Werkstatt " * 3, "Zoë <b>Bold</b> & \"Quotes\"", ""),
    ("Plain", "", "Tuesday 2 December, 14:00 UTC"),  # a grace period's deadline
])
def test_a_copy_reads_like_the_full_build(workspace_name: str, name: str, deadline: str) -> None:
    from services.email import message as mail
    from services.email.render import render
    from services.email.template import MessageTemplate

    context = {**CONTEXT, "workspace_name": workspace_name, "deadline": deadline}
    template = MessageTemplate("enrollment-invitation", context)
    assert template.first_copy_matches(name)
    copy = template.copy("jane@acme.test", name, "<enroll.7.v2.r0@twofa.invalid>")
    assert copy is not None and b"\r\n" in copy.data and b"\n" not in copy.data.replace(b"\r\n", b"")
    full = mail.build("jane@acme.test", render("enrollment-invitation", {**context, "name": name}),
                      "<enroll.7.v2.r0@twofa.invalid>")
    assert _read(email.message_from_bytes(copy.data)) == _read(full.mime)
    html = email.message_from_bytes(copy.data).get_payload()[1].get_payload(decode=True).decode()
    assert "<b>Bold</b>" not in html  # the name is escaped in HTML


def test_an_address_that_cannot_go_in_a_header_as_it_is_is_built_in_full() -> None:
    from services.email.template import MessageTemplate

    template = MessageTemplate("enrollment-invitation", {**CONTEXT, "workspace_name": "Acme"})
    assert template.copy("jöe@acme.test", "Jöe", "<m@x>") is None
    assert template.copy("a@acme.test\r\nBcc: x@evil.test", "A", "<m@x>") is None
