"""The TOTP module against the RFCs' published vectors and an independent generator."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from services.verification import recovery, totp
from tests.twofactor import rfc6238

# RFC 6238 Appendix B and RFC 4226 Appendix D, copied into tests/data/ (the file names its source).
VECTORS = json.loads((Path(__file__).resolve().parent / "data" / "rfc-otp.json").read_text())
SHA1_SEED = VECTORS["totp_seeds_base32"]["SHA1"]


@pytest.mark.parametrize("vector", [v for v in VECTORS["totp"] if v["algorithm"] == "SHA1"],
                         ids=lambda v: str(v["time"]))
def test_rfc6238_appendix_b_sha1_8_digits(vector: dict[str, object]) -> None:
    assert totp.code_at(SHA1_SEED, float(vector["time"]), digits=8) == vector["code"]  # type: ignore[arg-type]


def test_rfc4226_hotp_vectors() -> None:
    expected = VECTORS["hotp_sha1_6_digits_by_counter"]
    assert len(expected) == 10
    assert [totp.hotp(SHA1_SEED, counter) for counter in range(10)] == expected


def test_the_step_check_finds_each_rfc4226_counter() -> None:
    # matching_step computes HOTP itself (the key decoded once): the RFC's values again.
    for counter, code in enumerate(VECTORS["hotp_sha1_6_digits_by_counter"]):
        assert totp.matching_step(SHA1_SEED, code, counter * 30 + 15.0) == counter
        assert totp.matching_step(SHA1_SEED, code, counter * 30 + 105.0) is None  # 3 steps on


def test_seed_is_the_ascii_of_the_rfc() -> None:
    assert base64.b32decode(SHA1_SEED).decode() == VECTORS["totp_seeds_ascii"]["SHA1"]


@pytest.mark.parametrize("at", [0.0, 59.0, 1_111_111_109.0, 1_700_000_000.0, 2_000_000_000.0])
def test_independent_generator_interoperates(at: float) -> None:
    secret = totp.new_secret()
    assert totp.code_at(secret, at) == rfc6238(secret, at)
    assert totp.matching_step(secret, rfc6238(secret, at), at) == int(at // 30)


def test_window_is_one_step_each_side_and_returns_the_matched_step() -> None:
    secret, now = totp.new_secret(), 1_700_000_015.0
    step = int(now // 30)
    assert totp.matching_step(secret, rfc6238(secret, now - 30), now) == step - 1
    assert totp.matching_step(secret, rfc6238(secret, now + 30), now) == step + 1
    for far in (-60, 60, -90):
        far_code = rfc6238(secret, now + far)
        if far_code not in {rfc6238(secret, now + k) for k in (-30, 0, 30)}:
            assert totp.matching_step(secret, far_code, now) is None


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "１２３４５６", "12 345"])
def test_malformed_codes_never_match(bad: str) -> None:
    assert totp.matching_step(totp.new_secret(), bad, 1_700_000_000.0) is None


def test_new_secret_is_160_bits_unpadded_base32_and_fresh() -> None:
    secrets_ = {totp.new_secret() for _ in range(50)}
    assert len(secrets_) == 50
    for s in secrets_:
        assert re.fullmatch(r"[A-Z2-7]{32}", s)
        assert len(base64.b32decode(s)) == 20


def test_provisioning_uri_is_google_authenticator_key_uri() -> None:
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXP", "ann+x@acme.test", "Acme & Co: Team")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert parsed.path == "/Acme%20%26%20Co%20Team:ann%2Bx%40acme.test"
    assert unquote(parsed.path) == "/Acme & Co Team:ann+x@acme.test"
    query = parse_qs(parsed.query)
    # The same colon-free issuer as in the label: apps (and pyotp) refuse them differing.
    assert query == {"secret": ["JBSWY3DPEHPK3PXP"], "issuer": ["Acme & Co Team"],
                     "algorithm": ["SHA1"], "digits": ["6"], "period": ["30"]}


def test_recovery_codes_have_at_least_64_bits_and_normalize() -> None:
    codes = recovery.generate()
    assert len(codes) == 10 and len(set(codes)) == 10
    for c in codes:
        raw = c.replace("-", "")
        assert len(raw) * 5 >= 64  # base32: 5 bits a character
        assert recovery.normalize(f"  {raw.upper()} ") == c
