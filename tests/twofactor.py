"""Test helpers for two-factor flows, with an independent RFC 6238 generator (hmac only).

The generator deliberately shares no code with services.verification: codes it makes are
what a phone app would show, so accepting them shows interoperability.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import time
from dataclasses import dataclass
from typing import Any

import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image


def rfc6238(secret_b32: str, at: float, digits: int = 6, period: int = 30,
            digest: Any = hashlib.sha1) -> str:
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int(at // period).to_bytes(8, "big")
    mac = hmac.new(key, counter, digest).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def code(secret: str, offset: float = 0) -> str:
    """The code a phone shows now (+offset seconds): offset ±30 is the neighbouring step."""
    return rfc6238(secret, time.time() + offset)


def steady(margin: float = 3.0) -> None:
    """Start a test away from a step boundary, so codes computed here are still valid there."""
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Enrolled:
    secret: str
    recovery_codes: list[str]


def enroll(client: TestClient, token: str) -> Enrolled:
    """Set up and confirm 2FA; confirms with the previous step's code so that the current and
    next steps remain for sign-ins in the same test (a step is accepted only once)."""
    r = client.post("/v1/me/two-factor/setup", headers=bearer(token))
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    steady(5)  # a loaded machine may take a second to answer: not across a step boundary
    r = client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                    json={"code": code(secret, -30)})
    assert r.status_code == 200, r.text
    return Enrolled(secret, r.json().get("recovery_codes", []))


def password_login(client: TestClient, slug: str, email: str, password: str) -> dict[str, str]:
    r = client.post("/v1/login", json={"workspace": slug, "email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def complete(client: TestClient, challenge: str, value: str) -> Any:
    return client.post("/v1/login/two-factor", json={"challenge": challenge, "code": value})


def sign_in(client: TestClient, slug: str, email: str, password: str, value: str) -> str:
    body = password_login(client, slug, email, password)
    assert body["status"] == "two_factor_required", body
    r = complete(client, body["challenge"], value)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def wrong_codes(secret: str, n: int) -> list[str]:
    """n codes that match none of the steps now ±2 (so none is accidentally right)."""
    right = {code(secret, k * 30) for k in range(-2, 3)}
    out: list[str] = []
    candidate = 0
    while len(out) < n:
        value = f"{candidate:06d}"
        if value not in right:
            out.append(value)
        candidate += 1
    return out


def enroll_in_session(session: Any, teammate_id: int) -> str:
    """Turn on a teammate's 2FA through the verification service itself (setup, then confirm
    with the code an app would show a step ago); returns the secret. For tests that act as
    the admin without HTTP, since an admin must have 2FA before requiring it."""
    from services.models import Teammate, Workspace
    from services.verification import service as verification

    teammate = session.get(Teammate, teammate_id)
    workspace = session.get(Workspace, teammate.workspace_id)
    secret = verification.setup(session, teammate, workspace).secret
    verification.confirm(session, teammate, rfc6238(secret, time.time() - 30))
    return secret


def qr_texts(png: bytes) -> set[str]:
    """What a phone camera reads from a QR code image, by an independent decoder (zxing-cpp).
    QR codes only, as a camera app looks for them (all formats once gave a second, spurious
    ITF result), and distinct texts, since zxing may report one symbol more than once."""
    return {str(qr.text) for qr in zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)}
