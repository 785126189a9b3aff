"""Secrets at rest: nothing in clear in the database or the logs; keys rotate."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.stack import ROOT, Stack, wait_until
from tests.twofactor import bearer, code, complete, enroll, sign_in, steady


def _all_stored_text() -> str:
    """Every value of every row of every table, as text (bytes as latin-1)."""
    from services.db import unit_of_work
    from services.models import Base

    parts: list[str] = []
    with unit_of_work() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(parts)


def test_no_secret_token_or_recovery_code_in_clear(
        stack: Stack, make_workspace: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    steady()
    ws: WorkspaceHandle = make_workspace()
    first_token = ws.login()["token"]
    enrolled = enroll(ws.client, first_token)
    pending_secret = ws.client.post("/v1/me/two-factor/setup",  # refused: 2FA is on
                                    headers=bearer(first_token)).json()
    assert pending_secret["error"]["code"] == "two_factor_already_enabled"
    challenge = ws.login()["challenge"]
    r = complete(ws.client, challenge, code(enrolled.secret))
    assert r.status_code == 200
    session_token = r.json()["token"]
    recovery_token = sign_in(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD,
                             enrolled.recovery_codes[0])
    # Let the worker handle the emails, so its log has had its chance to leak.
    wait_until(lambda: [m for m in stack.smtp.to(ws.admin_email) if "left" in m.part("plain")],
               30, message="recovery-code email")

    plaintexts = [enrolled.secret, enrolled.secret.lower(), first_token, session_token,
                  recovery_token, challenge, *enrolled.recovery_codes,
                  *(c.replace("-", "") for c in enrolled.recovery_codes)]
    stored = _all_stored_text()
    logs = caplog.text + stack.log("worker") + stack.log("relay")
    for plain in plaintexts:
        assert plain not in stored
        assert plain not in logs

    # …and yet it is all there, encrypted or hashed.
    from services import crypto
    from services.db import unit_of_work
    from services.models import Teammate

    with unit_of_work() as session:
        admin = session.get(Teammate, ws.admin_id)
        assert admin is not None and admin.totp_secret_enc is not None
        assert crypto.decrypt(admin.totp_secret_enc) == enrolled.secret
    assert crypto.hash_token(session_token) in stored
    assert crypto.hash_token(enrolled.recovery_codes[1]) in stored


@pytest.mark.uses_backend
def test_keys_rotate_re_encrypts_every_secret(tmp_path: Any) -> None:
    """On a stack of its own: rotation rewrites every secret, which would break the others."""
    other = Stack(home=tmp_path / "rotation").setup()
    try:
        old_key = other.env["TWOFA_ENCRYPTION_KEYS"]
        with other.active():
            from services import crypto
            from services.accounts import workspaces
            from services.db import unit_of_work
            from services.models import Teammate, WebhookEndpoint

            secrets = {}
            with unit_of_work() as session:
                ws, _ = workspaces.create(session, "rot", "Rot", "a@rot.test", ADMIN_PASSWORD)
                workspaces.seed(session, ws, 3, "member-password")
                for i, teammate in enumerate(session.scalars(select(Teammate))):
                    secrets[teammate.id] = f"SECRET{i}AAAAAAAAAAAAAAAAAAAAAAAAA"
                    teammate.totp_secret_enc = crypto.encrypt(secrets[teammate.id])
                    if i == 0:
                        teammate.totp_pending_secret_enc = crypto.encrypt("PENDING")
                session.add(WebhookEndpoint(workspace_id=ws.id, url="https://hooks.test/x",
                                            event_types=["*"],
                                            secret_enc=crypto.encrypt("whsec_signing")))

        new_key = Fernet.generate_key().decode()
        env = {**os.environ, **other.env, "TWOFA_ENCRYPTION_KEYS": f"{new_key},{old_key}"}
        done = subprocess.run([sys.executable, "-m", "workers.cli", "keys", "rotate"], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "re-encrypted 5 rows" in done.stdout

        with other.active(), unit_of_work() as session:
            rows = list(session.scalars(select(Teammate).order_by(Teammate.id)))
            endpoint = session.scalars(select(WebhookEndpoint)).one()
        only_new, only_old = MultiFernet([Fernet(new_key)]), MultiFernet([Fernet(old_key)])
        for teammate in rows:
            assert teammate.totp_secret_enc is not None
            assert only_new.decrypt(teammate.totp_secret_enc).decode() == secrets[teammate.id]
            with pytest.raises(InvalidToken):
                only_old.decrypt(teammate.totp_secret_enc)
        assert rows[0].totp_pending_secret_enc is not None
        assert only_new.decrypt(rows[0].totp_pending_secret_enc) == b"PENDING"
        assert only_new.decrypt(endpoint.secret_enc) == b"whsec_signing"
    finally:
        other.teardown()
