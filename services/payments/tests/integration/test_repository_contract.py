"""One contract for the payments repository and unit of work: the fake, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from chassis import Database
from chassis.messaging import OUTBOX_TABLE
from payments.adapters.memory import FakeClock, InMemoryPaymentsUnitOfWork
from payments.adapters.orm import outbox
from payments.adapters.repository import SqlPaymentsUnitOfWork
from payments.bootstrap import migrate
from payments.domain.model import (
    Cause,
    LedgerKind,
    OperationKind,
    OperationStatus,
    PaymentStatus,
    new_payment,
)
from payments.service_layer import messages
from payments.service_layer.ports import PaymentsUnitOfWork
from payments.settings import PaymentsSettings

UowFactory = Callable[[], PaymentsUnitOfWork]


class Backend:
    def __init__(self, factory: UowFactory, database: Database | None) -> None:
        self.factory = factory
        self.database = database


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        shared = InMemoryPaymentsUnitOfWork()
        yield Backend(lambda: shared, None)
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/payments.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(PaymentsSettings(database_url=url))
    database = Database(url)
    try:
        yield Backend(lambda: SqlPaymentsUnitOfWork(database, write=True), database)
    finally:
        await database.dispose()


def payment(order_id: str, clock: FakeClock, amount: int = 1200):  # type: ignore[no-untyped-def]
    return new_payment(
        order_id=order_id, user_id="u1", amount=amount, currency="EUR",
        payment_token="tok_visa", cause=Cause("m1", "c1", "00-abc-def-01"), now=clock(),
    )  # fmt: skip


async def test_round_trip_with_operations_and_ledger(backend: Backend, clock: FakeClock) -> None:
    async with backend.factory() as uow:
        await uow.payments.add(payment("o1", clock))
        await uow.commit()
    async with backend.factory() as uow:
        found = await uow.payments.get("o1", lock=True)
        assert found is not None
        assert found.status is PaymentStatus.PENDING
        [op] = found.operations
        assert (op.kind, op.status, op.cause) == (
            OperationKind.AUTHORIZE, OperationStatus.REQUESTED, Cause("m1", "c1", "00-abc-def-01"),
        )  # fmt: skip
        assert op.next_attempt_at == clock()
        found.authorization_succeeded(op, "auth_1", clock())
        found.request(OperationKind.CAPTURE, cause=None, now=clock())
        await uow.payments.save(found)
        await uow.commit()
    async with backend.factory() as uow:
        again = await uow.payments.get("o1")
        assert again is not None
        assert (again.status, again.psp_authorization_id, again.payment_token) == (
            PaymentStatus.AUTHORIZED, "auth_1", None,
        )  # fmt: skip
        assert [(op.kind, op.status, op.amount) for op in again.operations] == [
            (OperationKind.AUTHORIZE, OperationStatus.SUCCEEDED, 1200),
            (OperationKind.CAPTURE, OperationStatus.REQUESTED, None),
        ]
        ledger = await uow.payments.ledger("o1")
        assert [(e.kind, e.amount, e.currency, e.psp_reference, e.at) for e in ledger] == [
            (LedgerKind.AUTHORIZATION, 1200, "EUR", "auth_1", clock())
        ]
        assert await uow.payments.get("o2") is None


async def test_nothing_is_stored_without_commit(backend: Backend, clock: FakeClock) -> None:
    async with backend.factory() as uow:
        await uow.payments.add(payment("o1", clock))
    async with backend.factory() as uow:
        assert await uow.payments.get("o1") is None


async def test_due_lists_orders_whose_next_attempt_has_come(
    backend: Backend, clock: FakeClock
) -> None:
    async with backend.factory() as uow:
        for n in range(3):
            await uow.payments.add(payment(f"o{n}", clock))
            clock.advance(1)
        await uow.commit()
    async with backend.factory() as uow:
        p1 = await uow.payments.get("o1")
        assert p1 is not None
        p1.attempt_failed(
            p1.operations[0], "down", outcome_unknown=True,
            retry_at=clock() + timedelta(seconds=100), now=clock(),
        )  # fmt: skip
        await uow.payments.save(p1)
        await uow.commit()
    async with backend.factory() as uow:
        assert await uow.payments.due(clock(), limit=10) == ["o0", "o2"]
        assert await uow.payments.due(clock(), limit=1) == ["o0"]
        later = clock() + timedelta(seconds=200)
        assert await uow.payments.due(later, limit=10) == ["o0", "o2", "o1"]
        rows = await uow.payments.all()
    assert [p.order_id for p, _ in rows] == ["o0", "o1", "o2"]
    assert rows[1][0].operations[0].status is OperationStatus.UNKNOWN


CAUSE_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_published_messages_go_to_the_outbox_with_the_commit(
    backend: Backend, clock: FakeClock
) -> None:
    async with backend.factory() as uow:
        p = payment("o1", clock)
        await uow.payments.add(p)
        uow.publish(messages.voided("o1", Cause("cmd-9", None, CAUSE_TRACEPARENT)))
        await uow.commit()
    if backend.database is None:
        uow_fake = backend.factory()
        assert isinstance(uow_fake, InMemoryPaymentsUnitOfWork)
        assert [m.type for m in uow_fake.published] == [messages.PAYMENT_VOIDED]
        return
    async with backend.database.sessions() as session:
        rows = (await session.execute(select(outbox))).mappings().all()
    assert outbox.name == OUTBOX_TABLE
    [row] = rows
    envelope = orjson.loads(row["envelope"])
    assert (row["type"], row["subject"]) == (messages.PAYMENT_VOIDED, "o1")
    assert envelope["source"] == "payments"
    assert envelope["data"] == {"order_id": "o1"}
    assert (envelope["causationid"], envelope["correlationid"]) == ("cmd-9", "cmd-9")
    # the cause's trace goes on, from the producer span the outbox recorded under it
    trace_id = CAUSE_TRACEPARENT.split("-")[1]
    assert envelope["traceparent"].split("-")[1] == trace_id
