"""The transactional outbox and its relay, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import inspect as sql_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from chassis import Database, upgrade_database
from chassis.messaging import (
    BrokerUnavailableError,
    Delivery,
    Envelope,
    InMemoryMessageBus,
    OutboxRelay,
    add_messaging_tables,
    idempotent,
    record_events,
)
from chassis.resilience import ManualClock

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
effects = Table(
    "effects",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),  # not unique: duplicates would show
)


class FakeBus:
    """Records what the broker acknowledged; told to fail, be slow or 'crash' after acking."""

    def __init__(self, *, delay: float | tuple[float, float] = 0.0) -> None:
        self.acked: list[Envelope] = []
        self.attempts: list[str] = []
        self.fail_ids: dict[str, int] = {}  # envelope id → how many more times it fails
        self.fail_calls = 0  # this many more publish_many calls fail entirely
        self.after_ack: Callable[[], None] | None = None
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0

    async def publish(self, envelope: Envelope) -> None:
        self.attempts.append(envelope.id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if isinstance(self.delay, tuple):
                await asyncio.sleep(random.uniform(*self.delay))
            elif self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_ids.get(envelope.id, 0) > 0:
                self.fail_ids[envelope.id] -= 1
                raise BrokerUnavailableError("nack")
            self.acked.append(envelope)
        finally:
            self.in_flight -= 1

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        if self.fail_calls > 0:
            self.fail_calls -= 1
            raise BrokerUnavailableError("broker down")
        outcomes = await asyncio.gather(*map(self.publish, envelopes), return_exceptions=True)
        if self.after_ack is not None:
            self.after_ack()
            await asyncio.sleep(0)  # where a cancellation lands
        return [outcome if isinstance(outcome, BaseException) else None for outcome in outcomes]

    def ids(self) -> list[str]:
        return [envelope.id for envelope in self.acked]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/service.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield database
    await database.dispose()


Relays = Callable[..., OutboxRelay]


@pytest.fixture
async def relays() -> AsyncIterator[Relays]:
    """Makes relays and stops them after the test (stopping releases the SQLite lock file)."""
    made: list[OutboxRelay] = []

    def make(database: Database, bus: Any, **options: Any) -> OutboxRelay:
        made.append(OutboxRelay(database, bus, **options))
        return made[-1]

    yield make
    for relay in made:
        await relay.stop()


def event(subject: str, n: int = 0) -> Envelope:
    return Envelope(type="test.thing.happened.v1", source="test", subject=subject, data={"n": n})


async def record(database: Database, envelopes: Sequence[Envelope]) -> None:
    async with database.write_sessions() as session:
        await record_events(session, envelopes)
        await session.commit()


async def unsent(database: Database) -> list[dict[str, object]]:
    async with database.sessions() as session:
        result = await session.execute(
            select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.seq)
        )
        return [dict(row) for row in result.mappings()]


def first_publication_by_subject(acked: Sequence[Envelope]) -> dict[str, list[str]]:
    seen: set[str] = set()
    order: dict[str, list[str]] = defaultdict(list)
    for envelope in acked:
        if envelope.id not in seen:
            seen.add(envelope.id)
            order[envelope.subject].append(envelope.id)
    return order


def by_subject(envelopes: Sequence[Envelope]) -> dict[str, list[str]]:
    order: dict[str, list[str]] = defaultdict(list)
    for envelope in envelopes:
        order[envelope.subject].append(envelope.id)
    return order


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def eventually(condition: Callable[[], object], *, timeout: float = 10.0) -> None:
    """Wait until `condition()` (a value or an awaitable) is true."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def all_sent(database: Database) -> bool:
    return not await unsent(database)


def has_at_least(read: Callable[[], Awaitable[list[str]]], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await read()) >= n

    return check


def duplicates(consumer: str) -> float:
    labels = {"consumer": consumer}
    return REGISTRY.get_sample_value("mercato_inbox_duplicates_total", labels) or 0.0


