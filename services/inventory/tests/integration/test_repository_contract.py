"""One contract for the stock and reservation repositories: the fake, SQLite, PostgreSQL."""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chassis import Database
from inventory.adapters.memory import InMemoryInventoryState, InMemoryInventoryUnitOfWork
from inventory.adapters.repository import SqlInventoryUnitOfWork
from inventory.bootstrap import migrate
from inventory.domain.reservations import Reservation, ReservationStatus
from inventory.domain.stock import Line, Movement, MovementKind, Stock
from inventory.service_layer.ports import InventoryUnitOfWork
from inventory.settings import InventorySettings

UowFactory = Callable[[], InventoryUnitOfWork]
NOW = datetime(2026, 12, 1, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
async def uow_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UowFactory]:
    if request.param == "memory":
        state = InMemoryInventoryState()
        yield lambda: InMemoryInventoryUnitOfWork(state)
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/inventory.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(InventorySettings(database_url=url))
    database = Database(url)
    try:
        yield lambda: SqlInventoryUnitOfWork(database, write=True)
    finally:
        await database.dispose()


def move(sku: str, kind: MovementKind, quantity: int, order_id: str | None = None) -> Movement:
    return Movement(sku, kind, quantity, NOW, order_id=order_id)


async def create(factory: UowFactory, sku: str, units: int) -> None:
    async with factory() as uow:
        created = await uow.stock.create(
            Stock(sku, 0, 0, 0, NOW, f"p-{sku}"), move(sku, MovementKind.INITIAL, units)
        )
        assert created
        await uow.commit()


async def test_create_get_and_a_second_create_changes_nothing(uow_factory: UowFactory) -> None:
    await create(uow_factory, "A", 5)
    async with uow_factory() as uow:
        assert await uow.stock.get("A") == Stock("A", 5, 0, 0, NOW, "p-A")
        assert await uow.stock.get("A", for_update=True) == Stock("A", 5, 0, 0, NOW, "p-A")
        assert not await uow.stock.create(
            Stock("A", 0, 0, 0, NOW), move("A", MovementKind.INITIAL, 99)
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.stock.get("A")) == Stock("A", 5, 0, 0, NOW, "p-A")
        assert await uow.stock.get("B") is None
        assert list(await uow.stock.get_many(["B", "A"])) == ["A"]
        assert await uow.stock.get_many([]) == {}
        assert [m.quantity for m in await uow.stock.movements("A")] == [5]


async def test_apply_moves_units_and_records_the_movement_unless_a_bucket_goes_negative(
    uow_factory: UowFactory,
) -> None:
    await create(uow_factory, "A", 3)
    async with uow_factory() as uow:
        assert await uow.stock.apply(move("A", MovementKind.RESERVE, 2, "o1"))
        assert not await uow.stock.apply(move("A", MovementKind.RESERVE, 2, "o2"))
        assert not await uow.stock.apply(move("A", MovementKind.COMMIT, 3, "o1"))
        assert not await uow.stock.apply(move("GHOST", MovementKind.RESTOCK, 1))
        assert await uow.stock.apply(move("A", MovementKind.COMMIT, 2, "o1"))
        assert await uow.stock.apply(move("A", MovementKind.ADJUST, -1))
        await uow.commit()
    async with uow_factory() as uow:
        stock = await uow.stock.get("A")
        assert stock is not None
        assert (stock.available, stock.reserved, stock.committed) == (0, 0, 2)
        ledger = [(m.kind, m.quantity, m.order_id) for m in await uow.stock.movements("A")]
    assert ledger == [
        (MovementKind.INITIAL, 3, None),
        (MovementKind.RESERVE, 2, "o1"),
        (MovementKind.COMMIT, 2, "o1"),
        (MovementKind.ADJUST, -1, None),
    ]


