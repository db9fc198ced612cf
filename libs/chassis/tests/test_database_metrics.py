"""Every `Database` reports its connection pools' use, read when scraped."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import text

from chassis import Database


def pool(metric: str, role: str) -> float:
    return REGISTRY.get_sample_value(f"mercato_db_pool_connections_{metric}", {"pool": role}) or 0.0


def snapshot() -> dict[tuple[str, str], float]:
    return {
        (metric, role): pool(metric, role)
        for metric in ("in_use", "idle", "max")
        for role in ("main", "writer")
    }


def delta(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {key: pool(*key) - value for key, value in before.items()}


async def test_a_sqlite_file_database_reports_its_reader_and_writer_pools(tmp_path: Path) -> None:
    gc.collect()  # databases of earlier tests leave the sums first
    before = snapshot()
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    try:
        # SQLAlchemy's default pool for readers (5 + 10 overflow); one writer connection.
        assert delta(before)[("max", "main")] == 15
        assert delta(before)[("max", "writer")] == 1
        async with database.sessions() as session:
            await session.execute(text("SELECT 1"))
            assert delta(before)[("in_use", "main")] == 1
        assert delta(before)[("in_use", "main")] == 0
        assert delta(before)[("idle", "main")] == 1  # returned to the pool, still open
        async with database.write_sessions() as session:
            await session.execute(text("SELECT 1"))
            assert delta(before)[("in_use", "writer")] == 1
        assert delta(before)[("in_use", "writer")] == 0
    finally:
        await database.dispose()
    assert delta(before)[("idle", "main")] == 0  # dispose closed them
    del database
    gc.collect()
    assert delta(before)[("max", "main")] == 0  # a dropped database leaves the metrics


async def test_an_in_memory_database_has_no_pool_to_report() -> None:
    gc.collect()
    before = snapshot()
    database = Database("sqlite+aiosqlite:///:memory:")
    try:
        await database.ping()
        assert all(value == 0 for value in delta(before).values())
    finally:
        await database.dispose()


@pytest.mark.integration
async def test_a_postgres_database_reports_its_configured_pool(postgres_url: str) -> None:
    gc.collect()
    before = snapshot()
    database = Database(postgres_url, pool_size=4)
    try:
        assert delta(before)[("max", "main")] == 8
        assert delta(before)[("max", "writer")] == 0  # one pool serves reads and writes
        async with database.write_sessions() as session:
            await session.execute(text("SELECT 1"))
            assert delta(before)[("in_use", "main")] == 1
    finally:
        await database.dispose()


def test_the_families_are_exposed_even_without_a_database() -> None:
    text_ = generate_latest(REGISTRY).decode()
    for name in ("in_use", "idle", "max"):
        assert f"# TYPE mercato_db_pool_connections_{name} gauge" in text_
