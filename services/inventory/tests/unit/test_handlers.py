"""The use cases on in-memory fakes: every saga step, its repetitions, and conservation."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from inventory.adapters.memory import FakeClock, InMemoryInventoryUnitOfWork
from inventory.domain.events import ReservationFailed, StockCommitted, StockReleased, StockReserved
from inventory.domain.reservations import ReservationStatus
from inventory.domain.stock import Line, MovementKind
from inventory.errors import (
    InsufficientStockError,
    InvalidSkusError,
    ReservationNotFoundError,
    ReservationStateError,
    UnknownSkuError,
)
from inventory.service_layer import handlers

TTL = timedelta(minutes=15)


@pytest.fixture
async def uow(clock: FakeClock) -> AsyncIterator[InMemoryInventoryUnitOfWork]:
    uow = InMemoryInventoryUnitOfWork()
    for sku, units in (("A", 10), ("B", 2)):
        await handlers.add_product(uow, sku=sku, product_id=f"p-{sku}", initial=units, now=clock())
    yield uow
    # Whatever a test did, no unit appeared or vanished.
    audit = await handlers.audit(uow)
    assert audit.violations == []


def level(uow: InMemoryInventoryUnitOfWork, sku: str) -> tuple[int, int, int]:
    s = uow.committed.stock[sku]
    return s.available, s.reserved, s.committed


def status(uow: InMemoryInventoryUnitOfWork, order_id: str) -> ReservationStatus:
    return uow.committed.reservations[order_id].status


async def reserve(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock, order_id: str, *lines: tuple[str, int]
) -> StockReserved | ReservationFailed:
    return await handlers.reserve(
        uow, order_id=order_id, lines=[Line(s, q) for s, q in lines], ttl=TTL, now=clock()
    )


# -- stock ------------------------------------------------------------------------------


async def test_a_new_product_gets_its_initial_stock_once(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    assert level(uow, "A") == (10, 0, 0)
    again = await handlers.add_product(uow, sku="A", product_id="p-A", initial=99, now=clock())
    assert again is False
    assert level(uow, "A") == (10, 0, 0)
    ledger = [(m.kind, m.quantity) for m in uow.committed.movements if m.sku == "A"]
    assert ledger == [(MovementKind.INITIAL, 10)]


async def test_restock_adds_and_adjust_sets_available_recording_the_difference(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    assert (await handlers.restock(uow, sku="A", quantity=5, now=clock())).available == 15
    adjusted = await handlers.adjust(uow, sku="A", available=12, reason="count", now=clock())
    assert adjusted.available == 12
    ledger = [(m.kind, m.quantity, m.reason) for m in uow.committed.movements if m.sku == "A"]
    assert ledger[1:] == [(MovementKind.RESTOCK, 5, None), (MovementKind.ADJUST, -3, "count")]
    with pytest.raises(UnknownSkuError):
        await handlers.restock(uow, sku="NOPE", quantity=1, now=clock())
    with pytest.raises(UnknownSkuError):
        await handlers.adjust(uow, sku="NOPE", available=1, reason="r", now=clock())


async def test_availability_answers_each_sku_in_order_unknown_ones_with_zero(
    uow: InMemoryInventoryUnitOfWork,
) -> None:
    found = await handlers.availability(uow, ["B", "NOPE", "A"])
    assert [(a.sku, a.available, a.in_stock) for a in found] == [
        ("B", 2, True),
        ("NOPE", 0, False),
        ("A", 10, True),
    ]


@pytest.mark.parametrize(
    "skus", [[], [""], ["has space"], ["../etc"], [f"S{n}" for n in range(101)], ["x" * 65]]
)
def test_bad_sku_lists_are_refused(skus: list[str]) -> None:
    with pytest.raises(InvalidSkusError):
        handlers.check_skus(skus)


def test_sku_lists_lose_duplicates_and_keep_order() -> None:
    assert handlers.check_skus(["B", " A", "B"]) == ["B", "A"]


# -- reserve ----------------------------------------------------------------------------


async def test_reserving_holds_every_line(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    answer = await reserve(uow, clock, "o1", ("A", 3), ("B", 2), ("A", 1))
    assert isinstance(answer, StockReserved)
    assert answer.expires_at == clock() + TTL
    assert level(uow, "A") == (6, 4, 0)
    assert level(uow, "B") == (0, 2, 0)
    assert uow.committed.reservations["o1"].lines == (Line("A", 4), Line("B", 2))


async def test_one_short_line_reserves_nothing_and_names_the_short_skus(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    answer = await reserve(uow, clock, "o1", ("A", 3), ("B", 3))
    assert answer == ReservationFailed("o1", "out_of_stock", ("B",))
    assert level(uow, "A") == (10, 0, 0)
    assert level(uow, "B") == (2, 0, 0)
    assert not [m for m in uow.committed.movements if m.kind is MovementKind.RESERVE]


async def test_an_unknown_sku_fails_the_reservation(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    answer = await reserve(uow, clock, "o1", ("A", 1), ("GHOST", 1))
    assert answer == ReservationFailed("o1", "unknown_sku", ("GHOST",))
    assert level(uow, "A") == (10, 0, 0)


async def test_a_repeated_reserve_answers_alike_and_holds_nothing_more(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    first = await reserve(uow, clock, "o1", ("A", 3))
    again = await reserve(uow, clock, "o1", ("A", 3))
    assert again == first
    assert level(uow, "A") == (7, 3, 0)

    failed = await reserve(uow, clock, "o2", ("B", 5))
    await handlers.restock(uow, sku="B", quantity=10, now=clock())
    assert await reserve(uow, clock, "o2", ("B", 5)) == failed
    assert level(uow, "B") == (12, 0, 0)


# -- release ----------------------------------------------------------------------------


async def test_release_gives_units_back_and_is_idempotent(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 3))
    for _ in range(2):
        answer = await handlers.release(uow, order_id="o1", now=clock())
        assert answer == StockReleased("o1", "compensation")
        assert level(uow, "A") == (10, 0, 0)
    assert status(uow, "o1") is ReservationStatus.RELEASED


async def test_releasing_an_absent_reservation_answers_and_blocks_a_late_reserve(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    assert await handlers.release(uow, order_id="o1", now=clock()) == StockReleased(
        "o1", "compensation"
    )
    late = await reserve(uow, clock, "o1", ("A", 3))
    assert late == ReservationFailed("o1", "released", ())
    assert level(uow, "A") == (10, 0, 0)


async def test_releasing_failed_or_expired_reservations_changes_nothing(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("B", 9))
    await reserve(uow, clock, "o2", ("A", 1))
    clock.advance(minutes=16)
    await handlers.expire_due(uow, now=clock(), limit=10)
    for order_id in ("o1", "o2"):
        answer = await handlers.release(uow, order_id=order_id, now=clock())
        assert answer.reason == "compensation"
    assert status(uow, "o1") is ReservationStatus.FAILED
    assert status(uow, "o2") is ReservationStatus.EXPIRED
    assert level(uow, "A") == (10, 0, 0)


async def test_a_committed_reservation_cannot_be_released(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 3))
    await handlers.commit(uow, order_id="o1", now=clock())
    with pytest.raises(ReservationStateError):
        await handlers.release(uow, order_id="o1", now=clock())
    assert level(uow, "A") == (7, 0, 3)


# -- commit -----------------------------------------------------------------------------


async def test_commit_turns_reserved_into_committed_once(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 3), ("B", 1))
    for _ in range(2):
        assert await handlers.commit(uow, order_id="o1", now=clock()) == StockCommitted("o1")
    assert level(uow, "A") == (7, 0, 3)
    assert level(uow, "B") == (1, 0, 1)
    assert status(uow, "o1") is ReservationStatus.COMMITTED


async def test_committing_without_a_reservation_is_not_found(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    with pytest.raises(ReservationNotFoundError):
        await handlers.commit(uow, order_id="nope", now=clock())
    await reserve(uow, clock, "o1", ("B", 9))
    with pytest.raises(ReservationNotFoundError):
        await handlers.commit(uow, order_id="o1", now=clock())


async def test_an_expired_reservation_is_committed_from_available_stock_if_still_there(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 3))
    clock.advance(minutes=15)
    assert await handlers.expire_due(uow, now=clock(), limit=10) == ["o1"]
    assert level(uow, "A") == (10, 0, 0)
    await handlers.commit(uow, order_id="o1", now=clock())
    assert level(uow, "A") == (7, 0, 3)
    assert status(uow, "o1") is ReservationStatus.COMMITTED


async def test_an_expired_reservation_whose_units_are_gone_cannot_commit(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 1), ("B", 2))
    clock.advance(minutes=15)
    await handlers.expire_due(uow, now=clock(), limit=10)
    await reserve(uow, clock, "o2", ("B", 1))
    with pytest.raises(InsufficientStockError) as raised:
        await handlers.commit(uow, order_id="o1", now=clock())
    assert raised.value.extra["skus"] == ["B"]
    assert level(uow, "A") == (10, 0, 0)
    assert status(uow, "o1") is ReservationStatus.EXPIRED


# -- cancel (refund) ----------------------------------------------------------------------


async def test_a_refund_returns_committed_units_once(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 3))
    await handlers.commit(uow, order_id="o1", now=clock())
    for _ in range(2):
        assert await handlers.cancel(uow, order_id="o1", now=clock()) == StockReleased(
            "o1", "cancelled"
        )
    assert level(uow, "A") == (10, 0, 0)
    returns = [m for m in uow.committed.movements if m.kind is MovementKind.RETURN]
    assert [(m.sku, m.quantity, m.order_id) for m in returns] == [("A", 3, "o1")]


async def test_a_refund_that_overtakes_the_commit_releases_and_the_commit_is_a_no_op(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "o1", ("A", 3))
    await handlers.cancel(uow, order_id="o1", now=clock())
    assert level(uow, "A") == (10, 0, 0)
    assert await handlers.commit(uow, order_id="o1", now=clock()) == StockCommitted("o1")
    assert level(uow, "A") == (10, 0, 0)
    assert status(uow, "o1") is ReservationStatus.RELEASED


async def test_a_refund_for_an_unknown_order_still_answers(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    answer = await handlers.cancel(uow, order_id="o9", now=clock())
    assert answer == StockReleased("o9", "cancelled")


# -- expiry -----------------------------------------------------------------------------


async def test_only_due_held_reservations_expire(
    uow: InMemoryInventoryUnitOfWork, clock: FakeClock
) -> None:
    await reserve(uow, clock, "early", ("A", 1))
    await reserve(uow, clock, "paid", ("A", 1))
    await handlers.commit(uow, order_id="paid", now=clock())
    clock.advance(minutes=5)
    await reserve(uow, clock, "late", ("A", 1))
    clock.advance(minutes=10)
    assert await handlers.expire_due(uow, now=clock(), limit=10) == ["early"]
    assert await handlers.expire_due(uow, now=clock(), limit=10) == []
    assert level(uow, "A") == (8, 1, 1)
    clock.advance(minutes=5)
    assert await handlers.expire_due(uow, now=clock(), limit=10) == ["late"]
    assert level(uow, "A") == (9, 0, 1)


async def test_expiry_works_in_batches(uow: InMemoryInventoryUnitOfWork, clock: FakeClock) -> None:
    for n in range(5):
        await reserve(uow, clock, f"o{n}", ("A", 1))
    clock.advance(minutes=15)
    assert len(await handlers.expire_due(uow, now=clock(), limit=2)) == 2
    assert len(await handlers.expire_due(uow, now=clock(), limit=10)) == 3
    assert level(uow, "A") == (10, 0, 0)
