"""No overselling under concurrency, on SQLite and on PostgreSQL: many reservations race for
the same units, and exactly as many succeed as there are units."""

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from chassis import Database
from inventory.adapters.repository import SqlInventoryUnitOfWork
from inventory.bootstrap import migrate, utc_now
from inventory.domain.events import ReservationFailed, StockReserved
from inventory.domain.stock import Line
from inventory.service_layer import handlers
from inventory.settings import InventorySettings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/inventory.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(InventorySettings(database_url=url))
    database = Database(url, pool_size=20)
    yield database
    await database.dispose()


def writer(database: Database) -> SqlInventoryUnitOfWork:
    return SqlInventoryUnitOfWork(database, write=True)


async def watch_available(database: Database, sku: str, stop: asyncio.Event) -> list[int]:
    """Sample the stock while the race runs: it must never be seen below zero."""
    seen = []
    while not stop.is_set():
        async with SqlInventoryUnitOfWork(database) as uow:
            stock = await uow.stock.get(sku)
        assert stock is not None
        seen.append(stock.available)
        await asyncio.sleep(0.005)
    return seen


async def test_two_hundred_reservations_race_for_fifty_units(database: Database) -> None:
    await handlers.add_product(
        writer(database), sku="HOT", product_id="p", initial=50, now=utc_now()
    )
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_available(database, "HOT", stop))

    async def one(n: int) -> StockReserved | ReservationFailed:
        return await handlers.reserve(
            writer(database),
            order_id=f"order-{n}",
            lines=[Line("HOT", 1)],
            ttl=timedelta(minutes=15),
            now=utc_now(),
        )

    answers = await asyncio.gather(*(one(n) for n in range(200)))
    stop.set()
    samples = await watcher

    won = [a for a in answers if isinstance(a, StockReserved)]
    lost = [a for a in answers if isinstance(a, ReservationFailed)]
    assert len(won) == 50
    assert len(lost) == 150
    assert all(a.reason == "out_of_stock" and a.skus == ("HOT",) for a in lost)
    assert min(samples) >= 0
    audit = await handlers.audit(SqlInventoryUnitOfWork(database, snapshot=True))
    assert audit.violations == []
    [balance] = audit.skus
    assert (balance.available, balance.reserved, balance.committed) == (0, 50, 0)
    assert len(audit.reservations) == 50


async def test_multi_line_reservations_in_any_order_neither_oversell_nor_deadlock(
    database: Database,
) -> None:
    now = utc_now()
    for sku, units in (("A", 30), ("B", 40), ("C", 25)):
        await handlers.add_product(
            writer(database), sku=sku, product_id=sku, initial=units, now=now
        )
    rng = random.Random(7)

    async def one(n: int) -> StockReserved | ReservationFailed:
        lines = [Line(sku, 1) for sku in rng.sample(["A", "B", "C"], k=rng.randint(1, 3))]
        return await handlers.reserve(
            writer(database),
            order_id=f"order-{n}",
            lines=lines,
            ttl=timedelta(minutes=15),
            now=utc_now(),
        )

    answers = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(120))), 60)
    audit = await handlers.audit(SqlInventoryUnitOfWork(database, snapshot=True))
    assert audit.violations == []
    won = {a.order_id for a in answers if isinstance(a, StockReserved)}
    held = {r.order_id for r in audit.reservations}
    assert won == held
    for balance in audit.skus:
        assert balance.available >= 0
        assert balance.available + balance.reserved == balance.initial
