"""One contract for the order and idempotency-key stores: the fake, SQLite and PostgreSQL."""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chassis import Database
from chassis.saga import SqlSagaOrchestrator
from orders.adapters.memory import InMemoryOrdersUnitOfWork
from orders.adapters.repository import SqlOrdersUnitOfWork, SqlOrderTransaction
from orders.bootstrap import migrate
from orders.domain.idempotency import IdempotencyRecord, StoredResponse
from orders.domain.model import (
    Cancellation,
    Order,
    Price,
    ProductSnapshot,
    RequestedLine,
    new_order,
)
from orders.errors import OrderChangedError
from orders.service_layer.checkout import checkout_saga
from orders.service_layer.ports import OrdersUnitOfWork
from orders.settings import OrdersSettings

UowFactory = Callable[..., OrdersUnitOfWork]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
MUG = ProductSnapshot("p-mug", "MUG-001", "Mug «ß»", Price(1490, "EUR"))
TEA = ProductSnapshot("p-tea", "TEA-042", "Tea 🍵", Price(850, "EUR"))


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
async def uow(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UowFactory]:
    if request.param == "memory":
        yield InMemoryOrdersUnitOfWork()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/orders.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(OrdersSettings(database_url=url, data_dir=tmp_path))
    database = Database(url)
    saga = checkout_saga(
        transaction=SqlOrderTransaction,
        clock=lambda: BASE,
        step_timeout=10,
        max_step_timeout=60,
    )
    orchestrator = SqlSagaOrchestrator(database, [saga], source="orders")

    def factory(*, write: bool = False) -> SqlOrdersUnitOfWork:
        return SqlOrdersUnitOfWork(database, write=write, orchestrator=orchestrator)

    try:
        yield factory
    finally:
        await database.dispose()


def order(n: int, *, user: str = "alice") -> Order:
    return new_order(
        user_id=user,
        requested=[RequestedLine("p-mug", n % 3 + 1), RequestedLine("p-tea", 1)],
        products={"p-mug": MUG, "p-tea": TEA},
        now=BASE + timedelta(minutes=n),
        order_id=f"order-{n:02d}",
    )


async def store(factory: UowFactory, *orders: Order) -> None:
    async with factory(write=True) as uow:
        for o in orders:
            await uow.orders.add(o)
        await uow.commit()


async def test_orders_round_trip_and_changes_are_optimistic(uow: UowFactory) -> None:
    original = order(1)
    await store(uow, original)
    async with uow() as reader:
        assert await reader.orders.get(original.id) == original
        assert await reader.orders.get("missing") is None
    async with uow(write=True) as writer:
        asked, _ = original.request_cancellation(BASE + timedelta(hours=1))
        saved = await writer.orders.save(asked)
        assert saved.version == original.version + 1
        await writer.commit()
    async with uow(write=True) as writer:
        with pytest.raises(OrderChangedError):  # written from the stale copy
            await writer.orders.save(original.reject("timeout", BASE))
    async with uow() as reader:
        stored = await reader.orders.get(original.id)
    assert stored == saved
    assert stored is not None and stored.cancellation is Cancellation.REQUESTED


async def test_uncommitted_work_is_rolled_back(uow: UowFactory) -> None:
    async with uow(write=True) as writer:
        await writer.orders.add(order(1))
    async with uow() as reader:
        assert await reader.orders.get("order-01") is None


async def test_listing_counting_and_the_audit(uow: UowFactory) -> None:
    mine = [order(n) for n in range(5)]
    await store(uow, *mine, order(9, user="bob"))
    async with uow(write=True) as writer:
        await writer.orders.save(mine[0].confirm(BASE))
        await writer.commit()
    async with uow() as reader:
        first = await reader.orders.list_for_user("alice", limit=3)
        assert [o.id for o in first] == ["order-04", "order-03", "order-02"]
        last = first[-1]
        rest = await reader.orders.list_for_user("alice", limit=3, after=(last.created_at, last.id))
        assert [o.id for o in rest] == ["order-01", "order-00"]
        assert rest[0].lines == mine[1].lines
        assert await reader.orders.count_pending("alice") == 4
        assert await reader.orders.count_pending("nobody") == 0
        everything = await reader.orders.all()
    assert [o.id for o in everything] == [f"order-0{n}" for n in range(5)] + ["order-09"]
    assert all(len(o.lines) == 2 for o in everything)


async def test_idempotency_keys_are_stored_per_user_and_expire(uow: UowFactory) -> None:
    def record(user: str, key: str, at: datetime) -> IdempotencyRecord:
        body = f'{{"id": "{key}", "name": "Tea 🍵"}}'.encode()
        return IdempotencyRecord(user, key, "f" * 64, StoredResponse(202, body, f"o-{key}"), at)

    async with uow(write=True) as writer:
        await writer.idempotency.add(record("alice", "k1", BASE))
        await writer.idempotency.add(record("bob", "k1", BASE + timedelta(hours=2)))
        await writer.commit()
    async with uow() as reader:
        found = await reader.idempotency.get("alice", "k1")
        assert found == record("alice", "k1", BASE)
        assert await reader.idempotency.get("alice", "k2") is None
    async with uow(write=True) as writer:
        assert await writer.idempotency.delete_older_than(BASE + timedelta(hours=1)) == 1
        await writer.commit()
    async with uow() as reader:
        assert await reader.idempotency.get("alice", "k1") is None
        assert await reader.idempotency.get("bob", "k1") is not None


async def test_checkout_load_counts_recent_pending_and_the_late_ones(uow: UowFactory) -> None:
    # orders 0..5 created a minute apart; 1 and 3 are no longer PENDING
    everything = [order(n) for n in range(6)]
    await store(uow, *everything)
    async with uow(write=True) as writer:
        await writer.orders.save(everything[1].confirm(BASE + timedelta(minutes=10)))
        await writer.orders.save(everything[3].reject("out_of_stock", BASE + timedelta(minutes=10)))
        await writer.commit()
    async with uow() as reader:
        load = reader.orders.checkout_load
        # PENDING: 0, 2, 4, 5; created before minute 3: 0 and 2
        assert await load(created_since=BASE, late_before=BASE + timedelta(minutes=3)) == (4, 2)
        # created since minute 2: order 0 is older than the horizon (stuck, not queued)
        since = BASE + timedelta(minutes=2)
        assert await load(created_since=since, late_before=BASE + timedelta(minutes=3)) == (3, 1)
        assert await load(created_since=since, late_before=BASE) == (3, 0)
