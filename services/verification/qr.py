"""The QR code of an otpauth:// key URI, as the PNG a phone's camera reads (segno)."""

from __future__ import annotations

import io

import segno


def png(uri: str) -> bytes:
    # Error correction M survives a phone screen's glare; scale 6 keeps modules easy to see.
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()
