"""Passwords and sessions over real HTTP to `twofa api`, with the real relay, worker and SMTP
server: changing a password, the reset link by email (no enumeration, single use, voided by
a newer one, expiring, never skipping the second factor, limited), and one's own sessions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import WorkspaceHandle
from tests.stack import Stack
from tests.test_change_notices import mail_to, one_event, outbox_drained, outbox_mark
from tests.trust import (
    MEMBER_PASSWORD,
    age_verification,
    enrolled_member,
    error_code,
    member,
    password_sign_in,
    reauthenticate,
)
from tests.twofactor import bearer, code, steady

NEW_PASSWORD = "a-new-password-42"
RESET_SUBJECT = "Reset your password"


@pytest.fixture(autouse=True)
def _fresh_reset_bucket() -> Iterator[None]:
    """Every test here asks from 127.0.0.1: start each with that address's reset requests
    uncounted (the limit itself is a test of its own)."""
    forget_reset_requests()
    yield


@pytest.fixture()
def settled() -> Callable[[], None]:
    """Wait until the worker has done every outbox message this test caused (an email not
    sent by then never will be)."""
    mark = outbox_mark()
    return lambda: outbox_drained(mark)


def forget_reset_requests() -> None:
    from sqlalchemy import delete

    from services.db import unit_of_work
    from services.models import LoginThrottle

    with unit_of_work() as session:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key.like("reset:%")))


def ask_reset(ws: WorkspaceHandle, email: str) -> Any:
    return ws.client.post("/v1/password-reset", json={"workspace": ws.slug, "email": email})


def reset_links(stack: Stack, address: str, count: int = 1) -> list[str]:
    """The links of the first `count` reset emails to `address`, oldest first."""
    found = mail_to(stack, address, RESET_SUBJECT, count)
    links = []
    for message in found[:count]:
        match = re.search(r"https://twofa\.example\.test/reset-password\?token=([\w-]+)",
                          message.part("plain"))
        assert match, message.part("plain")
        assert match.group(1) in message.part("html")
        links.append(match.group(1))
    return links


def confirm(ws: WorkspaceHandle, token: str, password: str = NEW_PASSWORD) -> Any:
    return ws.client.post("/v1/password-reset/confirm", json={"token": token,
                                                              "password": password})


def status_of(ws: WorkspaceHandle, token: str) -> int:
    return int(ws.client.get("/v1/me", headers=bearer(token)).status_code)


# --- changing one's password -------------------------------------------------------------

def test_changing_the_password_ends_the_other_sessions_and_is_told(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    mine = password_sign_in(ws, member(ws))["token"]
    other = password_sign_in(ws, member(ws))["token"]
    r = ws.client.post("/v1/me/password", headers=bearer(mine),
                       json={"current_password": MEMBER_PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    assert status_of(ws, mine) == 200
    assert status_of(ws, other) == 401
    refused = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws),
                                                "password": MEMBER_PASSWORD})
    assert refused.status_code == 401
    assert password_sign_in(ws, member(ws), NEW_PASSWORD)["status"] == "authenticated"
    data = one_event(ws, "twofa.password.changed")
    assert data["by"] == "self" and data["ip"] == "127.0.0.1"
    told = mail_to(stack, member(ws), "was changed")
    assert "changed" in told[0].part("plain") and "reset link" not in told[0].part("plain")


def test_a_wrong_current_password_or_a_short_new_one_is_refused(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    token = password_sign_in(ws, member(ws))["token"]
    wrong = ws.client.post("/v1/me/password", headers=bearer(token),
                           json={"current_password": "not-my-password",
                                 "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and error_code(wrong) == "wrong_password"
    # 8–1024 characters holds for new passwords only: a longer one being checked is just wrong.
    wrong = ws.client.post("/v1/me/password", headers=bearer(token),
                           json={"current_password": "x" * 2000, "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and error_code(wrong) == "wrong_password", wrong.text
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws),
                                          "password": "x" * 2000})
    assert r.status_code == 401 and error_code(r) == "invalid_credentials", r.text
    for new in ("short", "x" * 1025):
        r = ws.client.post("/v1/me/password", headers=bearer(token),
                           json={"current_password": MEMBER_PASSWORD, "new_password": new})
        assert r.status_code == 422, r.text
    assert status_of(ws, token) == 200  # refusals leave the session alone
    assert password_sign_in(ws, member(ws))["status"] == "authenticated"  # still the old one


def test_a_stale_session_must_show_its_second_factor_before_the_password_is_checked(
        make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    token, secret, _ = enrolled_member(ws)
    age_verification(token)
    for current in ("not-my-password", MEMBER_PASSWORD):  # no oracle for password guesses
        r = ws.client.post("/v1/me/password", headers=bearer(token),
                           json={"current_password": current, "new_password": NEW_PASSWORD})
        assert r.status_code == 403 and error_code(r) == "reauthentication_required", r.text
    reauthenticate(ws, token, secret)
    r = ws.client.post("/v1/me/password", headers=bearer(token),
                       json={"current_password": MEMBER_PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text


# --- the reset link ----------------------------------------------------------------------

def test_asking_for_a_reset_answers_alike_for_known_and_unknown_addresses(
        stack: Stack, make_ws: Any, settled: Callable[[], None]) -> None:
    ws = make_ws(teammates=1)
    invited = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                             json={"email": f"newcomer@{ws.slug}.test", "name": "New",
                                   "role": "member"})
    assert invited.status_code == 201, invited.text
    answers = [ask_reset(ws, address) for address in (
        member(ws), f"nobody@{ws.slug}.test", f"newcomer@{ws.slug}.test")]
    answers.append(ws.client.post("/v1/password-reset",
                                  json={"workspace": "no-such-workspace", "email": member(ws)}))
    assert {(r.status_code, r.content) for r in answers} == {(202, b"")}
    reset_links(stack, member(ws))
    settled()
    assert not [m for m in stack.smtp.to(f"nobody@{ws.slug}.test")]
    # Someone who has not joined yet has no password to reset: only their join email.
    assert [m.subject for m in stack.smtp.to(f"newcomer@{ws.slug}.test")
            if RESET_SUBJECT in m.subject] == []


def test_a_reset_link_serves_once_and_a_newer_one_voids_it(stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    assert ask_reset(ws, member(ws).upper()).status_code == 202  # any case of the address
    first = reset_links(stack, member(ws))[0]
    assert ask_reset(ws, member(ws)).status_code == 202
    second = reset_links(stack, member(ws), 2)[1]
    assert first != second
    voided = confirm(ws, first)
    assert voided.status_code == 401 and error_code(voided) == "invalid_credentials"
    assert "newer" in voided.json()["error"]["message"]
    short = confirm(ws, second, "short")
    assert short.status_code == 422  # a short password does not burn the link
    signed = confirm(ws, second)
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "authenticated"
    again = confirm(ws, second, "another-password-7")
    assert again.status_code == 401 and "used already" in again.json()["error"]["message"]
    assert password_sign_in(ws, member(ws), NEW_PASSWORD)["status"] == "authenticated"
    assert one_event(ws, "twofa.password.changed")["by"] == "reset"
    told = mail_to(stack, member(ws), "was changed")
    assert "with a reset link" in told[0].part("plain")
    unknown = confirm(ws, "not-a-token-we-made")
    assert unknown.status_code == 401 and error_code(unknown) == "invalid_credentials"


def test_a_reset_link_expires_after_an_hour(stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    ask_reset(ws, member(ws))
    token = reset_links(stack, member(ws))[0]
    age_reset(token, timedelta(hours=1, seconds=1))
    r = confirm(ws, token)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert password_sign_in(ws, member(ws))["status"] == "authenticated"  # unchanged


def age_reset(token: str, by: timedelta) -> None:
    """Make a reset link `by` older, as if that time had passed."""
    from sqlalchemy import update

    from services.crypto import hash_token
    from services.db import unit_of_work
    from services.models import PasswordReset

    with unit_of_work() as session:
        row = session.query(PasswordReset).filter_by(token_hash=hash_token(token)).one()
        session.execute(update(PasswordReset).where(PasswordReset.id == row.id).values(
            created_at=row.created_at - by, expires_at=row.expires_at - by))


def test_a_reset_never_skips_the_second_factor_and_ends_every_session(
        stack: Stack, make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    token, secret, _ = enrolled_member(ws)
    ask_reset(ws, member(ws))
    link = reset_links(stack, member(ws))[0]
    r = confirm(ws, link)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "two_factor_required"
    assert "token" not in r.json()
    assert status_of(ws, token) == 401  # the session that was open has ended
    done = ws.client.post("/v1/login/two-factor",
                          json={"challenge": r.json()["challenge"], "code": code(secret)})
    assert done.status_code == 200 and done.json()["status"] == "authenticated", done.text
    assert status_of(ws, done.json()["token"]) == 200


def test_reset_requests_are_limited_per_address_and_per_teammate(
        stack: Stack, make_ws: Any, settled: Callable[[], None]) -> None:
    ws = make_ws(teammates=1)
    answers = [ask_reset(ws, member(ws)).status_code for _ in range(5)]
    assert answers == [202] * 5
    sixth = ask_reset(ws, f"nobody@{ws.slug}.test")
    assert sixth.status_code == 429 and error_code(sixth) == "rate_limited"
    assert 0 < int(sixth.headers["Retry-After"]) <= 15 * 60
    # Sign-in keeps its own bucket: this address still signs in.
    assert password_sign_in(ws, member(ws))["status"] == "authenticated"
    settled()
    # Of the five accepted requests, three emails went out (the rest dropped silently).
    assert len([m for m in stack.smtp.to(member(ws)) if RESET_SUBJECT in m.subject]) == 3


# --- one's sessions ----------------------------------------------------------------------

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def test_sessions_are_listed_and_ended_one_by_one_or_all_others(make_ws: Any) -> None:
    ws = make_ws(teammates=2)
    mine = password_sign_in(ws, member(ws))["token"]
    laptop = password_sign_in(ws, member(ws), headers={"User-Agent": FIREFOX})["token"]
    phone = password_sign_in(ws, member(ws))["token"]
    someone_else = password_sign_in(ws, member(ws, 2))["token"]
    listed = ws.client.get("/v1/me/sessions", headers=bearer(mine))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 3
    assert [i["current"] for i in items].count(True) == 1
    assert {i["ip"] for i in items} == {"127.0.0.1"}
    assert {i["origin"] for i in items} == {"password"}
    assert FIREFOX in {i["user_agent"] for i in items}
    firefox = next(i for i in items if i["user_agent"] == FIREFOX)

    theirs = ws.client.get("/v1/me/sessions", headers=bearer(someone_else)).json()["items"]
    r = ws.client.delete(f"/v1/me/sessions/{theirs[0]['id']}", headers=bearer(mine))
    assert r.status_code == 404 and error_code(r) == "session_not_found"
    assert status_of(ws, someone_else) == 200

    assert ws.client.delete(f"/v1/me/sessions/{firefox['id']}",
                            headers=bearer(mine)).status_code == 204
    assert status_of(ws, laptop) == 401
    assert status_of(ws, phone) == 200
    again = ws.client.delete(f"/v1/me/sessions/{firefox['id']}", headers=bearer(mine))
    assert again.status_code == 404

    assert ws.client.delete("/v1/me/sessions", headers=bearer(mine)).status_code == 204
    assert status_of(ws, phone) == 401
    assert status_of(ws, mine) == 200
    assert status_of(ws, someone_else) == 200
    left = ws.client.get("/v1/me/sessions", headers=bearer(mine)).json()["items"]
    assert [i["current"] for i in left] == [True]


# --- the per-teammate password bound ----------------------------------------------------

def set_wrong_passwords(ws: WorkspaceHandle, address: str, failures: int) -> None:
    """As if `failures` wrong passwords in a row had been tried (a hundred sign-ins would
    need as many hashes and fresh addresses; tests/test_edge_hardening.py does that)."""
    from services.accounts import password_bound
    from services.db import dialect_insert, unit_of_work
    from services.models import PasswordFailures

    with unit_of_work() as session:
        session.execute(dialect_insert(session, PasswordFailures)
                        .values(key=password_bound.key(ws.slug, address), failures=failures)
                        .on_conflict_do_update(index_elements=[PasswordFailures.key],
                                               set_={"failures": failures}))


def test_a_wrong_current_password_counts_toward_the_bound_and_a_reset_clears_it(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    token = password_sign_in(ws, member(ws))["token"]
    set_wrong_passwords(ws, member(ws), 99)
    wrong = ws.client.post("/v1/me/password", headers=bearer(token),
                           json={"current_password": "a-guess", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and error_code(wrong) == "wrong_password"
    # That was the hundredth: sign-in and the change itself now wait, whatever the password.
    for r in (ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws),
                                                "password": MEMBER_PASSWORD}),
              ws.client.post("/v1/me/password", headers=bearer(token),
                             json={"current_password": MEMBER_PASSWORD,
                                   "new_password": NEW_PASSWORD})):
        assert r.status_code == 429 and error_code(r) == "rate_limited", r.text
        assert 0 < int(r.headers["Retry-After"]) <= 30
    ask_reset(ws, member(ws))
    assert confirm(ws, reset_links(stack, member(ws))[0]).status_code == 200
    assert password_sign_in(ws, member(ws), NEW_PASSWORD)["status"] == "authenticated"
