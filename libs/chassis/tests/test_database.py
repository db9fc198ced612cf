"""The database set-up and migrations, on SQLite and on a real PostgreSQL."""

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from chassis import Database, upgrade_database

MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("things", sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Integer))


def downgrade() -> None:
    op.drop_table("things")
"""


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(
        "from sqlalchemy import MetaData\nfrom chassis import run_alembic_env\n"
        "run_alembic_env(MetaData())\n"
    )
    (folder / "script.py.mako").write_text("")
    (folder / "versions" / "0001_things.py").write_text(MIGRATION)
    return folder


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/data/db.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_concurrent_upgrades_apply_each_migration_once(database_url: str, migrations: Path) -> None:
    # Separate processes, as when several instances of a service start at once.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=spawn) as pool:
        futures = [pool.submit(upgrade_database, database_url, migrations) for _ in range(3)]
        for future in futures:
            future.result(timeout=60)

    async def check() -> None:
        database = Database(database_url)
        try:
            async with database.sessions() as session:
                version = await session.scalar(text("SELECT version_num FROM alembic_version"))
                assert version == "0001"
                assert await session.scalar(text("SELECT count(*) FROM things")) == 0
        finally:
            await database.dispose()

    asyncio.run(check())


async def test_ping_and_write_transactions(database_url: str, migrations: Path) -> None:
    upgrade_database(database_url, migrations)
    database = Database(database_url)
    try:
        await database.ping()

        async def add(n: int) -> None:
            async with database.write_sessions() as session, session.begin():
                current = await session.scalar(text("SELECT count(*) FROM things"))
                await session.execute(text("INSERT INTO things (n) VALUES (:n)"), {"n": current})

        # Concurrent writers queue instead of failing with "database is locked".
        await asyncio.gather(*(add(n) for n in range(20)))
        async with database.sessions() as session:
            assert await session.scalar(text("SELECT count(*) FROM things")) == 20
    finally:
        await database.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/wal.db")
    try:
        async with database.engine.connect() as connection:
            mode = await connection.scalar(text("PRAGMA journal_mode"))
        assert mode == "wal"
    finally:
        await database.dispose()


async def test_ping_fails_when_the_database_is_unreachable() -> None:
    database = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(OSError):
            await database.ping()
    finally:
        await database.dispose()
