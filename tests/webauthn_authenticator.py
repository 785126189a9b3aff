"""A software WebAuthn authenticator for tests: an ES256 key pair, `none` attestation, and
authenticator data built by hand per the WebAuthn spec (§6.1, §6.5.1) with a small CBOR
encoder of its own, sharing no code with the server's py_webauthn.

It answers in the JSON forms a browser's `credential.toJSON()` gives, so its responses go to
the API exactly as the console's JavaScript sends them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value: Any) -> bytes:
    """CBOR (RFC 8949) for what attestation needs: ints, byte and text strings, maps."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | extra]) + struct.pack(fmt, n)
        raise ValueError(n)
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


@dataclass
class SoftKey:
    """One credential: its key pair, id, counter and the user handle it was made for."""

    rp_id: str
    origin: str
    user_handle: bytes = b""
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    counter: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.private.public_key().public_numbers()
        return cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                     -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}, separators=(",", ":")).encode()

    def _auth_data(self, flags: int, rp_id: str | None, extra: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.counter) + extra

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None, challenge: str | None = None) -> dict[str, Any]:
        """`navigator.credentials.create()` answered: a RegistrationResponseJSON."""
        self.user_handle = unb64url(options["user"]["id"])
        attested = (bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
                    + self.cose_public_key())
        auth_data = self._auth_data(UP | UV | AT, rp_id, attested)
        client = self._client_data("webauthn.create", challenge or options["challenge"], origin)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
                "type": "public-key", "clientExtensionResults": {},
                "authenticatorAttachment": "cross-platform",
                "response": {"clientDataJSON": b64url(client),
                             "attestationObject": b64url(attestation),
                             "transports": ["usb"]}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None, challenge: str | None = None, uv: bool = True,
            counter_step: int = 1) -> dict[str, Any]:
        """`navigator.credentials.get()` answered: an AuthenticationResponseJSON."""
        self.counter += counter_step
        auth_data = self._auth_data(UP | (UV if uv else 0), rp_id)
        client = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = self.private.sign(auth_data + hashlib.sha256(client).digest(),
                                      ec.ECDSA(hashes.SHA256()))
        return {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
                "type": "public-key", "clientExtensionResults": {},
                "authenticatorAttachment": "cross-platform",
                "response": {"clientDataJSON": b64url(client),
                             "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature),
                             "userHandle": b64url(self.user_handle)}}
