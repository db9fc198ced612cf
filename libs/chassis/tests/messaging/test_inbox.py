"""The inbox (idempotent consumer), on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import (
    Delivery,
    Envelope,
    Inbox,
    TransientError,
    add_messaging_tables,
    idempotent,
)

metadata = MetaData()
outbox, inbox_table = add_messaging_tables(metadata)
effects = Table(
    "effects",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),  # not unique: a second effect would show
)

DELIVERY = Delivery(attempt=1, redelivered=False, consumer="projector")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/consumer.db"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def event(n: int = 0) -> Envelope:
    return Envelope(type="test.thing.happened.v1", source="test", subject="s", data={"n": n})


def duplicates(consumer: str) -> float:
    return REGISTRY.get_sample_value("mercato_inbox_duplicates_total", {"consumer": consumer}) or 0


async def effect_count(database: Database, envelope: Envelope) -> int:
    async with database.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(effects).where(effects.c.message_id == envelope.id)
        )
    return int(count or 0)


async def apply_effect(session: AsyncSession, envelope: Envelope) -> None:
    await session.execute(insert(effects).values(message_id=envelope.id))


async def test_a_message_is_claimed_once_and_redeliveries_are_duplicates(
    database: Database,
) -> None:
    inbox, message = Inbox("projector"), event()
    before = duplicates("projector")
    async with database.write_sessions() as session:
        assert await inbox.claim(session, message) is True
        await session.commit()
    for _ in range(2):
        async with database.write_sessions() as session:
            assert await inbox.claim(session, message) is False
            await session.commit()
    assert duplicates("projector") - before == 2


async def test_a_claim_rolled_back_with_its_effects_is_forgotten(database: Database) -> None:
    inbox, message = Inbox("projector"), event()
    async with database.write_sessions() as session:
        assert await inbox.claim(session, message)
        await apply_effect(session, message)
        await session.rollback()
    async with database.write_sessions() as session:
        assert await inbox.claim(session, message)  # the redelivery is new
        await session.commit()


async def test_each_consumer_keeps_its_own_record(database: Database) -> None:
    message = event()
    async with database.write_sessions() as session:
        assert await Inbox("projector").claim(session, message)
        assert await Inbox("mailer").claim(session, message)
        assert not await Inbox("mailer").claim(session, message)
        await session.commit()


async def test_an_idempotent_handler_applies_a_message_once(database: Database) -> None:
    handle = idempotent(database, "projector", apply_effect)
    first, second = event(1), event(2)
    for message in (first, second, first, first, second):
        await handle(message, DELIVERY)
    assert await effect_count(database, first) == 1
    assert await effect_count(database, second) == 1


async def test_a_failing_apply_leaves_no_claim_and_reaches_the_bus(database: Database) -> None:
    calls = 0

    async def flaky(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        await apply_effect(session, envelope)
        if calls == 1:
            raise TransientError("downstream hiccup")

    committed: list[str] = []
    handle = idempotent(database, "projector", flaky, after_commit=lambda: committed.append("!"))
    message = event()
    with pytest.raises(TransientError):
        await handle(message, DELIVERY)
    assert await effect_count(database, message) == 0
    assert committed == []
    await handle(message, DELIVERY)  # the redelivery applies it
    await handle(message, DELIVERY)  # and this one is a duplicate
    assert await effect_count(database, message) == 1
    assert calls == 2
    assert committed == ["!"]


async def test_concurrent_deliveries_of_one_message_apply_it_once(database: Database) -> None:
    started = 0

    async def slow(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal started
        started += 1
        await apply_effect(session, envelope)
        await asyncio.sleep(0.05)  # the others arrive while this transaction is open

    before = duplicates("racer")
    handle = idempotent(database, "racer", slow)
    message = event()
    await asyncio.gather(*(handle(message, DELIVERY) for _ in range(8)))
    assert await effect_count(database, message) == 1
    assert started == 1
    assert duplicates("racer") - before == 7


async def test_when_the_first_of_two_concurrent_deliveries_fails_the_other_applies(
    database: Database,
) -> None:
    attempts = 0

    async def first_fails(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        await apply_effect(session, envelope)
        await asyncio.sleep(0.05)
        if attempts == 1:
            raise TransientError("crashed mid-way")

    handle = idempotent(database, "racer-2", first_fails)
    message = event()
    outcomes = await asyncio.gather(
        *(handle(message, DELIVERY) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(outcome, TransientError) for outcome in outcomes) == 1
    assert attempts == 2  # the failure, then exactly one of the waiting deliveries
    assert await effect_count(database, message) == 1
