"""Single-statement reads and writes for async code, outside any transaction.

The hot checks (introspection, /v1/me) are one indexed statement each. Through the ORM
they cost a thread-pool hop, a pool pre-ping, BEGIN and COMMIT around the SELECT; here:
* PostgreSQL: a small pool of asyncpg connections on the event loop (no transaction: each
  statement commits alone), running the statement compiled once and prepared server-side.
  asyncpg, not psycopg's AsyncConnection: measured here, one indexed SELECT cost ~67 µs of
  client CPU with asyncpg against ~230 µs with psycopg's async wait loop, and introspection
  is the call a host application makes on every request it serves;
* SQLite (the embedded default): the sync engine in a worker thread, without the BEGIN
  IMMEDIATE that write transactions take (a lone statement is its own snapshot).
Statements are SQLAlchemy Core, so both databases run the same query.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import asyncpg
from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement

from services.config import get_settings
from services.db import CONNECT_TIMEOUT_SECONDS, READ_ONLY, get_engine
from services.errors import Unavailable

POOL_SIZE = 10  # connections per API process; more would only queue inside PostgreSQL

_DIALECT = asyncpg_dialect()
# The connection broke (a restarted server leaves idle connections dead): try a new one.
_BROKEN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
# The server cancelled the statement (statement_timeout, e.g. stuck behind a lock): the
# connection stays usable, the request answers 503.
_CANCELLED = asyncpg.QueryCanceledError
_compiled: dict[int, tuple[str, tuple[str, ...], dict[str, Any]]] = {}
_pools: dict[tuple[str, asyncio.AbstractEventLoop], _Pool] = {}


async def fetch_one(stmt: Executable, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row of `stmt` (a module-level constant: it is compiled once), or None."""
    url = get_settings().resolved_database_url
    if url.startswith("sqlite"):
        return await anyio.to_thread.run_sync(_sqlite_one, stmt, params)
    sql, args = _sql(stmt, params)
    return await _pool(url).fetch_one(sql, args)


async def execute(stmt: Executable, params: dict[str, Any]) -> int:
    """Run one statement on its own (autocommit); its rowcount."""
    url = get_settings().resolved_database_url
    if url.startswith("sqlite"):
        return await anyio.to_thread.run_sync(_sqlite_execute, stmt, params)
    sql, args = _sql(stmt, params)
    return await _pool(url).execute(sql, args)


def on_postgres() -> bool:
    return not get_settings().resolved_database_url.startswith("sqlite")


async def close_pools() -> None:
    """Close the pools of the running event loop (the API's shutdown)."""
    loop = asyncio.get_running_loop()
    for key in [k for k in _pools if k[1] is loop]:
        await _pools.pop(key).close()


def _sql(stmt: Executable, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The statement's SQL for asyncpg ($1, $2…) and its arguments in that order."""
    hit = _compiled.get(id(stmt))
    if hit is None:
        assert isinstance(stmt, ClauseElement)
        compiled = stmt.compile(dialect=_DIALECT)
        hit = _compiled[id(stmt)] = (str(compiled), tuple(getattr(compiled, "positiontup", None) or ()),
                                     dict(compiled.params))
    sql, order, defaults = hit
    return sql, [params[name] if name in params else defaults[name] for name in order]


def _sqlite_one(stmt: Executable, params: dict[str, Any]) -> tuple[Any, ...] | None:
    with get_engine().connect().execution_options(**READ_ONLY) as conn:
        row = conn.execute(stmt, params).first()
    return tuple(row) if row is not None else None


def _sqlite_execute(stmt: Executable, params: dict[str, Any]) -> int:
    with get_engine().begin() as conn:
        return int(conn.execute(stmt, params).rowcount)


def _unreachable() -> Unavailable:
    return Unavailable("The database is unreachable; try again shortly.", 5)


def _too_slow() -> Unavailable:
    return Unavailable("The database did not answer in time; try again shortly.", 5)


def _pool(url: str) -> _Pool:
    key = (url, asyncio.get_running_loop())
    pool = _pools.get(key)
    if pool is None:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        timeout = get_settings().database_statement_timeout_ms
        pool = _pools[key] = _Pool(dsn, POOL_SIZE, timeout)
    return pool


class _Pool:
    """At most `size` connections, idle ones reused last-in first-out. No background task
    and no reset query on release (asyncpg's own pool adds a round trip per use): a
    connection that fails is dropped, and the statement is tried once more on a new one."""

    def __init__(self, dsn: str, size: int, statement_timeout_ms: int = 0) -> None:
        self.dsn = dsn
        # The same server-side bound as the sync engine's (TWOFA_DATABASE_STATEMENT_TIMEOUT_MS).
        self.server_settings = ({"statement_timeout": str(statement_timeout_ms)}
                                if statement_timeout_ms else {})
        self.idle: list[asyncpg.Connection] = []
        self.slots = asyncio.Semaphore(size)

    async def fetch_one(self, sql: str, args: list[Any]) -> tuple[Any, ...] | None:
        async with self.slots:
            row = await self._run(sql, args, one=True)
        return tuple(row) if row is not None else None  # type: ignore[arg-type]

    async def execute(self, sql: str, args: list[Any]) -> int:
        async with self.slots:
            status = await self._run(sql, args, one=False)
        return int(str(status).rsplit(" ", 1)[-1])  # "UPDATE 1"

    async def _run(self, sql: str, args: list[Any], one: bool) -> object:
        for attempt in (1, 2):
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await self._connect()
            try:
                result = await (conn.fetchrow(sql, *args) if one else conn.execute(sql, *args))
            except _BROKEN as exc:
                conn.terminate()
                if reused and attempt == 1:
                    continue
                raise _unreachable() from exc
            except _CANCELLED as exc:
                self.idle.append(conn)  # the server ended the statement, not the connection
                raise _too_slow() from exc
            except BaseException:
                conn.terminate()  # cancelled mid-statement: its state is unknown
                raise
            self.idle.append(conn)
            return result
        raise AssertionError("unreachable")

    async def _connect(self) -> asyncpg.Connection:
        # Bounded like the sync engine's connect_timeout: a database that is down or
        # restarting is a 503 to retry, never a hang or a 500.
        try:
            return await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_SECONDS,
                                         server_settings=self.server_settings)
        except (TimeoutError, *_BROKEN, asyncpg.CannotConnectNowError) as exc:
            raise _unreachable() from exc

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()
