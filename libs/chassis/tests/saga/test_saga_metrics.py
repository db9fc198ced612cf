"""The orchestrator counts unfinished sagas by status, and the oldest one's age, into gauges."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData

from chassis import Database
from chassis.messaging import add_messaging_tables
from chassis.saga import (
    Command,
    Compensation,
    SagaDefinition,
    SqlSagaOrchestrator,
    Step,
    StepKind,
    add_saga_tables,
)

metadata = MetaData()
add_messaging_tables(metadata)
add_saga_tables(metadata)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hold_definition(name: str) -> SagaDefinition:
    """One compensatable step nobody answers: sagas stay RUNNING, then compensate on timeout."""
    return SagaDefinition(
        name=name,
        steps=[
            Step(
                "hold",
                StepKind.COMPENSATABLE,
                Command("stock.hold.v1", lambda d: dict(d), success="stock.held.v1"),
                Compensation("stock.unhold.v1", lambda d: dict(d), "stock.unheld.v1"),
                timeout=10.0,
            )
        ],
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/sagas.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def active(saga: str, status: str) -> float | None:
    return REGISTRY.get_sample_value("mercato_sagas_active", {"saga": saga, "status": status})


def oldest(saga: str) -> float | None:
    return REGISTRY.get_sample_value("mercato_saga_oldest_active_age_seconds", {"saga": saga})


async def begin(orchestrator: SqlSagaOrchestrator, database: Database, name: str) -> None:
    async with database.write_sessions() as session:
        await orchestrator.start_saga(session, name, correlation_id=uuid.uuid4().hex, data={"n": 1})
        await session.commit()


async def test_sampling_counts_unfinished_sagas_by_status_and_the_oldest_age(
    database: Database,
) -> None:
    name = f"hold-{uuid.uuid4().hex[:8]}"
    clock = FakeClock()
    orchestrator = SqlSagaOrchestrator(
        database, [hold_definition(name)], source="shop", clock=clock
    )
    await orchestrator.sample_metrics()
    # Every status of every defined saga is there from the start, at 0 (alerts see a series).
    assert active(name, "RUNNING") == 0
    assert active(name, "COMPENSATING") == 0
    assert oldest(name) == 0

    for _ in range(3):
        await begin(orchestrator, database, name)
    clock.advance(30)
    await begin(orchestrator, database, name)
    await orchestrator.sample_metrics()
    assert active(name, "RUNNING") == 4
    assert active(name, "COMPENSATING") == 0
    assert oldest(name) == 30

    assert await orchestrator.check_timeouts() == 3  # the three older ones timed out
    clock.advance(5)
    await orchestrator.sample_metrics()
    assert active(name, "RUNNING") == 1
    assert active(name, "COMPENSATING") == 3
    assert oldest(name) == 35


async def test_the_timeout_loop_keeps_the_gauges_current(database: Database) -> None:
    name = f"hold-{uuid.uuid4().hex[:8]}"
    orchestrator = SqlSagaOrchestrator(
        database,
        [hold_definition(name)],
        source="shop",
        poll_interval=0.01,
        metrics_interval=0.0,
    )
    await orchestrator.start()
    try:
        await begin(orchestrator, database, name)
        await begin(orchestrator, database, name)
        async with asyncio.timeout(5):
            while active(name, "RUNNING") != 2:
                await asyncio.sleep(0.01)
    finally:
        await orchestrator.stop()