async def test_events_are_stored_only_with_the_transaction_that_recorded_them(
    database: Database,
) -> None:
    rolled_back, committed = event("order-1"), event("order-1", 1)
    async with database.write_sessions() as session:
        await session.execute(insert(effects).values(message_id="state change"))
        await record_events(session, [rolled_back])
        await session.rollback()
    async with database.write_sessions() as session:
        await session.execute(insert(effects).values(message_id="state change"))
        await record_events(session, [committed])
        await session.commit()

    rows = await unsent(database)
    assert [row["id"] for row in rows] == [committed.id]
    stored = Envelope.from_bytes(str(rows[0]["envelope"]).encode())
    # The stored copy names the producer span recording it made (its own trace here).
    assert stored.traceparent is not None
    assert stored == committed.with_trace(stored.traceparent)
    assert rows[0]["type"] == "test.thing.happened.v1"
    assert rows[0]["subject"] == "order-1"
    assert rows[0]["attempts"] == 0
    assert rows[0]["last_error"] is None
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(effects)) == 1


async def test_relay_publishes_everything_once_in_order_per_subject(
    database: Database, relays: Relays
) -> None:
    subjects = [f"order-{i}" for i in range(7)]
    envelopes = [event(random.choice(subjects), n) for n in range(300)]
    for start in range(0, len(envelopes), 60):
        await record(database, envelopes[start : start + 60])
    bus = FakeBus(delay=(0, 0.002))
    before = metric("mercato_outbox_published_total")
    # Small batches: several passes, each split into waves per subject.
    relay = relays(database, bus, batch_size=50, poll_interval=0.05)
    await relay.start()
    try:
        await eventually(lambda: all_sent(database))
    finally:
        await relay.stop()

    assert sorted(bus.ids()) == sorted(e.id for e in envelopes)  # each exactly once
    assert first_publication_by_subject(bus.acked) == by_subject(envelopes)
    assert await unsent(database) == []
    assert await relay.backlog() == (0, 0.0)
    assert metric("mercato_outbox_published_total") - before == len(envelopes)


async def test_failed_rows_stay_unsent_and_hold_back_their_subject_only(
    database: Database, relays: Relays
) -> None:
    envelopes = [event(subject, n) for n in range(5) for subject in ("a", "b", "c")]
    await record(database, envelopes)
    poisoned = by_subject(envelopes)["a"][2]
    bus = FakeBus()
    bus.fail_ids[poisoned] = 2
    clock = ManualClock()
    relay = relays(database, bus, backoff_base=1.0, clock=clock)
    failures = metric("mercato_outbox_publish_failures_total")

    assert await relay.run_once() == 12  # all of b and c, a up to the failure
    rows = {row["id"]: row for row in await unsent(database)}
    assert list(rows) == by_subject(envelopes)["a"][2:]
    assert rows[poisoned]["attempts"] == 1
    assert rows[poisoned]["last_error"] == "BrokerUnavailableError: nack"
    assert bus.attempts.count(by_subject(envelopes)["a"][3]) == 0  # never tried out of order

    assert await relay.run_once() == 0  # subject "a" backs off: not tried again yet
    assert bus.attempts.count(poisoned) == 1
    clock.advance(1.0)
    assert await relay.run_once() == 0  # second failure; now it waits 2 s
    assert bus.attempts.count(poisoned) == 2
    clock.advance(1.9)
    assert await relay.run_once() == 0
    clock.advance(0.1)
    assert await relay.run_once() == 3

    assert await unsent(database) == []
    assert first_publication_by_subject(bus.acked) == by_subject(envelopes)
    assert metric("mercato_outbox_publish_failures_total") - failures == 2
    async with database.sessions() as session:
        attempts = await session.scalar(select(outbox.c.attempts).where(outbox.c.id == poisoned))
    assert attempts == 3


