"""The HTTP edge, over real HTTP to `twofa api` in its own process: which client address is
believed, the per-teammate password bound, `no-store` on secrets and teammates' data, what
outside clients are told (non-UTF-8 bodies, 405's Allow, key URIs, /metrics, mail dates),
owner-only files and the example host application's own CSRF and cookie.
"""

from __future__ import annotations

import email
import os
import re
import smtplib
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle, start_api
from tests.stack import ROOT, Stack, free_port, wait_until
from tests.twofactor import bearer

MEMBER_PASSWORD = "member-password"


def member(ws: WorkspaceHandle, n: int = 1) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def fresh_ip() -> str:
    return f"2001:db8:{uuid.uuid4().int % 65535:x}:{uuid.uuid4().int % 65535:x}::1"


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def _forget_address(address: str) -> None:
    from sqlalchemy import delete

    from services.accounts import ip_throttle
    from services.db import unit_of_work
    from services.models import LoginThrottle

    with unit_of_work() as session:
        session.execute(delete(LoginThrottle).where(
            LoginThrottle.key == ip_throttle.bucket(address)))


# --- X-Forwarded-For ---------------------------------------------------------------------


@pytest.fixture
def default_api(stack: Stack) -> Iterator[httpx.Client]:
    """A server with the defaults (no trusted proxy), unlike the suite's other servers."""
    _forget_address("127.0.0.1")
    yield from start_api(stack, TWOFA_FORWARDED_ALLOW_IPS="")
    _forget_address("127.0.0.1")


