"""Checkout admission (load shedding) on in-memory fakes: late checkouts close the door."""

from datetime import UTC, datetime, timedelta

import pytest

from orders.adapters.memory import FakeCatalog, InMemoryOrdersUnitOfWork
from orders.domain.model import Price, ProductSnapshot, RequestedLine
from orders.errors import CheckoutBusyError
from orders.service_layer import handlers
from orders.service_layer.admission import CheckoutAdmission, CheckoutLoad

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
MUG = ProductSnapshot("p-mug", "MUG-001", "Mug", Price(1490, "EUR"))


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admission(ticker: Ticker, *, floor: int = 3) -> CheckoutAdmission:
    return CheckoutAdmission(max_wait=4, floor=floor, horizon=60, refresh=0.5, monotonic=ticker)


async def place(
    uow: InMemoryOrdersUnitOfWork, gate: CheckoutAdmission, key: str, *, user: str = "alice",
    at: datetime = NOW,
) -> handlers.StoredResponse:  # type: ignore[name-defined]  # fmt: skip
    return await handlers.place_order(
        uow, FakeCatalog([MUG]), user_id=user, idempotency_key=key, request_fingerprint="f",
        lines=[RequestedLine("p-mug", 1)], payment_token="tok_visa",
        render=lambda order: order.id.encode(), max_pending=1000, retry_after=7, now=at,
        admission=gate,
    )  # fmt: skip


def test_the_line_is_too_long_when_enough_of_it_is_late() -> None:
    gate = admission(Ticker())
    assert not gate.too_late(CheckoutLoad(pending=100, late=0))
    assert not gate.too_late(CheckoutLoad(pending=10, late=2))  # a few stuck ones: no
    assert gate.too_late(CheckoutLoad(pending=10, late=3))
    assert not gate.too_late(CheckoutLoad(pending=100, late=9))  # one in ten
    assert gate.too_late(CheckoutLoad(pending=100, late=10))


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CheckoutAdmission(max_wait=0, floor=1, horizon=60)
    with pytest.raises(ValueError):
        CheckoutAdmission(max_wait=5, floor=0, horizon=60)
    with pytest.raises(ValueError):
        CheckoutAdmission(max_wait=60, floor=1, horizon=60)


async def test_a_line_of_late_checkouts_refuses_new_orders_and_replays_are_answered() -> None:
    uow = InMemoryOrdersUnitOfWork()
    ticker = Ticker()
    gate = admission(ticker, floor=3)
    # three orders placed 10 s ago are still PENDING: late (max_wait 4 s)
    early = NOW - timedelta(seconds=10)
    accepted = [await place(uow, gate, f"k{n}", at=early) for n in range(3)]
    ticker.now = 10.0
    with pytest.raises(CheckoutBusyError) as refused:
        await place(uow, gate, "k3")
    assert refused.value.retry_after == 2
    assert len(uow.committed.orders) == 3  # the refused one was not ordered
    replay = await place(uow, gate, "k0")  # an accepted order's retry is answered, not shed
    assert replay.replayed and replay.order_id == accepted[0].order_id


async def test_below_the_floor_or_without_late_checkouts_everything_is_admitted() -> None:
    uow = InMemoryOrdersUnitOfWork()
    ticker = Ticker()
    gate = admission(ticker, floor=5)
    early = NOW - timedelta(seconds=10)
    for n in range(4):  # four late ones, but fewer than the floor in flight
        await place(uow, gate, f"old{n}", user=f"u{n}", at=early)
    ticker.now = 1.0
    assert (await place(uow, gate, "fifth")).status == 202
    ticker.now = 2.0  # now five in flight, four of them late: refused
    with pytest.raises(CheckoutBusyError):
        await place(uow, gate, "sixth")
    fresh = InMemoryOrdersUnitOfWork()
    busy = admission(Ticker(), floor=1)
    for n in range(30):  # a long line of orders that are all on time
        assert (await place(fresh, busy, f"k{n}", user=f"v{n}")).status == 202


async def test_settling_the_late_checkouts_opens_the_door_again() -> None:
    uow = InMemoryOrdersUnitOfWork()
    ticker = Ticker()
    gate = admission(ticker, floor=3)
    early = NOW - timedelta(seconds=10)
    late = [await place(uow, gate, f"k{n}", user=f"u{n}", at=early) for n in range(3)]
    ticker.now = 10.0
    with pytest.raises(CheckoutBusyError):
        await place(uow, gate, "next")
    async with uow(write=True) as writer:
        for response in late:
            order = await writer.orders.get(response.order_id)
            assert order is not None
            await writer.orders.save(order.confirm(NOW))
        await writer.commit()
    ticker.now = 10.0 + gate.refresh  # the next read sees them settled
    assert (await place(uow, gate, "next")).status == 202
