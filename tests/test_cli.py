"""The `twofa` command as an operator uses it, run as a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.stack import Stack, free_port

ROOT = Path(__file__).resolve().parent.parent


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


def _bare_env(home: Path) -> dict[str, str]:
    """The operator's shell: none of the test stack's TWOFA_ settings, a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    return {**env, "TWOFA_HOME": str(home), "COLUMNS": "200", "PYTHONPATH": str(ROOT)}


def _operator(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_a_command_run_where_there_is_no_database_says_so_and_creates_none(tmp_path: Path) -> None:
    home = tmp_path / "var"
    done = _operator(["teammates", "demo"], _bare_env(home), tmp_path)
    line = _one_line_error(done)
    assert "no twofa database" in line and "twofa up" in line and "TWOFA_HOME" in line
    assert not home.exists()  # no empty database left behind to confuse the next command
    for command in (["rollout", "demo"], ["seed", "demo", "--teammates", "1", "--password", "x" * 10],
                    ["apikey", "create", "demo", "host"]):
        assert "no twofa database" in _one_line_error(_operator(command, _bare_env(home), tmp_path))


def test_a_database_without_tables_or_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    env = {**_bare_env(tmp_path), "TWOFA_DATABASE_URL": f"sqlite:///{empty}"}
    line = _one_line_error(_operator(["rollout", "demo"], env, tmp_path))
    assert "no twofa tables yet" in line and "twofa db upgrade" in line
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env["TWOFA_DATABASE_URL"] = f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/twofa"
    line = _one_line_error(_operator(["teammates", "demo"], env, tmp_path))
    assert "did not answer" in line and f"127.0.0.1:{port}" in line and "secret" not in line


def test_up_with_a_port_in_use_says_which_and_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _bare_env(tmp_path / "var")
        line = _one_line_error(_operator(["up", "--port", str(port)], env, tmp_path))
        assert f"port {port}" in line and "the API" in line and "--port" in line
        env["TWOFA_MAILCATCHER_PORT"] = str(port)
        line = _one_line_error(_operator(["up", "--port", str(free_port())], env, tmp_path))
        assert "mail catcher" in line and "TWOFA_MAILCATCHER_PORT" in line


def test_a_bad_option_is_exit_2_and_help_names_values_not_python_types(tmp_path: Path) -> None:
    env = _bare_env(tmp_path / "var")
    bad = _operator(["teammates", "demo", "--limit", "many"], env, tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--limit" in bad.stderr
    for command in (["teammates"], ["rollout"], ["up"], ["worker"], ["seed"]):
        shown = _operator([*command, "--help"], env, tmp_path).stdout
        assert "<bool>" not in shown and "list[str]" not in shown, shown
    assert "--filter KEY=VALUE" in _operator(["teammates", "--help"], env, tmp_path).stdout
    assert "--teammates N" in _operator(["seed", "--help"], env, tmp_path).stdout


def test_rollout_watch_waits_for_the_requirement_then_follows_it(stack: Stack,
                                                                 make_workspace: Any) -> None:
    ws = make_workspace(teammates=3)
    ws.enroll_admin()
    watcher = subprocess.Popen([sys.executable, "-m", "workers.cli", "rollout", ws.slug, "--watch"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **stack.env, "COLUMNS": "200"})
    try:
        time.sleep(3)  # long enough for the old code to have printed and exited
        assert watcher.poll() is None, watcher.communicate()
        ws.require_two_factor()
        out, errors = watcher.communicate(timeout=120)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, errors
    assert "2FA required" in out and "4 teammates, 1 enrolled, 3 invited, 0 pending" in out