async def test_a_failed_row_holds_back_its_subject_across_batches(
    database: Database, relays: Relays
) -> None:
    """Batches follow one another (on SQLite the next is read while one is in flight):
    a subject whose row failed in one batch has none of its later rows tried in the next."""
    envelopes = [event(subject, n) for n in range(6) for subject in ("a", "b", "c")]
    await record(database, envelopes)
    poisoned = by_subject(envelopes)["a"][1]
    bus = FakeBus(delay=(0, 0.002))
    bus.fail_ids[poisoned] = 1
    relay = relays(database, bus, batch_size=4, backoff_base=60.0, clock=ManualClock())

    while await relay.run_once():
        pass
    assert sorted(bus.ids()) == sorted(
        e.id for e in envelopes if e.subject != "a" or e.id == by_subject(envelopes)["a"][0]
    )
    later = by_subject(envelopes)["a"][2:]
    assert not [i for i in bus.attempts if i in later]  # never tried out of order
    assert [row["id"] for row in await unsent(database)] == by_subject(envelopes)["a"][1:]
    assert first_publication_by_subject(bus.acked)["b"] == by_subject(envelopes)["b"]


async def test_relay_backs_off_while_the_broker_is_down_and_never_dies(
    database: Database, relays: Relays
) -> None:
    envelopes = [event(f"order-{i % 3}", i) for i in range(9)]
    await record(database, envelopes)
    bus = FakeBus()
    bus.fail_calls = 4
    clock = ManualClock()
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await clock.sleep(seconds)

    relay = relays(database, bus, backoff_base=0.5, backoff_cap=1.5, clock=clock, sleep=sleep)
    await relay.start()
    try:
        await eventually(lambda: len(bus.acked) == len(envelopes))
    finally:
        await relay.stop()
    assert pauses[:4] == [0.5, 1.0, 1.5, 1.5]  # exponential, capped
    assert first_publication_by_subject(bus.acked) == by_subject(envelopes)


async def test_relay_survives_database_errors(tmp_path: Path, relays: Relays) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/late.db")  # no tables yet
    bus = FakeBus()
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0.001)

    relay = relays(database, bus, sleep=sleep, backoff_base=0.25)
    try:
        with capture_logs() as logs:
            await relay.start()
            await eventually(lambda: len(pauses) >= 3)
        assert pauses[:3] == [0.25, 0.5, 1.0]
        assert logs[0]["event"] == "outbox relay pass failed"
        assert logs[0]["exc_info"] is True
        assert "no such table" in logs[1]["error"]
        async with database.engine.begin() as connection:  # the migration finally ran
            await connection.run_sync(metadata.create_all)
        envelope = event("order-1")
        await record(database, [envelope])
        relay.notify()
        await eventually(lambda: bus.ids() == [envelope.id])
    finally:
        await relay.stop()
        await database.dispose()


async def test_crash_between_ack_and_mark_sent_republishes_and_the_inbox_absorbs_it(
    database: Database, relays: Relays
) -> None:
    envelopes = [event(f"order-{i % 4}", i) for i in range(20)]
    await record(database, envelopes)
    bus = FakeBus()
    first = relays(database, bus)
    crashed = asyncio.Event()

    def crash() -> None:  # the broker acked; the relay dies before its UPDATE
        bus.after_ack = None
        crashed.set()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    bus.after_ack = crash
    await first.start()
    await asyncio.wait_for(crashed.wait(), 5)
    await first.stop()
    assert len(bus.acked) == 4  # the first wave: one row per subject
    assert len(await unsent(database)) == len(envelopes)  # nothing was marked sent

    second = relays(database, bus)
    while await second.run_once():
        pass
    assert await unsent(database) == []
    assert len(bus.acked) == len(envelopes) + 4  # the first wave went out twice
    assert first_publication_by_subject(bus.acked) == by_subject(envelopes)

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await session.execute(insert(effects).values(message_id=envelope.id))

    handle = idempotent(database, "projector", apply)
    before = duplicates("projector")
    for envelope in bus.acked:  # every delivery, duplicates included
        await handle(envelope, Delivery(attempt=1, redelivered=False, consumer="projector"))
    async with database.sessions() as session:
        applied = list(await session.scalars(select(effects.c.message_id)))
    assert sorted(applied) == sorted(e.id for e in envelopes)  # exactly once each
    assert duplicates("projector") - before == 4


