"""Async SQLAlchemy 2 set-up: SQLite (aiosqlite, WAL) by default, PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chassis._database_metrics import track_pool
from chassis.tracing import trace_statements

__all__ = ["Database", "DatabaseUnreachableError", "database_unavailable"]

_IMMEDIATE = "mercato_sqlite_begin_immediate"

# asyncpg's errors that mean "no connection to be had now", by name (no import needed).
_UNAVAILABLE_DRIVER_ERRORS = frozenset(
    {
        "TooManyConnectionsError",  # the server's max_connections is reached
        "CannotConnectNowError",  # starting up or shutting down
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "AdminShutdownError",
        "CrashShutdownError",
    }
)


class DatabaseUnreachableError(ConnectionError):
    """No connection to the database server could be opened (refused, unreachable, timed
    out). The driver raises a bare OSError for these, which says nothing of where it came
    from; the chassis renames it at connect time."""


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached or has no connection to spare
    (a transient condition to answer with 503 and Retry-After), not a bug or bad data.
    Only errors raised through SQLAlchemy count: a timeout calling another service is not."""
    if isinstance(error, (DatabaseUnreachableError, sqlalchemy_exc.TimeoutError,
                          sqlalchemy_exc.OperationalError,
                          sqlalchemy_exc.InterfaceError)):  # fmt: skip
        return True  # pool exhausted, connection lost, SQLite locked past its timeout
    if not isinstance(error, sqlalchemy_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    cause: BaseException | None = error.orig
    for _ in range(8):  # the driver's error may hide a few causes down
        if cause is None:
            return False
        if isinstance(cause, (ConnectionError, TimeoutError)) or (
            type(cause).__name__ in _UNAVAILABLE_DRIVER_ERRORS
        ):
            return True
        cause = cause.__cause__
    return False


def _name_connect_failures(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, TimeoutError) as error:
        raise DatabaseUnreachableError(f"cannot connect to the database: {error}") from error


class Database:
    """One service's database: an engine and two session factories.

    `sessions` is for reads; `write_sessions` for units of work that write. On SQLite a
    write transaction starts with `BEGIN IMMEDIATE`, so concurrent writers queue instead of
    failing with "database is locked" when a read lock is upgraded; and a process's writers
    share one connection, so they queue in the pool (woken the moment it is free) rather
    than in SQLite's busy handler, which sleeps up to 100 ms between tries. SQLite has one
    writer at a time anyway; this measured 4x more consumed events per second. Never open a
    write session while holding another in the same task. On PostgreSQL both are the same.
    """

    def __init__(self, url: str | URL, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # Statement parameters (card tokens, emails, hashes) never go into errors or logs.
        options: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if not self.is_sqlite:
            event.listen(self.engine.sync_engine, "do_connect", _name_connect_failures)
        system = "sqlite" if self.is_sqlite else "postgresql"
        database = (
            Path(self.url.database).stem
            if self.is_sqlite and self.url.database
            else (self.url.database or "")
        )
        trace_statements(self.engine.sync_engine, system=system, database=database)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        track_pool(self.engine, "main")
        self._writer_engine: AsyncEngine | None = None
        writer = self.engine
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            self._writer_engine = create_async_engine(
                self.url, pool_size=1, max_overflow=0, pool_timeout=60, **options
            )
            _tune_sqlite(self._writer_engine)
            trace_statements(self._writer_engine.sync_engine, system=system, database=database)
            writer = self._writer_engine.execution_options(**{_IMMEDIATE: True})
            track_pool(self._writer_engine, "writer")
        elif self.is_sqlite:
            writer = self.engine.execution_options(**{_IMMEDIATE: True})
        self.write_sessions = async_sessionmaker(writer, expire_on_commit=False)

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._writer_engine is not None:
            await self._writer_engine.dispose()

    def session(self) -> AsyncSession:
        return self.sessions()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # WAL is a property of the file: migrations set it (see _migrations), and any
        # connection that finds it unset tries too. The switch needs the database to itself
        # and does not wait on the busy handler, so losing that race is fine: whoever won
        # switched the file, and this connection follows from its next transaction.
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            with contextlib.suppress(Exception):  # the driver wraps sqlite3 errors its way
                cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
