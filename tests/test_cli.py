"""The `twofa` command as an operator uses it, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.stack import Stack


def twofa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200",
                                                       **(env or {})})


def test_workspace_create_and_seed_ten_thousand(stack: Stack) -> None:
    r = twofa("workspace", "create", "cli-team", "--name", "CLI Team",
              "--admin-email", "boss@cli.test", "--admin-password", "boss-password-1")
    assert r.returncode == 0, r.stderr
    r = twofa("seed", "cli-team", "--teammates", "10000", "--password", "member-password")
    assert r.returncode == 0, r.stderr
    assert "added 10000 members" in r.stdout
    r = twofa("rollout", "cli-team")
    assert "10001 teammates, 0 enrolled" in r.stdout
    r = twofa("teammates", "cli-team", "--limit", "3")
    assert "member-00001@cli-team.test" in r.stdout and "not_required" in r.stdout
    again = twofa("workspace", "create", "cli-team", "--name", "x", "--admin-email",
                  "a@b.test", "--admin-password", "boss-password-1")
    assert again.returncode == 1 and "exists already" in again.stderr


def test_production_refuses_generated_keys_and_seeding(stack: Stack) -> None:
    prod = {"TWOFA_ENV": "production", "TWOFA_ENCRYPTION_KEYS": ""}
    r = twofa("api", env=prod)
    assert r.returncode == 2 and "TWOFA_ENCRYPTION_KEYS" in r.stderr
    r = twofa("seed", "anything", "--teammates", "1", "--password", "x" * 10, env=prod)
    assert r.returncode == 2 and "production" in r.stderr