def test_forwarded_for_is_not_believed_by_default(
        default_api: httpx.Client, make_workspace: Any) -> None:
    from services.accounts import ip_throttle

    ws: WorkspaceHandle = make_workspace(teammates=1)
    wrong = {"workspace": ws.slug, "email": member(ws), "password": "not-the-password"}
    answers = [default_api.post("/v1/login", json=wrong,
                                headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
               for n in range(40)]
    assert answers[:ip_throttle.MAX_FAILURES] == [401] * ip_throttle.MAX_FAILURES
    assert set(answers[ip_throttle.MAX_FAILURES:]) == {429}, answers
    # Events carry the connection's address, not the one the client claimed.
    _forget_address("127.0.0.1")
    token = default_api.post("/v1/login", json={
        "workspace": ws.slug, "email": ws.admin_email, "password": ADMIN_PASSWORD}).json()["token"]
    r = default_api.post(f"/v1/workspaces/{ws.slug}/teammates", headers={
        **bearer(token), "X-Forwarded-For": "203.0.113.9"},
        json={"email": f"new@{ws.slug}.test", "name": "New", "role": "member"})
    assert r.status_code == 201, r.text
    events = default_api.get(f"/v1/workspaces/{ws.slug}/events", headers=bearer(token)).json()
    added = [e for e in events["items"] if e["type"] == "twofa.teammate.added"]
    assert added and added[-1]["data"]["ip"] == "127.0.0.1", added


def test_forwarded_for_is_believed_from_the_listed_proxy(
        stack: Stack, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace()
    for api in start_api(stack, TWOFA_FORWARDED_ALLOW_IPS="127.0.0.1"):
        token = api.post("/v1/login", json={"workspace": ws.slug, "email": ws.admin_email,
                                            "password": ADMIN_PASSWORD}).json()["token"]
        r = api.post(f"/v1/workspaces/{ws.slug}/teammates", headers={
            **bearer(token), "X-Forwarded-For": "203.0.113.9"},
            json={"email": f"new@{ws.slug}.test", "name": "New", "role": "member"})
        assert r.status_code == 201, r.text
        events = api.get(f"/v1/workspaces/{ws.slug}/events", headers=bearer(token)).json()
        added = [e for e in events["items"] if e["type"] == "twofa.teammate.added"]
        assert added[-1]["data"]["ip"] == "203.0.113.9", added


# --- the per-teammate password bound -------------------------------------------------------


def _wrong_passwords(api: httpx.Client, slug: str, email_address: str, n: int) -> list[int]:
    """n wrong passwords, from addresses that change before the per-IP limit would count."""
    statuses, ip = [], fresh_ip()
    for i in range(n):
        if i % 25 == 0:
            ip = fresh_ip()
        statuses.append(api.post("/v1/login", headers={"X-Forwarded-For": ip}, json={
            "workspace": slug, "email": email_address, "password": f"wrong-{i}"}).status_code)
    return statuses


def _wait_over(slug: str, email_address: str) -> None:
    """The wait has passed (moved in the database rather than slept through)."""
    from sqlalchemy import update

    from services.accounts import password_bound
    from services.db import unit_of_work
    from services.models import PasswordFailures, utcnow

    with unit_of_work() as session:
        session.execute(update(PasswordFailures)
                        .where(PasswordFailures.key == password_bound.key(slug, email_address))
                        .values(locked_until=utcnow() - timedelta(seconds=1)))


def test_a_hundred_wrong_passwords_make_every_attempt_wait(
        api: httpx.Client, make_ws: Any) -> None:
    ws: WorkspaceHandle = make_ws(teammates=1)
    target = member(ws)
    assert set(_wrong_passwords(api, ws.slug, target, 100)) == {401}

    def attempt(password: str, address: str | None = None) -> httpx.Response:
        return api.post("/v1/login", headers={"X-Forwarded-For": fresh_ip()}, json={
            "workspace": ws.slug, "email": address or target, "password": password})

    # The 101st attempt waits 30 s, even with the right password, even spelled in capitals.
    for r in (attempt(MEMBER_PASSWORD), attempt("wrong"), attempt(MEMBER_PASSWORD, target.upper())):
        assert r.status_code == 429 and error_code(r) == "rate_limited", r.text
        assert 0 < int(r.headers["Retry-After"]) <= 30
    # Another teammate is not held up.
    assert attempt(ADMIN_PASSWORD, ws.admin_email).status_code == 200
    # After the wait, one more wrong password doubles it.
    _wait_over(ws.slug, target)
    assert attempt("wrong-again").status_code == 401
    r = attempt(MEMBER_PASSWORD)
    assert r.status_code == 429 and 30 < int(r.headers["Retry-After"]) <= 60, r.headers
    # A success clears it: the next wrong password is an ordinary 401 again.
    _wait_over(ws.slug, target)
    assert attempt(MEMBER_PASSWORD).status_code == 200
    assert attempt("wrong").status_code == 401
    assert attempt(MEMBER_PASSWORD).status_code == 200


def test_the_password_bound_holds_for_unknown_addresses_too(
        api: httpx.Client, make_ws: Any) -> None:
    ws: WorkspaceHandle = make_ws()
    ghost = f"nobody@{ws.slug}.test"
    assert set(_wrong_passwords(api, ws.slug, ghost, 100)) == {401}
    r = api.post("/v1/login", headers={"X-Forwarded-For": fresh_ip()}, json={
        "workspace": ws.slug, "email": ghost, "password": "anything"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_a_passkey_signs_in_during_the_password_wait_clears_it_and_is_listed_as_one(
        api: httpx.Client, make_ws: Any) -> None:
    from tests.twofactor import password_login
    from tests.webauthn_authenticator import SoftKey

    ws: WorkspaceHandle = make_ws(teammates=1)
    target = member(ws)
    token = password_login(api, ws.slug, target, MEMBER_PASSWORD)["token"]
    key = SoftKey(rp_id="twofa.example.test", origin="https://twofa.example.test")
    options = api.post("/v1/me/two-factor/webauthn/options", headers=bearer(token)).json()
    r = api.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                 json={"name": "Laptop", "credential": key.create(options["options"])})
    assert r.status_code == 201, r.text
    assert set(_wrong_passwords(api, ws.slug, target, 100)) == {401}
    here = {"X-Forwarded-For": fresh_ip()}
    sign_in = {"workspace": ws.slug, "email": target, "password": MEMBER_PASSWORD}
    assert api.post("/v1/login", headers=here, json=sign_in).status_code == 429

    # The password wait does not hold up a passkey (both factors), and the passkey ends it.
    begun = api.post("/v1/login/passkey/options", headers=here, json={}).json()
    r = api.post("/v1/login/passkey", headers=here, json={
        "challenge": begun["challenge"], "webauthn": key.get(begun["options"])})
    assert r.status_code == 200 and r.json()["status"] == "authenticated", r.text
    listed = api.get("/v1/me/sessions", headers=bearer(r.json()["token"])).json()["items"]
    assert [(s["origin"], s["current"]) for s in listed] == [("passkey", True), ("password", False)]
    r = api.post("/v1/login", headers=here, json=sign_in)
    assert r.status_code == 200 and r.json()["status"] == "two_factor_required", r.text


# --- no-store -------------------------------------------------------------------------------


def test_answers_with_secrets_tokens_or_teammates_are_never_cached(
        api: httpx.Client, make_ws: Any) -> None:
    ws: WorkspaceHandle = make_ws(teammates=2)
    login = api.post("/v1/login", json={"workspace": ws.slug, "email": ws.admin_email,
                                        "password": ADMIN_PASSWORD})
    token = login.json()["token"]
    admin = bearer(token)
    prefix = f"/v1/workspaces/{ws.slug}"
    hook = api.post(f"{prefix}/webhooks", headers=admin,
                    json={"url": "https://hooks.example.com/twofa", "event_types": ["*"]})
    assert hook.status_code == 201, hook.text
    answers = {
        "login": login,
        "webhook creation": hook,
        "webhook rotation": api.post(f"{prefix}/webhooks/{hook.json()['id']}/rotate-secret",
                                     headers=admin),
        "teammates": api.get(f"{prefix}/teammates", headers=admin),
        "teammates CSV": api.get(f"{prefix}/teammates/export.csv", headers=admin),
        "me": api.get("/v1/me", headers=admin),
        "events": api.get(f"{prefix}/events", headers=admin),
        "a refusal": api.post("/v1/login", json={"workspace": ws.slug, "email": "x@y.test",
                                                 "password": "wrong-one"}),
    }
    for what, r in answers.items():
        assert r.status_code < 500, (what, r.text)
        assert r.headers.get("cache-control") == "no-store", (what, r.headers)


# --- outside clients ------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_json_is_422_invalid_request(
        api: httpx.Client, make_ws: Any) -> None:
    ws: WorkspaceHandle = make_ws()
    for body in (b'{"workspace": "\xff\xfe"}', b"\xff\xfe\x00{", b"\x80"):
        r = api.post("/v1/login", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and error_code(r) == "invalid_request", (body, r.text)
        r = api.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", content=body,
                    headers={**ws.admin_headers(), "Content-Type": "application/json"})
        assert r.status_code == 422 and error_code(r) == "invalid_request", (body, r.text)


def test_405_lists_every_method_the_path_serves(api: httpx.Client, make_ws: Any) -> None:
    ws: WorkspaceHandle = make_ws(teammates=1)
    for path, methods in ((f"/v1/workspaces/{ws.slug}/two-factor-policy", {"GET", "PUT"}),
                          (f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id + 1}/exemption",
                           {"PUT", "DELETE"}),
                          (f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id + 1}",
                           {"GET", "PATCH", "DELETE"})):
        r = api.request("POST", path, headers=ws.admin_headers(), json={})
        assert r.status_code == 405 and error_code(r) == "method_not_allowed", r.text
        assert {m.strip() for m in r.headers["Allow"].split(",")} == methods, (path, r.headers)


