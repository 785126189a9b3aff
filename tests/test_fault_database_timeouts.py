"""A statement that cannot finish (stuck behind another connection's lock) is cancelled by
PostgreSQL after TWOFA_DATABASE_STATEMENT_TIMEOUT_MS: the API answers 503 `unavailable` with
Retry-After, on the async read path (/v1/me, asyncpg) as on the ORM path (admin routes), and
answers normally again once the lock is gone. Over real HTTP, against a real `twofa api`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import WorkspaceHandle, start_api
from tests.stack import Stack, backend
from tests.twofactor import bearer

pytestmark = pytest.mark.skipif(backend() != "postgres",
                                reason="statement_timeout is PostgreSQL's (SQLite waits on busy_timeout)")
TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    # The client's own timeout (60 s) is far beyond the statement timeout: a hang fails the test.
    yield from start_api(stack, TWOFA_DATABASE_STATEMENT_TIMEOUT_MS=str(TIMEOUT_MS))


def _locked(database_url: str, table: str) -> Any:
    """Another client holding an exclusive lock on `table` (every read of it waits)."""
    import psycopg

    conn = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # inside an open transaction
    return conn


def _answer(r: httpx.Response) -> tuple[int, str | None, str | None]:
    return r.status_code, r.headers.get("retry-after"), r.json().get("error", {}).get("code")


def test_a_statement_stuck_behind_a_lock_answers_503_then_recovers(
    stack: Stack, make_ws: Any
) -> None:
    ws: WorkspaceHandle = make_ws(teammates=3)
    http: httpx.Client = ws.client  # type: ignore[assignment]
    member = ws.login("member-00001@" + ws.slug + ".test", "member-password")["token"]
    admin = ws.admin_headers()
    teammates = f"/v1/workspaces/{ws.slug}/teammates"
    assert http.get("/v1/me", headers=bearer(member)).status_code == 200
    assert http.get(teammates, headers=admin).status_code == 200

    assert stack.database_url is not None
    lock = _locked(stack.database_url, "teammates")
    try:
        started = time.monotonic()
        me = http.get("/v1/me", headers=bearer(member))  # asyncpg, one statement
        listing = http.get(teammates, headers=admin)  # SQLAlchemy ORM in a transaction
        policy = http.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=admin,
                          json={"require_two_factor": True})
        elapsed = time.monotonic() - started
    finally:
        lock.rollback()
        lock.close()
    print(f"statement timeout {TIMEOUT_MS} ms: three blocked requests answered in {elapsed:.1f} s")
    for r in (me, listing, policy):
        assert _answer(r) == (503, "5", "unavailable"), (r.request.url, r.text)
    assert "in time" in me.json()["error"]["message"]

    # Nothing was half-written and everything answers again once the lock is gone.
    assert http.get("/v1/me", headers=bearer(member)).status_code == 200
    r = http.get(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=admin)
    assert r.status_code == 200 and r.json()["require_two_factor"] is False
    assert r.json()["version"] == 0
    assert http.get(teammates, headers=admin).status_code == 200
