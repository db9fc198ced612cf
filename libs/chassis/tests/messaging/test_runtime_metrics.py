"""`Messaging` samples consumer lag and stored dead letters from the broker into gauges."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import (
    Envelope,
    InMemoryMessageBus,
    Messaging,
    PermanentError,
    add_messaging_tables,
)

metadata = MetaData()
add_messaging_tables(metadata)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/svc.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def lag(consumer: str) -> float | None:
    return REGISTRY.get_sample_value("mercato_consumer_lag_messages", {"consumer": consumer})


def stored() -> float | None:
    return REGISTRY.get_sample_value("mercato_dead_letters_stored", {})


def event(type_: str, subject: str = "s") -> Envelope:
    return Envelope(type=type_, source="test", subject=subject, data={})


async def eventually(check: object, timeout: float = 5.0) -> None:
    assert callable(check)
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_sampling_reports_each_consumers_lag_and_the_stored_letters(
    database: Database,
) -> None:
    bus = InMemoryMessageBus()
    messaging = Messaging(bus=bus, database=database, service="svc", metrics_interval=None)
    gate = asyncio.Event()
    held: list[str] = []
    consumer = f"holder-{uuid.uuid4().hex[:8]}"

    async def hold(session: AsyncSession, envelope: Envelope) -> None:
        held.append(envelope.id)
        await gate.wait()

    async def refuse(session: AsyncSession, envelope: Envelope) -> None:
        raise PermanentError("never")

    messaging.consume(["test.thing.held.v1"], hold, consumer=consumer)
    messaging.consume(["test.thing.refused.v1"], refuse, consumer=f"{consumer}-refuser")
    await messaging.start()
    try:
        # Refused first: a held handler keeps SQLite's one writer connection.
        await bus.publish(event("test.thing.refused.v1"))
        await eventually(lambda: len(bus._letters) == 1)
        for _ in range(5):
            await bus.publish(event("test.thing.held.v1"))
        await eventually(lambda: len(held) == 1)

        await messaging.sample_metrics()
        assert lag(consumer) == 4  # one in hand, four waiting
        assert lag(f"{consumer}-refuser") == 0
        assert stored() == 1

        gate.set()
        await eventually(lambda: len(held) == 5)
        await messaging.sample_metrics()
        assert lag(consumer) == 0
    finally:
        gate.set()
        await messaging.stop()


async def test_the_gauges_follow_the_broker_in_the_background(database: Database) -> None:
    bus = InMemoryMessageBus()
    messaging = Messaging(bus=bus, database=database, service="svc", metrics_interval=0.01)
    consumer = f"bg-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Event()

    async def hold(session: AsyncSession, envelope: Envelope) -> None:
        await gate.wait()

    messaging.consume(["test.thing.held.v1"], hold, consumer=consumer)
    await messaging.start()
    try:
        for _ in range(3):
            await bus.publish(event("test.thing.held.v1"))
        await eventually(lambda: lag(consumer) == 2)
        gate.set()
        await eventually(lambda: lag(consumer) == 0)
    finally:
        gate.set()
        await messaging.stop()


async def test_a_broker_error_while_sampling_keeps_the_loop_and_the_last_values(
    database: Database,
) -> None:
    class FlakyBus(InMemoryMessageBus):
        failing = False

        async def pending(self, consumer: str) -> int:
            if self.failing:
                raise ConnectionError("broker down")
            return 7

    bus = FlakyBus()
    sleeps: list[float] = []
    ticked = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        ticked.set()
        await asyncio.sleep(0)

    consumer = f"flaky-{uuid.uuid4().hex[:8]}"
    messaging = Messaging(bus=bus, database=database, service="svc", metrics_interval=30.0,
                          sleep=sleep)  # fmt: skip

    async def nothing(session: AsyncSession, envelope: Envelope) -> None:
        return None

    messaging.consume(["test.thing.any.v1"], nothing, consumer=consumer)
    await messaging.start()
    try:
        await eventually(lambda: lag(consumer) == 7)
        bus.failing = True
        count = len(sleeps)
        await eventually(lambda: len(sleeps) > count + 3)  # it carries on failing
        assert lag(consumer) == 7
        assert set(sleeps) == {30.0}
    finally:
        await messaging.stop()


async def test_a_service_without_consumers_samples_nothing(database: Database) -> None:
    class CountingBus(InMemoryMessageBus):
        asked = 0

        async def dead_letter_count(self) -> int:
            self.asked += 1
            return 0

    bus = CountingBus()
    messaging = Messaging(bus=bus, database=database, service="svc", metrics_interval=0.01)
    await messaging.start()
    try:
        await messaging.sample_metrics()
        await asyncio.sleep(0.05)
        assert bus.asked == 0
    finally:
        await messaging.stop()
