"""Standard Webhooks signing: `whsec_` secrets and the three webhook-* headers.

An endpoint's stored secret is a key ring: a plain `whsec_` string, or, after a rotation,
JSON naming the new secret, the previous one and when the previous one stops signing. Until
then every attempt carries both signatures in its one `webhook-signature` header,
space-separated as the specification allows, so a receiver holding either secret verifies.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` + base64 of random bytes, as the spec spells it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True)
class KeyRing:
    """The secret that signs, and the one it replaced while the overlap lasts."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def dumps(self) -> str:
        if self.previous is None or self.previous_until is None:
            return self.current
        return json.dumps({"current": self.current, "previous": self.previous,
                           "previous_until": int(self.previous_until.timestamp())})

    @classmethod
    def loads(cls, stored: str) -> KeyRing:
        if not stored.startswith("{"):
            return cls(stored)
        ring = json.loads(stored)
        return cls(ring["current"], ring["previous"],
                   datetime.fromtimestamp(ring["previous_until"], UTC))

    def rotated(self, new: str, now: datetime, overlap_until: datetime) -> KeyRing:
        """`new` signs from now on; the secret signing until now keeps signing until
        `overlap_until` (an older one, still in an earlier overlap, is dropped)."""
        return KeyRing(new, self.current, overlap_until) if overlap_until > now else KeyRing(new)


class Signer:
    """One endpoint's signer: the key ring is decoded once, then each attempt only signs."""

    def __init__(self, stored: str) -> None:
        ring = KeyRing.loads(stored)
        self._webhook = Webhook(ring.current)
        self._previous = Webhook(ring.previous) if ring.previous else None
        self._previous_until = ring.previous_until

    def headers(self, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
        """The Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
        signature = self._webhook.sign(msg_id=msg_id, timestamp=timestamp, data=body)
        if self._previous and self._previous_until and timestamp < self._previous_until:
            old = self._previous.sign(msg_id=msg_id, timestamp=timestamp, data=body)
            signature = f"{signature} {old}"
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }


def headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
    return Signer(secret).headers(msg_id, timestamp, body)