async def test_end_to_end_through_the_in_memory_bus_with_an_idempotent_consumer(
    tmp_path: Path, relays: Relays
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/e2e.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    bus = InMemoryMessageBus()
    await bus.start()
    relay = relays(database, bus)

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await session.execute(insert(effects).values(message_id=envelope.id))

    async def applied() -> list[str]:
        async with database.sessions() as session:
            return list(await session.scalars(select(effects.c.message_id)))

    try:
        await bus.subscribe(
            "projector", ["test.thing.happened.v1"], idempotent(database, "projector", apply)
        )
        await relay.start()
        envelopes = [event(f"order-{i % 3}", i) for i in range(30)]
        async with database.write_sessions() as session:  # the producer's unit of work
            await record_events(session, envelopes)
            await session.commit()
        relay.notify()
        await eventually(lambda: all_sent(database))
        await eventually(has_at_least(applied, len(envelopes)))
        before = duplicates("projector")
        await bus.publish(envelopes[0])  # a redelivery, or a replay months later
        await eventually(lambda: duplicates("projector") == before + 1)
        assert sorted(await applied()) == sorted(e.id for e in envelopes)
    finally:
        await relay.stop()
        await bus.close()
        await database.dispose()


async def test_notify_wakes_the_relay_long_before_the_poll_interval(
    database: Database, relays: Relays
) -> None:
    bus = FakeBus()
    relay = relays(database, bus, poll_interval=30.0)
    await relay.start()
    try:
        first = event("order-1")
        await record(database, [first])
        relay.notify()
        # (generous bounds: a loaded CI machine; the poll interval is 30 s)
        await eventually(lambda: len(bus.acked) == 1, timeout=5.0)

        # A notify that raced the first pass may cause one more (empty) pass; after it the
        # relay idles for 30 s, and without a notify a new event waits.
        await asyncio.sleep(0.2)
        late = event("order-1", 1)
        await record(database, [late])
        await asyncio.sleep(0.3)
        assert bus.ids() == [first.id]

        started = time.monotonic()
        relay.notify()
        await eventually(lambda: len(bus.acked) == 2, timeout=5.0)
        assert time.monotonic() - started < 5.0
        assert bus.ids() == [first.id, late.id]
    finally:
        await relay.stop()


async def test_many_publishes_are_in_flight_at_once(tmp_path: Path, relays: Relays) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/busy.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    envelopes = [event(f"sku-{i}") for i in range(1000)]
    await record(database, envelopes)
    bus = FakeBus(delay=0.02)
    relay = relays(database, bus)
    try:
        while await relay.run_once():
            pass
    finally:
        await database.dispose()
    assert sorted(bus.ids()) == sorted(e.id for e in envelopes)
    assert bus.max_in_flight >= 100


async def test_backlog_counts_unsent_rows_and_the_age_of_the_oldest(
    database: Database, relays: Relays
) -> None:
    relay = relays(database, FakeBus())
    assert await relay.backlog() == (0, 0.0)
    await record(database, [event("a"), event("b")])
    count, age = await relay.backlog()
    assert count == 2
    assert 0.0 <= age < 5.0
    async with database.write_sessions() as session:
        oldest = select(func.min(outbox.c.seq)).scalar_subquery()
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        await session.execute(
            update(outbox).where(outbox.c.seq == oldest).values(created_at=an_hour_ago)
        )
        await session.commit()
    count, age = await relay.backlog()
    assert count == 2
    assert 3600.0 <= age < 3610.0
    await relay.run_once()
    assert await relay.backlog() == (0, 0.0)


async def test_prune_deletes_old_sent_rows_in_batches(database: Database, relays: Relays) -> None:
    await record(database, [event("a", n) for n in range(3)])
    relay = relays(database, FakeBus(), retention=0.0, prune_batch=2)
    await relay.run_once()
    await record(database, [event("a", 3)])  # unsent: kept whatever its age
    assert await relays(database, FakeBus(), retention=3600.0).prune() == 0
    assert await relay.prune() == 3
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(outbox)) == 1
    assert len(await unsent(database)) == 1


