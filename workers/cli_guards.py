"""What the `twofa` command checks before it starts work, so that an operator's mistake is one
line and exit code 2 (a usage error, as click uses it), never a traceback: a database that is
not there, a port that is taken."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import make_url


class CliError(Exception):
    """A problem the operator can fix; the message says how. `main` prints it and exits 2."""


def existing_database(url: str, home: Path) -> None:
    """A command that reads a workspace needs a database that `twofa up` or `twofa db upgrade`
    made. SQLite would otherwise create an empty file wherever the command happens to run."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    if not Path(parsed.database).exists():
        raise CliError(
            f"no twofa database at {parsed.database}. Run `twofa up` or `twofa db upgrade` first, "
            f"or point TWOFA_HOME (now {home}) or TWOFA_DATABASE_URL at the one you use.")


def database_error(url: str, exc: Exception) -> CliError:
    """A database that refused us, or has no tables yet, in one line."""
    shown = make_url(url).render_as_string(hide_password=True)
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if "no such table" in first or "does not exist" in first and "relation" in first:
        return CliError(f"the database at {shown} has no twofa tables yet: run `twofa db upgrade`.")
    return CliError(f"the database at {shown} did not answer: {first}")


def free_port(host: str, port: int, what: str, setting: str) -> None:
    """Bind and release the port now, so a clash is said before any process starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(f"port {port} on {host} ({what}) is in use ({exc.strerror}); "
                           f"stop what uses it or choose another with {setting}.") from exc
