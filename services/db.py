"""Engine and sessions. Services take a Session and never commit; callers own the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from services.config import get_settings, private_folder, write_private

CONNECT_TIMEOUT_SECONDS = 5

# How a transaction locks a teammate's or workspace's row before changing it: FOR NO KEY
# UPDATE on PostgreSQL. It still orders concurrent changes of that row, but does not block
# the KEY SHARE lock that inserting a row referencing it takes (an event or invitation a
# worker records at the same time). Plain FOR UPDATE deadlocked there: a removal held the
# teammate and waited for the invitation a worker was recording, which waited for the
# teammate. We never change a primary key, so nothing needs the stronger lock.
ROW_LOCK: dict[str, Any] = {"key_share": True}


def make_engine(url: str, statement_timeout_ms: int = 0) -> Engine:
    """An engine for `url`; on PostgreSQL every connection gets `statement_timeout` (0: none).

    `sqlalchemy.create_engine` is looked up at each call, not imported by name, so that the
    tracing set up after this module was imported (services/telemetry.py) sees every engine.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _create_private(Path(path))
        engine = sqlalchemy.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so that a
        # transaction that will write starts as a write transaction (no upgrade deadlocks).
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # A bounded connect: an unreachable database is a quick 503, not a request that hangs.
    # A bounded statement: one stuck behind a lock or a slow plan is cancelled by the server
    # (QueryCanceled, an OperationalError: the API's 503), never a request that hangs.
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args=connect_args)


# Execution options of a connection that only reads, one statement at a time (db_read).
READ_ONLY = {"twofa_read_only": True}


def _sqlite_begin(conn: Connection) -> None:
    # A read-only connection takes no transaction: each statement is its own snapshot, and
    # it never queues for the write lock.
    if not conn.get_execution_options().get("twofa_read_only"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private(path: Path) -> None:
    """SQLite would create the file 0644 (and its -wal/-shm files copy that mode): create
    it 0600 first, since it holds password hashes and encrypted secrets."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent == get_settings().home_dir:  # an existing TWOFA_HOME is tightened too
        private_folder(path.parent)
    with suppress(FileExistsError):
        write_private(path)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener issue BEGIN
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@lru_cache(maxsize=4)
def engine_for(url: str, statement_timeout_ms: int = 0) -> Engine:
    return make_engine(url, statement_timeout_ms)


def get_engine() -> Engine:
    settings = get_settings()
    return engine_for(settings.resolved_database_url, settings.database_statement_timeout_ms)


def session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: commits on success, rolls back on any exception."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException as exc:
        if getattr(exc, "keep_changes", False):
            session.commit()
        else:
            session.rollback()
        raise
    finally:
        session.close()


def dialect_insert(session: Session, model: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's database (PostgreSQL or SQLite)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


@contextmanager
def hash_joins_only(session: Session) -> Iterator[None]:
    """On PostgreSQL, plan the statements inside without nested loops (then as before).

    For an INSERT … SELECT … WHERE NOT EXISTS into the table it reads: when that table was
    small at planning time (a fresh install, a team just imported), the planner picks a
    nested loop that rescans the inner index for each outer row, and every row the statement
    has inserted so far is in that index: 10,000 teammates cost 50 M heap fetches (3.8 s).
    A hash anti join reads the inner side once, before inserting anything (190 ms).
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    previous = session.scalar(text("SELECT current_setting('enable_nestloop')"))
    session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    try:
        yield
    finally:  # SET LOCAL would last until the transaction ends: restore it at once
        session.execute(text("SELECT set_config('enable_nestloop', :previous, true)"),
                        {"previous": previous})


def refresh_statistics(session: Session, table: str) -> None:
    """On PostgreSQL, ANALYZE `table` now, in the session's transaction (its own new rows
    count). For right after a bulk insert, before the statements that follow are planned:
    autovacuum gets to a changed table a minute later at best, and until then the planner
    plans with counts from before the insert. It holds a lock that only another ANALYZE or
    VACUUM of the table waits for, until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f'ANALYZE "{table}"'))