async def test_apply_all_applies_everything_or_nothing(uow_factory: UowFactory) -> None:
    await create(uow_factory, "A", 3)
    await create(uow_factory, "B", 1)
    async with uow_factory() as uow:
        failed = await uow.stock.apply_all(
            [
                move("A", MovementKind.RESERVE, 2, "o1"),
                move("B", MovementKind.RESERVE, 2, "o1"),
                move("C", MovementKind.RESERVE, 1, "o1"),
            ]
        )
        assert failed == ["B", "C"]
        # the transaction goes on after the partial undo
        assert await uow.stock.apply_all([move("B", MovementKind.RESERVE, 1, "o2")]) == []
        await uow.commit()
    async with uow_factory() as uow:
        a, b = await uow.stock.get("A"), await uow.stock.get("B")
        assert a is not None and b is not None
        assert (a.available, a.reserved) == (3, 0)
        assert (b.available, b.reserved) == (0, 1)
        assert [m.kind for m in await uow.stock.movements("A")] == [MovementKind.INITIAL]
        balances = await uow.stock.balances()
    assert [(x.sku, x.initial, x.available, x.reserved, x.balanced) for x in balances] == [
        ("A", 3, 3, 0, True),
        ("B", 1, 0, 1, True),
    ]


async def test_uncommitted_work_is_rolled_back(uow_factory: UowFactory) -> None:
    await create(uow_factory, "A", 3)
    async with uow_factory() as uow:
        await uow.stock.apply(move("A", MovementKind.RESERVE, 3, "o1"))
        await uow.reservations.add(
            Reservation.hold("o1", (Line("A", 3),), now=NOW, ttl=timedelta(minutes=1))
        )
    async with uow_factory() as uow:
        assert (await uow.stock.get("A")) == Stock("A", 3, 0, 0, NOW, "p-A")
        assert await uow.reservations.get("o1") is None
        assert len(await uow.stock.movements("A")) == 1


async def test_balances_sum_sources_from_the_ledger(uow_factory: UowFactory) -> None:
    await create(uow_factory, "A", 10)
    async with uow_factory() as uow:
        await uow.stock.apply(move("A", MovementKind.RESTOCK, 5))
        await uow.stock.apply(move("A", MovementKind.RESTOCK, 2))
        await uow.stock.apply(move("A", MovementKind.ADJUST, -4))
        await uow.stock.apply(move("A", MovementKind.RESERVE, 3, "o1"))
        await uow.commit()
    async with uow_factory() as uow:
        [balance] = await uow.stock.balances()
    assert (balance.initial, balance.restocked, balance.adjusted) == (10, 7, -4)
    assert (balance.available, balance.reserved, balance.committed) == (10, 3, 0)
    assert balance.balanced


async def test_reservations_round_trip_and_change_status_conditionally(
    uow_factory: UowFactory,
) -> None:
    await create(uow_factory, "A", 10)
    await create(uow_factory, "B", 10)
    held = Reservation.hold("o1", (Line("A", 2), Line("B", 1)), now=NOW, ttl=timedelta(minutes=15))
    failed = Reservation.failure("o2", reason="unknown_sku", skus=["X", "Y"], now=NOW)
    async with uow_factory() as uow:
        await uow.reservations.add(held)
        await uow.reservations.add(failed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.reservations.get("o1") == held
        assert await uow.reservations.get("o1", for_update=True) == held
        assert await uow.reservations.get("o2") == failed
        assert await uow.reservations.get("o3") is None
        later = NOW + timedelta(minutes=1)
        committed = held.moved_to(ReservationStatus.COMMITTED, now=later)
        assert await uow.reservations.update(committed, expected=ReservationStatus.HELD)
        assert not await uow.reservations.update(committed, expected=ReservationStatus.HELD)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.reservations.get("o1") == committed
        assert [r.order_id for r in await uow.reservations.all()] == ["o1"]


async def test_due_lists_held_reservations_past_expiry_earliest_first(
    uow_factory: UowFactory,
) -> None:
    await create(uow_factory, "A", 10)
    async with uow_factory() as uow:
        for order_id, minutes in (("late", 20), ("early", 5), ("mid", 10)):
            ttl = timedelta(minutes=minutes)
            await uow.reservations.add(
                Reservation.hold(order_id, (Line("A", 1),), now=NOW, ttl=ttl)
            )
        gone = Reservation.hold("gone", (Line("A", 1),), now=NOW, ttl=timedelta(minutes=1))
        await uow.reservations.add(gone.moved_to(ReservationStatus.RELEASED, now=NOW))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.reservations.due(NOW + timedelta(minutes=10), limit=10) == [
            "early",
            "mid",
        ]
        assert await uow.reservations.due(NOW + timedelta(hours=1), limit=2) == ["early", "mid"]
        assert await uow.reservations.due(NOW, limit=10) == []
