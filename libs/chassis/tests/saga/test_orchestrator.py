"""The saga orchestrator on SQLite (and once on PostgreSQL), with an in-memory bus and fake
participants that answer, decline, or stay silent as told."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, MetaData, String, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import (
    Delivery,
    Envelope,
    InMemoryMessageBus,
    Messaging,
    add_messaging_tables,
    idempotent,
)
from chassis.saga import (
    Command,
    Compensation,
    Failure,
    SagaAlreadyExistsError,
    SagaDefinition,
    SagaDefinitionError,
    SagaInstance,
    SagaStatus,
    SqlSagaOrchestrator,
    StaleSagaError,
    Step,
    StepKind,
    UnknownSagaError,
    add_saga_tables,
)

metadata = MetaData()
outbox, _ = add_messaging_tables(metadata)
sagas = add_saga_tables(metadata)
approvals = Table("approvals", metadata, Column("saga_id", String(36), primary_key=True))
outcomes = Table(
    "outcomes",
    metadata,
    Column("saga_id", String(36), primary_key=True),
    Column("outcome", String(50), nullable=False),
)

TIMEOUT = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def approve(session: AsyncSession, saga: SagaInstance) -> Failure | None:
    if not saga.data.get("approve", True):
        return Failure("not approved")
    await session.execute(insert(approvals).values(saga_id=saga.id))
    return None


def record_outcome(outcome: str) -> Callable[[AsyncSession, SagaInstance], Awaitable[None]]:
    async def hook(session: AsyncSession, saga: SagaInstance) -> None:
        reason = f":{saga.failure.step}:{saga.failure.reason}" if saga.failure else ""
        await session.execute(insert(outcomes).values(saga_id=saga.id, outcome=outcome + reason))

    return hook


def trip(**overrides: Any) -> SagaDefinition:
    """reserve (compensatable) → charge (compensatable) → approve (local pivot) → dispatch."""
    steps = [
        Step(
            "reserve",
            StepKind.COMPENSATABLE,
            Command(
                "stock.reserve.v1",
                lambda d: {"trip": d["trip"], "seats": d["seats"]},
                success="stock.reserved.v1",
                failure=("stock.reservation_failed.v1",),
                keep=("reservation_id",),
            ),
            Compensation("stock.release.v1", lambda d: {"trip": d["trip"]}, "stock.released.v1"),
            timeout=TIMEOUT,
        ),
        Step(
            "charge",
            StepKind.COMPENSATABLE,
            Command(
                "bank.charge.v1",
                lambda d: {"trip": d["trip"], "card": d.get("card")},
                success="bank.charged.v1",
                failure=("bank.declined.v1",),
                forget=("card",),
            ),
            Compensation("bank.refund.v1", lambda d: {"trip": d["trip"]}, "bank.refunded.v1"),
            timeout=TIMEOUT,
        ),
        Step("approve", StepKind.PIVOT, approve),
        Step(
            "dispatch",
            StepKind.RETRIABLE,
            Command(
                "ship.dispatch.v1", lambda d: {"trip": d["trip"]}, success="ship.dispatched.v1"
            ),
            timeout=TIMEOUT,
            max_timeout=25.0,
        ),
    ]
    values: dict[str, Any] = {
        "name": "trip",
        "steps": steps,
        "on_completed": record_outcome("completed"),
        "on_compensated": record_outcome("compensated"),
    }
    values.update(overrides)
    return SagaDefinition(**values)


@dataclass
class Participant:
    """Answers each command type as told: a reply type, or None to stay silent.

    `silent[type] = n` drops the first n commands of that type (lost in a crash, say)."""

    bus: InMemoryMessageBus
    name: str
    replies: dict[str, str | None]
    silent: Counter[str] = field(default_factory=Counter)
    seen: list[Envelope] = field(default_factory=list)

    async def handle(self, envelope: Envelope, _: Delivery) -> None:
        self.seen.append(envelope)
        if self.silent[envelope.type] > 0:
            self.silent[envelope.type] -= 1
            return
        reply = self.replies.get(envelope.type)
        if reply is None:
            return
        data: dict[str, Any] = {"trip": envelope.data["trip"]}
        if reply == "stock.reserved.v1":
            data["reservation_id"] = f"r-{envelope.subject}"
        if reply in ("bank.declined.v1", "stock.reservation_failed.v1"):
            data["reason"] = "insufficient_funds" if reply.startswith("bank") else "sold_out"
        await self.bus.publish(envelope.caused(reply, self.name, envelope.subject, data))

    def types(self) -> list[str]:
        return [envelope.type for envelope in self.seen]


@dataclass
class Shop:
    database: Database
    bus: InMemoryMessageBus
    clock: FakeClock
    messaging: Messaging
    orchestrator: SqlSagaOrchestrator
    stock: Participant
    bank: Participant
    ship: Participant

    async def begin(self, trip_id: str = "t1", **data: Any) -> SagaInstance:
        async with self.database.write_sessions() as session:
            saga = await self.orchestrator.start_saga(
                session,
                "trip",
                correlation_id=trip_id,
                data={"trip": trip_id, "seats": 2, "card": "4242", **data},
            )
            await session.commit()
        return saga

    async def saga(self, trip_id: str = "t1") -> SagaInstance:
        found = await self.orchestrator.find(correlation_id=trip_id)
        assert len(found) == 1
        return found[0]

    async def settled(self, trip_id: str = "t1", *, status: SagaStatus) -> SagaInstance:
        return await eventually(lambda: self.saga(trip_id), lambda s: s.status is status)

    async def waiting_on(self, step: str, trip_id: str = "t1") -> SagaInstance:
        return await eventually(lambda: self.saga(trip_id), lambda s: s.step == step)

    async def outcome(self, saga_id: str) -> str | None:
        async with self.database.sessions() as session:
            return await session.scalar(
                select(outcomes.c.outcome).where(outcomes.c.saga_id == saga_id)
            )


async def eventually(
    read: Callable[[], Awaitable[SagaInstance]],
    ok: Callable[[SagaInstance], bool],
    timeout: float = 5.0,
) -> SagaInstance:
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"never settled: {value.status} at {value.step}"
        await asyncio.sleep(0.01)


def events_of(saga: SagaInstance) -> list[tuple[str | None, str]]:
    return [(entry.step, entry.event) for entry in saga.history]


async def make_database(url: str) -> Database:
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return database


async def open_shop(
    database: Database,
    bus: InMemoryMessageBus,
    clock: FakeClock,
    *,
    definition: SagaDefinition | None = None,
    participants: tuple[Participant, Participant, Participant] | None = None,
) -> Shop:
    if participants is None:
        participants = (
            Participant(
                bus,
                "stock",
                {"stock.reserve.v1": "stock.reserved.v1", "stock.release.v1": "stock.released.v1"},
            ),
            Participant(
                bus,
                "bank",
                {"bank.charge.v1": "bank.charged.v1", "bank.refund.v1": "bank.refunded.v1"},
            ),
            Participant(bus, "ship", {"ship.dispatch.v1": "ship.dispatched.v1"}),
        )
    await bus.start()  # the broker outlives the orchestrators (a stopped Messaging closes it)
    for participant in participants:
        await bus.subscribe(participant.name, list(participant.replies), participant.handle)
    messaging = Messaging(bus=bus, database=database, service="shop")
    orchestrator = SqlSagaOrchestrator(
        database,
        [definition or trip()],
        source="shop",
        notify=messaging.notify,
        clock=clock,
        poll_interval=0.02,
    )

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await orchestrator.handle_reply(session, envelope)

    messaging.consume(orchestrator.reply_types, apply, consumer="shop")
    await messaging.start()
    return Shop(database, bus, clock, messaging, orchestrator, *participants)


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    database = await make_database(f"sqlite+aiosqlite:///{tmp_path}/shop.db")
    bus = InMemoryMessageBus()
    await bus.start()
    made = await open_shop(database, bus, FakeClock())
    yield made
    await made.orchestrator.stop()
    await made.messaging.stop()
    await database.dispose()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_happy_path_runs_every_step_in_order_and_completes(shop: Shop) -> None:
    started = metric("mercato_sagas_started_total", saga="trip")
    finished = metric("mercato_sagas_finished_total", saga="trip", outcome="completed")

    begun = await shop.begin()
    assert begun.status is SagaStatus.RUNNING and begun.step == "reserve"
    assert begun.version == 1
    saga = await shop.settled(status=SagaStatus.COMPLETED)

    assert shop.stock.types() == ["stock.reserve.v1"]
    assert shop.bank.types() == ["bank.charge.v1"]
    assert shop.ship.types() == ["ship.dispatch.v1"]
    assert events_of(saga) == [
        (None, "started"),
        ("reserve", "command_sent"),
        ("reserve", "succeeded"),
        ("charge", "command_sent"),
        ("charge", "succeeded"),
        ("approve", "succeeded"),
        ("dispatch", "command_sent"),
        ("dispatch", "succeeded"),
        (None, "completed"),
    ]
    assert saga.step is None and saga.deadline is None and saga.finished_at is not None
    # kept from the reply, and the card forgotten once charged
    assert saga.data == {"trip": "t1", "seats": 2, "reservation_id": "r-t1"}
    assert shop.bank.seen[0].data == {"trip": "t1", "card": "4242"}
    # commands carry the saga's correlation and the reply that caused them
    reserve, charge = shop.stock.seen[0], shop.bank.seen[0]
    assert reserve.subject == "t1" and reserve.source == "shop"
    assert reserve.correlation_id == saga.id
    assert charge.correlation_id == saga.id and charge.causation_id is not None
    assert await shop.outcome(saga.id) == "completed"
    assert metric("mercato_sagas_started_total", saga="trip") == started + 1
    finished_now = metric("mercato_sagas_finished_total", saga="trip", outcome="completed")
    assert finished_now == finished + 1


async def test_a_failure_at_step_two_compensates_step_one_only(shop: Shop) -> None:
    shop.bank.replies["bank.charge.v1"] = "bank.declined.v1"
    await shop.begin()
    saga = await shop.settled(status=SagaStatus.COMPENSATED)

    assert shop.stock.types() == ["stock.reserve.v1", "stock.release.v1"]
    assert shop.bank.types() == ["bank.charge.v1"]  # a declined charge needs no refund
    assert shop.ship.types() == []
    assert saga.failure is not None
    assert (saga.failure.step, saga.failure.reason) == ("charge", "insufficient_funds")
    assert saga.failure.message_type == "bank.declined.v1"
    assert events_of(saga)[-5:] == [
        ("charge", "failed"),
        (None, "compensating"),
        ("reserve", "compensation_sent"),
        ("reserve", "compensated"),
        (None, "compensated"),
    ]
    assert await shop.outcome(saga.id) == "compensated:charge:insufficient_funds"
    async with shop.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(approvals)) == 0


async def test_a_failing_pivot_compensates_every_step_in_reverse(shop: Shop) -> None:
    await shop.begin(approve=False)
    saga = await shop.settled(status=SagaStatus.COMPENSATED)

    compensations = [(e.step, e.event) for e in saga.history if e.event == "compensation_sent"]
    assert compensations == [("charge", "compensation_sent"), ("reserve", "compensation_sent")]
    assert shop.bank.types() == ["bank.charge.v1", "bank.refund.v1"]
    assert shop.stock.types() == ["stock.reserve.v1", "stock.release.v1"]
    assert saga.failure is not None and saga.failure.reason == "not approved"


async def test_retriable_steps_are_reissued_after_timeouts_with_backoff(shop: Shop) -> None:
    shop.ship.silent["ship.dispatch.v1"] = 3  # lost three times
    await shop.begin()
    saga = await shop.waiting_on("dispatch")
    await eventually(lambda: shop.saga(), lambda _: len(shop.ship.seen) == 1)
    assert saga.deadline == shop.clock.now + timedelta(seconds=TIMEOUT)

    assert await shop.orchestrator.check_timeouts() == 0  # not due yet
    waits = []
    for attempt in (2, 3, 4):
        shop.clock.now = saga.deadline
        assert await shop.orchestrator.check_timeouts() == 1
        saga = await shop.saga()
        assert saga.attempts == attempt
        assert saga.deadline is not None
        waits.append((saga.deadline - shop.clock.now).total_seconds())
    assert waits == [20.0, 25.0, 25.0]  # doubling, capped at max_timeout

    saga = await shop.settled(status=SagaStatus.COMPLETED)
    assert shop.ship.types() == ["ship.dispatch.v1"] * 4
    assert len({e.id for e in shop.ship.seen}) == 4  # a fresh envelope each time
    assert [e.event for e in saga.history if e.step == "dispatch"] == [
        "command_sent",
        "reissued",
        "reissued",
        "reissued",
        "succeeded",
    ]


async def test_a_compensatable_step_that_times_out_is_compensated_with_the_earlier_ones(
    shop: Shop,
) -> None:
    shop.bank.replies["bank.charge.v1"] = None  # the bank never answers a charge
    await shop.begin()
    saga = await shop.waiting_on("charge")
    assert saga.deadline is not None
    shop.clock.now = saga.deadline - timedelta(seconds=1)
    assert await shop.orchestrator.check_timeouts() == 0
    shop.clock.now = saga.deadline
    assert await shop.orchestrator.check_timeouts() == 1

    saga = await shop.settled(status=SagaStatus.COMPENSATED)
    # the charge may have happened after all: refunded first, then the seats released
    assert shop.bank.types() == ["bank.charge.v1", "bank.refund.v1"]
    assert shop.stock.types() == ["stock.reserve.v1", "stock.release.v1"]
    assert saga.failure is not None and (saga.failure.step, saga.failure.reason) == (
        "charge",
        "timeout",
    )
    assert ("charge", "timed_out") in events_of(saga)


async def test_a_compensation_that_times_out_is_reissued(shop: Shop) -> None:
    shop.bank.replies["bank.charge.v1"] = "bank.declined.v1"
    shop.stock.silent["stock.release.v1"] = 1
    await shop.begin()
    saga = await eventually(
        lambda: shop.saga(),
        lambda s: s.status is SagaStatus.COMPENSATING and len(shop.stock.seen) == 2,
    )
    assert saga.step == "reserve" and saga.deadline is not None
    shop.clock.now = saga.deadline
    assert await shop.orchestrator.check_timeouts() == 1
    saga = await shop.settled(status=SagaStatus.COMPENSATED)
    assert shop.stock.types() == ["stock.reserve.v1", "stock.release.v1", "stock.release.v1"]


async def test_late_and_duplicate_replies_are_ignored_and_recorded(shop: Shop) -> None:
    await shop.begin()
    saga = await shop.settled(status=SagaStatus.COMPLETED)
    version = saga.version

    late = Envelope(
        type="stock.reservation_failed.v1",
        source="stock",
        subject="t1",
        data={"trip": "t1", "reason": "sold_out"},
    )
    await shop.bus.publish(late)
    saga = await eventually(lambda: shop.saga(), lambda s: s.version > version)
    assert saga.status is SagaStatus.COMPLETED
    assert saga.history[-1].event == "ignored"
    assert saga.history[-1].message_type == "stock.reservation_failed.v1"
    assert saga.history[-1].message_id == late.id

    # the very same envelope again: the inbox drops it before the saga sees it
    await shop.bus.publish(late)
    await asyncio.sleep(0.1)
    assert (await shop.saga()).version == saga.version


async def test_a_reply_for_another_step_changes_nothing_but_the_history(shop: Shop) -> None:
    shop.bank.replies["bank.charge.v1"] = None
    await shop.begin()
    saga = await shop.waiting_on("charge")
    early = Envelope(type="ship.dispatched.v1", source="ship", subject="t1", data={})
    async with shop.database.write_sessions() as session:
        assert await shop.orchestrator.handle_reply(session, early) is False
        await session.commit()
    after = await shop.saga()
    assert (after.status, after.step, after.deadline) == (saga.status, saga.step, saga.deadline)
    assert after.history[-1].event == "ignored" and after.history[-1].step == "charge"
    assert shop.ship.seen == []


async def test_duplicate_delivery_advances_the_saga_exactly_once(tmp_path: Path) -> None:
    database = await make_database(f"sqlite+aiosqlite:///{tmp_path}/dup.db")
    try:
        await duplicate_delivery_advances_once(database)
    finally:
        await database.dispose()


@pytest.mark.integration
async def test_duplicate_delivery_advances_the_saga_exactly_once_on_postgres(
    postgres_url: str,
) -> None:
    database = await make_database(postgres_url)
    try:
        await duplicate_delivery_advances_once(database)
    finally:
        await database.dispose()


async def duplicate_delivery_advances_once(database: Database) -> None:
    """The same reply delivered many times at once, and as copies with new ids: one charge."""
    clock = FakeClock()
    orchestrator = SqlSagaOrchestrator(database, [trip()], source="shop", clock=clock)

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await orchestrator.handle_reply(session, envelope)

    handle = idempotent(database, "shop", apply)
    async with database.write_sessions() as session:
        saga = await orchestrator.start_saga(
            session, "trip", correlation_id="t9", data={"trip": "t9", "seats": 1}
        )
        await session.commit()
    reply = Envelope(type="stock.reserved.v1", source="stock", subject="t9", data={"trip": "t9"})
    copy = Envelope(type="stock.reserved.v1", source="stock", subject="t9", data={"trip": "t9"})
    delivery = Delivery(attempt=1, redelivered=False, consumer="shop")

    async def deliver(envelope: Envelope) -> BaseException | None:
        try:
            await handle(envelope, delivery)
        except StaleSagaError as error:  # the bus would redeliver it; then it is ignored
            await handle(envelope, delivery)
            return error
        return None

    await asyncio.gather(*(deliver(reply) for _ in range(5)), deliver(copy), deliver(copy))

    found = await orchestrator.get(saga.id)
    assert found is not None and found.step == "charge"
    assert [e.event for e in found.history if e.step == "reserve"].count("succeeded") == 1
    async with database.sessions() as session:
        charges = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.type == "bank.charge.v1")
        )
    assert charges == 1


async def test_a_crashed_orchestrator_is_resumed_by_a_new_one(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/crash.db"
    database = await make_database(url)
    bus = InMemoryMessageBus()
    await bus.start()
    clock = FakeClock()
    first = await open_shop(database, bus, clock)
    first.stock.silent["stock.reserve.v1"] = 1  # t1's reservation is lost with the crash
    first.bank.silent["bank.charge.v1"] = 1  # and so is t2's charge
    await first.begin("t1")
    # t1's reserve must be the one swallowed: begin t2 only once stock has seen it.
    await eventually(lambda: first.saga("t1"), lambda _: len(first.stock.seen) == 1)
    await first.begin("t2")
    await first.waiting_on("charge", "t2")
    await eventually(lambda: first.saga("t2"), lambda _: len(first.bank.seen) == 1)
    await first.messaging.stop()  # "crash": nothing of the first orchestrator remains
    await first.orchestrator.stop()
    await database.dispose()

    clock.advance(6)  # later than the resume grace, earlier than the step timeout
    database = Database(url)
    second = await open_shop(
        database, bus, clock, participants=(first.stock, first.bank, first.ship)
    )
    try:
        await second.orchestrator.start()  # resumes, then watches deadlines
        for trip_id, step in (("t1", "reserve"), ("t2", "charge")):
            saga = await second.settled(trip_id, status=SagaStatus.COMPLETED)
            reissued = [e for e in saga.history if e.event == "reissued"]
            assert [(e.step, e.reason) for e in reissued] == [(step, "resumed")]
        assert first.stock.types().count("stock.reserve.v1") == 3
        assert first.bank.types().count("bank.charge.v1") == 3
    finally:
        await second.orchestrator.stop()
        await second.messaging.stop()
        await database.dispose()


async def test_resume_leaves_fresh_steps_and_due_steps_alone(shop: Shop) -> None:
    shop.stock.replies["stock.reserve.v1"] = None
    await shop.begin()
    await eventually(lambda: shop.saga(), lambda _: len(shop.stock.seen) == 1)
    assert await shop.orchestrator.resume() == 0  # sent a moment ago
    shop.clock.advance(TIMEOUT)
    assert await shop.orchestrator.resume() == 0  # due: the timeout loop's, not resume's
    assert await shop.orchestrator.check_timeouts() == 1
    await shop.settled(status=SagaStatus.COMPENSATED)


async def test_the_background_loop_drives_timeouts(shop: Shop) -> None:
    shop.bank.replies["bank.charge.v1"] = None
    await shop.begin()
    await shop.waiting_on("charge")
    await shop.orchestrator.start()
    shop.clock.advance(TIMEOUT + 1)
    saga = await shop.settled(status=SagaStatus.COMPENSATED)
    assert saga.failure is not None and saga.failure.reason == "timeout"


async def test_a_guard_stops_the_saga_before_the_pivot(tmp_path: Path) -> None:
    async def guard(session: AsyncSession, saga: SagaInstance) -> Failure | None:
        cancelled = await session.scalar(
            select(func.count()).select_from(outcomes).where(outcomes.c.saga_id == "cancel")
        )
        return Failure("cancelled") if cancelled and saga.step == "approve" else None

    database = await make_database(f"sqlite+aiosqlite:///{tmp_path}/guard.db")
    bus = InMemoryMessageBus()
    await bus.start()
    shop = await open_shop(database, bus, FakeClock(), definition=trip(before_step=guard))
    try:
        shop.bank.replies["bank.charge.v1"] = None
        await shop.begin()
        saga = await shop.waiting_on("charge")
        async with database.write_sessions() as session:
            await session.execute(insert(outcomes).values(saga_id="cancel", outcome="asked"))
            await session.commit()
        reply = Envelope(type="bank.charged.v1", source="bank", subject="t1", data={})
        await bus.publish(reply)
        saga = await shop.settled(status=SagaStatus.COMPENSATED)
        assert saga.failure is not None and saga.failure == saga.failure.__class__(
            "approve", "cancelled", None
        )
        assert shop.bank.types() == ["bank.charge.v1", "bank.refund.v1"]
        async with database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(approvals)) == 0
    finally:
        await shop.messaging.stop()
        await database.dispose()


async def test_a_stale_save_is_refused(shop: Shop) -> None:
    shop.stock.replies["stock.reserve.v1"] = None
    await shop.begin()
    await eventually(lambda: shop.saga(), lambda _: len(shop.stock.seen) == 1)
    reply = Envelope(type="stock.reserved.v1", source="stock", subject="t1", data={})
    async with shop.database.write_sessions() as session:
        # another transaction moves the saga on between our read and our write
        original = shop.orchestrator._load

        async def load_then_bump(session: AsyncSession, **kwargs: Any) -> SagaInstance | None:
            found = await original(session, **kwargs)
            # (SQLite serialises writers, so the "other" writer is simulated in this session)
            await session.execute(update(sagas).values(version=sagas.c.version + 1))
            return found

        shop.orchestrator._load = load_then_bump  # type: ignore[method-assign]
        with pytest.raises(StaleSagaError):
            await shop.orchestrator.handle_reply(session, reply)
        await session.rollback()
    shop.orchestrator._load = original  # type: ignore[method-assign]
    assert (await shop.saga()).step == "reserve"


async def test_starting_twice_for_one_correlation_is_refused(shop: Shop) -> None:
    await shop.begin("t1")
    with pytest.raises(SagaAlreadyExistsError):
        await shop.begin("t1")
    async with shop.database.write_sessions() as session:
        with pytest.raises(UnknownSagaError):
            await shop.orchestrator.start_saga(session, "nope", correlation_id="x", data={})


async def test_listing_and_reading_sagas(shop: Shop) -> None:
    shop.stock.replies["stock.reserve.v1"] = None
    for n in range(3):
        await shop.begin(f"t{n}")
        shop.clock.advance(1)
    newest_first = await shop.orchestrator.find(status=SagaStatus.RUNNING)
    assert [s.correlation_id for s in newest_first] == ["t2", "t1", "t0"]
    last = newest_first[0]
    page = await shop.orchestrator.find(limit=5, before=(last.created_at, last.id))
    assert [s.correlation_id for s in page] == ["t1", "t0"]
    assert await shop.orchestrator.find(status=SagaStatus.COMPLETED) == []
    found = await shop.orchestrator.get(last.id)
    assert found == last
    assert await shop.orchestrator.get("missing") is None
    plain = last.to_dict(redact=frozenset({"card"}))
    assert plain["data"]["card"] == "[redacted]"
    assert plain["history"][0] == {
        "step": None,
        "event": "started",
        "message_type": None,
        "at": "2026-01-01T00:00:02Z",
    }


def test_definitions_must_follow_the_rules() -> None:
    def local(kind: StepKind, name: str = "s", **options: Any) -> Step:
        async def act(session: AsyncSession, saga: SagaInstance) -> None:
            return None

        return Step(name, kind, act, **options)

    def bad(*steps: Step) -> None:
        with pytest.raises(SagaDefinitionError):
            SagaDefinition("x", steps)

    bad()
    bad(local(StepKind.PIVOT, "a"), local(StepKind.COMPENSATABLE, "b"))
    bad(local(StepKind.RETRIABLE, "a"), local(StepKind.PIVOT, "b"))
    bad(local(StepKind.PIVOT, "a"), local(StepKind.PIVOT, "b"))
    bad(local(StepKind.PIVOT, "a"), local(StepKind.RETRIABLE, "a"))
    bad(local(StepKind.RETRIABLE, "a", compensation=Compensation("a.b.v1", dict, "a.c.v1")))
    bad(local(StepKind.COMPENSATABLE, "a", timeout=0))
    bad(local(StepKind.COMPENSATABLE, "bad name"))
    bad(Step("a", StepKind.PIVOT, Command("not a type", dict, success="a.b.v1")))
    bad(Step("a", StepKind.PIVOT, Command("a.b.v1", dict, success="a.c.v1", failure=("a.c.v1",))))
    with pytest.raises(SagaDefinitionError):
        SagaDefinition("bad name", [local(StepKind.PIVOT)])
    with pytest.raises(SagaDefinitionError):
        SqlSagaOrchestrator(Database("sqlite+aiosqlite://"), [trip(), trip()], source="s")
    plan = trip().describe()
    assert [(p["name"], p["kind"]) for p in plan] == [
        ("reserve", "compensatable"),
        ("charge", "compensatable"),
        ("approve", "pivot"),
        ("dispatch", "retriable"),
    ]
    assert plan[0]["compensation"] == "stock.release.v1"
    assert trip().reply_types == (
        "stock.reserved.v1",
        "stock.reservation_failed.v1",
        "stock.released.v1",
        "bank.charged.v1",
        "bank.declined.v1",
        "bank.refunded.v1",
        "ship.dispatched.v1",
    )


def test_step_waits_double_up_to_the_cap() -> None:
    step = trip().steps[3]
    assert [step.wait(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 25.0, 25.0]
