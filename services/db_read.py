"""Single-statement reads and writes for async code, outside any transaction.

The hot checks (introspection, /v1/me) are one indexed statement each. Through the ORM
they cost a thread-pool hop, a pool pre-ping, BEGIN and COMMIT around the SELECT; here:
* PostgreSQL: a small pool of psycopg `AsyncConnection`s in autocommit on the event loop,
  running the statement compiled once (psycopg prepares it server-side after 5 uses);
* SQLite (the embedded default): the sync engine in a worker thread, without the BEGIN
  IMMEDIATE that write transactions take (a lone statement is its own snapshot).
Statements are SQLAlchemy Core, so both databases run the same query.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from psycopg import AsyncConnection, OperationalError
from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement

from services.config import get_settings
from services.db import READ_ONLY, get_engine

POOL_SIZE = 10  # connections per API process; more would only queue inside PostgreSQL

_DIALECT = psycopg_dialect()
_compiled: dict[int, tuple[str, dict[str, Any]]] = {}
_pools: dict[tuple[str, asyncio.AbstractEventLoop], _Pool] = {}


async def fetch_one(stmt: Executable, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row of `stmt` (a module-level constant: it is compiled once), or None."""
    url = get_settings().resolved_database_url
    if url.startswith("sqlite"):
        return await anyio.to_thread.run_sync(_sqlite_one, stmt, params)
    sql, defaults = _sql(stmt)
    return await _pool(url).fetch_one(sql, {**defaults, **params})


async def execute(stmt: Executable, params: dict[str, Any]) -> int:
    """Run one statement on its own (autocommit); its rowcount."""
    url = get_settings().resolved_database_url
    if url.startswith("sqlite"):
        return await anyio.to_thread.run_sync(_sqlite_execute, stmt, params)
    sql, defaults = _sql(stmt)
    return await _pool(url).execute(sql, {**defaults, **params})


async def close_pools() -> None:
    """Close the pools of the running event loop (the API's shutdown)."""
    loop = asyncio.get_running_loop()
    for key in [k for k in _pools if k[1] is loop]:
        await _pools.pop(key).close()


def _sql(stmt: Executable) -> tuple[str, dict[str, Any]]:
    hit = _compiled.get(id(stmt))
    if hit is None:
        assert isinstance(stmt, ClauseElement)
        compiled = stmt.compile(dialect=_DIALECT)
        hit = _compiled[id(stmt)] = (str(compiled), dict(compiled.params))
    return hit


def _sqlite_one(stmt: Executable, params: dict[str, Any]) -> tuple[Any, ...] | None:
    with get_engine().connect().execution_options(**READ_ONLY) as conn:
        row = conn.execute(stmt, params).first()
    return tuple(row) if row is not None else None


def _sqlite_execute(stmt: Executable, params: dict[str, Any]) -> int:
    with get_engine().begin() as conn:
        return int(conn.execute(stmt, params).rowcount)


def _pool(url: str) -> _Pool:
    key = (url, asyncio.get_running_loop())
    pool = _pools.get(key)
    if pool is None:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        pool = _pools[key] = _Pool(conninfo, POOL_SIZE)
    return pool


class _Pool:
    """At most `size` connections, idle ones reused last-in first-out. No background task,
    no health check: a connection that fails is dropped, and the statement is tried once
    more on a new one (a restarted server leaves idle connections dead)."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self.idle: list[AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)

    async def fetch_one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        async with self.slots:
            row = await self._run(sql, params, one=True)
        return row  # type: ignore[return-value]

    async def execute(self, sql: str, params: dict[str, Any]) -> int:
        async with self.slots:
            count = await self._run(sql, params, one=False)
        return count  # type: ignore[return-value]

    async def _run(self, sql: str, params: dict[str, Any], one: bool) -> object:
        for attempt in (1, 2):
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await AsyncConnection.connect(
                self.conninfo, autocommit=True)
            try:
                cur = await conn.execute(sql, params)
                result = await cur.fetchone() if one else cur.rowcount
            except OperationalError:
                await conn.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                await conn.close()  # cancelled mid-statement: its state is unknown
                raise
            self.idle.append(conn)
            return result
        raise AssertionError("unreachable")

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()
