"""Helpers for the trust tests (admins held to 2FA, sensitive changes, notices): signing in
over HTTP, ageing a session's last verification in the database, reading the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.conftest import WorkspaceHandle
from tests.twofactor import bearer, code, enroll

MEMBER_PASSWORD = "member-password"


def member(ws: WorkspaceHandle, n: int = 1) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def password_sign_in(ws: WorkspaceHandle, email: str, password: str = MEMBER_PASSWORD,
                     headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = ws.client.post("/v1/login", headers=headers or {},
                       json={"workspace": ws.slug, "email": email, "password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


def sign_in_with_code(ws: WorkspaceHandle, email: str, value: str,
                      password: str = MEMBER_PASSWORD) -> str:
    body = password_sign_in(ws, email, password)
    assert body["status"] == "two_factor_required", body
    r = ws.client.post("/v1/login/two-factor", json={"challenge": body["challenge"],
                                                     "code": value})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def me(ws: WorkspaceHandle, token: str) -> dict[str, Any]:
    r = ws.client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def enrolled_member(ws: WorkspaceHandle, n: int = 1) -> tuple[str, str, int]:
    """(token, secret, id) of member n after they turned on 2FA in that session."""
    token = password_sign_in(ws, member(ws, n))["token"]
    secret = enroll(ws.client, token).secret
    return token, secret, int(me(ws, token)["id"])


def age_verification(token: str, seconds: float = 3600) -> None:
    """Make the session's last second-factor check `seconds` older, as if that time passed
    (sessions keep the real clock, which the test clock file does not move)."""
    from sqlalchemy import update

    from services.crypto import hash_token
    from services.db import unit_of_work
    from services.models import AuthSession, utcnow

    with unit_of_work() as session:
        done = session.execute(update(AuthSession)
                               .where(AuthSession.token_hash == hash_token(token))
                               .values(verified_at=utcnow() - timedelta(seconds=seconds),
                                       created_at=utcnow() - timedelta(seconds=seconds)))
        assert done.rowcount == 1  # type: ignore[attr-defined]


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def events(ws: WorkspaceHandle, type_: str) -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/events", params={"type": type_},
                      headers=ws.admin_headers())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def reauthenticate(ws: WorkspaceHandle, token: str, secret: str, offset: float = 0) -> None:
    r = ws.client.post("/v1/me/reauthenticate", headers=bearer(token),
                       json={"code": code(secret, offset)})
    assert r.status_code in (200, 204), r.text
