"""Fixtures every test folder may use: real PostgreSQL databases made fresh per run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "MERCATO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin(sql: str) -> None:
    """Run one statement as the PostgreSQL superuser (from sync or async tests alike)."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(run())).result()


class PostgresDatabases:
    """Makes brand-new PostgreSQL databases and drops them all at `drop_all`."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def new(self, label: str = "test") -> str:
        """The SQLAlchemy URL (asyncpg driver) of a new, empty database."""
        name = f"mercato_{label}_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://")

    def drop_all(self) -> None:
        while self.names:
            _admin(f'DROP DATABASE IF EXISTS "{self.names.pop()}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL superuser's URL (asyncpg/libpq form), for tests that make roles."""
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a brand-new PostgreSQL database, dropped afterwards."""
    databases = PostgresDatabases()
    try:
        yield databases.new()
    finally:
        databases.drop_all()


@pytest.fixture(scope="module")
def postgres_databases() -> Iterator[PostgresDatabases]:
    """As many new PostgreSQL databases as a module's tests make, dropped after the module."""
    databases = PostgresDatabases()
    try:
        yield databases
    finally:
        databases.drop_all()
