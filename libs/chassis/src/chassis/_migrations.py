"""Alembic migrations per service, safe when several instances start at once."""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import threading
import zlib
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["find_migrations", "run_alembic_env", "upgrade_database"]


def find_migrations(package_file: str) -> Path:
    """A service's `migrations/` folder, in a source checkout or packaged inside the wheel."""
    here = Path(package_file).resolve().parent
    for candidate in (here / "_migrations", here.parent.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError(f"no migrations found beside {here}")


@contextmanager
def _sqlite_lock(database: str) -> Iterator[None]:
    lock_path = Path(database).with_suffix(".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Alembic keeps its running context in module globals: one upgrade at a time per process.
_ALEMBIC = threading.Lock()


def upgrade_database(url: str, migrations: Path, *, revision: str = "head") -> None:
    """Apply migrations up to `revision` (blocking: call it from a thread in async code).

    Safe when several processes do it at once: SQLite upgrades take a file lock, PostgreSQL
    ones an advisory lock, so each migration runs once.
    """
    with _ALEMBIC:
        _upgrade(url, migrations, revision)


def _upgrade(url: str, migrations: Path, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["database_url"] = url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        assert parsed.database is not None
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        with _sqlite_lock(parsed.database):
            command.upgrade(config, revision)
            # Before the service opens its pools: WAL lets readers work beside the writer.
            with closing(sqlite3.connect(parsed.database, timeout=30)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
    else:
        # PostgreSQL serialises concurrent upgraders with an advisory lock (see env).
        command.upgrade(config, revision)


def run_alembic_env(metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    from alembic import context

    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        is_sqlite = connection.dialect.name == "sqlite"
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=is_sqlite
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                key = zlib.crc32(b"mercato-migrations") & 0x7FFFFFFF
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    _run_to_completion(run)


def _run_to_completion(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run, also when this thread already runs a loop (e.g. called from a test)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(main())).result()