def test_the_openapi_document_tells_outside_clients_what_they_get(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    disable = doc["paths"]["/v1/me/two-factor"]["delete"]["responses"]
    assert "429" in disable and "Retry-After" in disable["429"]["headers"]
    login = doc["paths"]["/v1/login"]["post"]["responses"]
    assert "UTF-8" in login["422"]["description"]


def test_a_workspace_name_with_a_colon_gives_a_key_uri_apps_accept(
        api: httpx.Client, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(name="R&D: Ops")
    ws.client = api  # type: ignore[assignment]
    token = ws.login()["token"]
    uri = api.post("/v1/me/two-factor/setup", headers=bearer(token)).json()["otpauth_uri"]
    parsed = pyotp.parse_uri(uri)  # pyotp refuses a label issuer that differs from the parameter
    assert isinstance(parsed, pyotp.TOTP) and parsed.name == ws.admin_email
    assert parsed.issuer and ":" not in parsed.issuer and "R&D" in parsed.issuer, uri


def test_metrics_export_every_invitation_state_from_zero(api: httpx.Client) -> None:
    from services.models import INVITATION_STATUSES

    text = api.get("/metrics").text
    seen = {s.labels["state"] for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "twofa_invitations"}
    assert set(INVITATION_STATUSES) <= seen, seen


def test_emails_date_header_uses_the_numeric_zone(stack: Stack, make_ws: Any) -> None:
    ws: WorkspaceHandle = make_ws(teammates=1)
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                       json={"email": f"dated@{ws.slug}.test", "name": "D", "role": "member"})
    assert r.status_code == 201, r.text
    [mail] = wait_until(lambda: stack.smtp.to(f"dated@{ws.slug}.test"), 30, message="join email")
    assert re.search(r"[+-]\d{4}$", str(mail.message["Date"])), mail.message["Date"]
    assert email.utils.parsedate_to_datetime(str(mail.message["Date"])).utcoffset() is not None


# --- files -----------------------------------------------------------------------------------


def test_an_existing_home_is_tightened(tmp_path: Path) -> None:
    home = tmp_path / "var"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    env["TWOFA_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "workers.cli", "db", "upgrade"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_caught_mail_is_owner_only(tmp_path: Path) -> None:
    from workers import mailcatcher

    os.umask(0o022)
    port = free_port()
    catcher = mailcatcher.start(tmp_path / "mail", port)
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@b.test", "c@d.test", "Join"
        message.set_content("https://twofa.example.test/join?token=secret")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
        [kept] = wait_until(lambda: list((tmp_path / "mail").glob("*.eml")), 10,
                            message="the caught message")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    finally:
        catcher.stop()


# --- the example host application ---------------------------------------------------------


def test_example_host_app_has_csrf_and_a_cookie_of_its_own(make_ws: Any) -> None:
    import importlib.util

    demo: WorkspaceHandle = make_ws(teammates=1)
    spec = importlib.util.spec_from_file_location("host_app", ROOT / "docs/examples/host_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host = TestClient(module.create_app(demo.client, demo.api_key(),
                                        {member(demo): "host-password"}))
    # A form posted without the page's token (another site's form) is refused.
    r = host.post("/login", data={"email": member(demo), "password": "host-password"})
    assert r.status_code == 403, r.text
    form = host.get("/").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, form
    r = host.post("/login", data={"csrf_token": token.group(1), "email": member(demo),
                                  "password": "host-password"})
    assert r.status_code == 200 and f"({member(demo)})" in r.text, r.text
    # Its cookie is its own session id, not the twofa token (which it keeps server-side).
    cookie = host.cookies.get("session")
    assert cookie and not demo.introspect(cookie)["active"]
