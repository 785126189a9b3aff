"""Standard Webhooks signing: `whsec_` secrets and the three webhook-* headers."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` + base64 of random bytes, as the spec spells it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class Signer:
    """One endpoint's signer: the secret is decoded once, then each attempt only signs."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def headers(self, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
        """The Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
        signature = self._webhook.sign(msg_id=msg_id, timestamp=timestamp, data=body)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }


def headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (the timestamp is the attempt's)."""
    return Signer(secret).headers(msg_id, timestamp, body)
