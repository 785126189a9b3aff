"""Settings are parsed when a process starts: a bad value stops it there, by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.config import ConfigurationError, Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
GOOD_KEY = "x" * 43 + "="  # 32 bytes, url-safe base64: a valid Fernet key


def _clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    return {**env, "TWOFA_HOME": str(tmp_path), "COLUMNS": "200", **overrides}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("command", ["api", "worker", "relay"])
def test_a_bad_retry_schedule_stops_the_process_at_start(tmp_path: Path, command: str) -> None:
    env = _clean_env(tmp_path, TWOFA_EMAIL_RETRY_SCHEDULE="5,soon,60")
    r = _run(env, "-m", "workers.cli", command)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "TWOFA_EMAIL_RETRY_SCHEDULE" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_bad_value_is_named_and_no_key_is_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOFA_WEBHOOK_RETRY_SCHEDULE", "")
    monkeypatch.setenv("TWOFA_ENCRYPTION_KEYS", "my-secret-but-not-a-fernet-key")
    monkeypatch.setenv("TWOFA_SMTP_URL", "http://mail.example.test")
    monkeypatch.setenv("TWOFA_SWEEP_INTERVAL", "-1")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as caught:
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    message = str(caught.value)
    for name in ("TWOFA_WEBHOOK_RETRY_SCHEDULE", "TWOFA_ENCRYPTION_KEYS", "TWOFA_SMTP_URL",
                 "TWOFA_SWEEP_INTERVAL"):
        assert name in message, message
    assert "my-secret" not in message


def test_schedules_are_numbers_once_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOFA_EMAIL_RETRY_SCHEDULE", " 0.5, 30 ,120")
    assert Settings().retry_schedule("email") == [0.5, 30.0, 120.0]


def test_production_refuses_the_cheapest_argon2_profile(tmp_path: Path) -> None:
    production = {
        "TWOFA_ENV": "production", "TWOFA_ENCRYPTION_KEYS": GOOD_KEY,
        "TWOFA_DATABASE_URL": "postgresql+psycopg://twofa@127.0.0.1:9/twofa",
        "TWOFA_BROKER_URL": "redis://127.0.0.1:9/0", "TWOFA_SMTP_URL": "smtp://127.0.0.1:9",
        "TWOFA_PUBLIC_URL": "https://twofa.example.test",
    }
    r = _run(_clean_env(tmp_path, **production, TWOFA_ARGON2_PROFILE="cheapest"),
             "-m", "workers.cli", "api")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "TWOFA_ARGON2_PROFILE" in r.stderr


def test_passwords_get_rfc9106_parameters_unless_told_otherwise(tmp_path: Path) -> None:
    code = "from services.accounts.passwords import hash_password; print(hash_password('p' * 12))"
    default = _run(_clean_env(tmp_path), "-c", code)
    assert default.stdout.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), default.stderr
    cheap = _run(_clean_env(tmp_path, TWOFA_ARGON2_PROFILE="cheapest"), "-c", code)
    assert cheap.stdout.startswith("$argon2id$v=19$m=8,t=1,p=1$"), cheap.stderr


def test_importing_twofa_does_no_work(tmp_path: Path) -> None:
    """Every module imports with a bad setting in the environment: nothing reads Settings, builds
    a Celery app or patches kombu until a process starts (the check happens at start)."""
    code = """
import importlib, pkgutil, services, workers
from celery._state import _get_active_apps
from kombu.transport import TRANSPORT_ALIASES
for package in (services, workers):
    for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations" not in found.name:
            importlib.import_module(found.name)
print(len(list(_get_active_apps())), TRANSPORT_ALIASES["filesystem"])
"""
    r = _run(_clean_env(tmp_path, TWOFA_EMAIL_RETRY_SCHEDULE="soon"), "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "kombu.transport.filesystem:Transport"]


def test_an_origin_the_relying_party_does_not_cover_stops_the_api(tmp_path: Path) -> None:
    env = _clean_env(tmp_path, TWOFA_PUBLIC_URL="https://twofa.example.com",
                     TWOFA_WEBAUTHN_ORIGINS="https://app.example.com")
    r = _run(env, "-m", "workers.cli", "api")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "TWOFA_WEBAUTHN_ORIGINS" in r.stderr and "Traceback" not in r.stderr


def test_a_registrable_suffix_covers_host_applications(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOFA_PUBLIC_URL", "https://twofa.example.com")
    monkeypatch.setenv("TWOFA_WEBAUTHN_RP_ID", "example.com")
    monkeypatch.setenv("TWOFA_WEBAUTHN_ORIGINS", "https://app.example.com, https://example.com")
    assert Settings().webauthn_origins == ("https://app.example.com", "https://example.com")
    monkeypatch.setenv("TWOFA_WEBAUTHN_RP_ID", "other.com")  # not a suffix of the public host
    with pytest.raises(ValueError, match="TWOFA_WEBAUTHN_RP_ID"):
        Settings()