async def test_only_one_relay_publishes_a_sqlite_database(tmp_path: Path, relays: Relays) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    one, two = Database(url), Database(url)
    async with one.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    bus = FakeBus()
    leader, standby = relays(one, bus), relays(two, bus)
    try:
        await record(one, [event("a")])
        assert await leader.run_once() == 1
        await record(one, [event("a", 1)])
        assert await standby.run_once() == 0
        await leader.stop()  # the leader exits: the standby takes over
        assert await standby.run_once() == 1
    finally:
        await one.dispose()
        await two.dispose()


class Replica:
    """One relay replica's connection to the shared broker: counts what it got acked."""

    def __init__(self, bus: FakeBus) -> None:
        self.bus = bus
        self.acked = 0

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        outcomes = await self.bus.publish_many(envelopes)
        self.acked += outcomes.count(None)
        return outcomes


@pytest.mark.integration
async def test_two_relays_on_postgres_publish_each_event_once_in_order(
    postgres_url: str, relays: Relays
) -> None:
    databases = [Database(postgres_url) for _ in range(3)]  # a writer and two relay replicas
    writer = databases[0]
    async with writer.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    subjects = [f"order-{i}" for i in range(50)]
    envelopes = [event(random.choice(subjects), n) for n in range(2000)]
    bus = FakeBus(delay=(0, 0.002))
    replicas = [Replica(bus), Replica(bus)]
    pair = [
        relays(database, replica, batch_size=100, poll_interval=0.02)
        for database, replica in zip(databases[1:], replicas, strict=True)
    ]
    try:
        await record(writer, envelopes[:1000])
        for relay in pair:
            await relay.start()
        for start in range(1000, 2000, 100):  # more commits while both relay
            await record(writer, envelopes[start : start + 100])
            for relay in pair:
                relay.notify()
        await eventually(lambda: all_sent(writer), timeout=30)
        await asyncio.sleep(0.2)  # time for any double publication to show
    finally:
        for relay in pair:
            await relay.stop()
        for database in databases:
            await database.dispose()

    counts: dict[str, int] = defaultdict(int)
    for envelope in bus.acked:
        counts[envelope.id] += 1
    assert set(counts) == {e.id for e in envelopes}
    assert set(counts.values()) == {1}  # exactly once: no double work
    assert first_publication_by_subject(bus.acked) == by_subject(envelopes)
    assert all(replica.acked > 0 for replica in replicas)  # both relays took part


MIGRATION = """
from alembic import op
from chassis.messaging import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
"""


def test_a_service_migration_creates_and_drops_the_tables(
    database_url: str, tmp_path: Path
) -> None:
    from alembic import command
    from alembic.config import Config

    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(
        "from sqlalchemy import MetaData\nfrom chassis import run_alembic_env\n"
        "run_alembic_env(MetaData())\n"
    )
    (folder / "script.py.mako").write_text("")
    (folder / "versions" / "0001_messaging.py").write_text(MIGRATION)
    upgrade_database(database_url, folder)

    async def use() -> list[str]:
        database = Database(database_url)
        try:
            first, second = event("a"), event("a", 1)
            await record(database, [first])
            await record(database, [second])
            async with database.sessions() as session:
                result = await session.execute(
                    text("SELECT seq, id FROM messaging_outbox ORDER BY seq")
                )
                rows = list(result)
                indexes = await session.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'messaging_outbox'")
                    if not database.is_sqlite
                    else text("SELECT name FROM sqlite_master WHERE type = 'index'")
                )
                assert [row.id for row in rows] == [first.id, second.id]  # seq: insertion order
                return sorted(str(name) for (name,) in indexes)
        finally:
            await database.dispose()

    assert {"ix_messaging_outbox_unsent", "ix_messaging_outbox_created_at"} <= set(
        asyncio.run(use())
    )

    config = Config()
    config.set_main_option("script_location", str(folder))
    config.attributes["database_url"] = database_url
    command.downgrade(config, "base")

    async def tables() -> set[str]:
        database = Database(database_url)
        try:
            async with database.engine.connect() as connection:
                names = await connection.run_sync(lambda sync: sql_inspect(sync).get_table_names())
                return set(names)
        finally:
            await database.dispose()

    assert not {"messaging_outbox", "messaging_inbox"} & asyncio.run(tables())
