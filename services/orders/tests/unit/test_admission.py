"""Checkout admission (load shedding) on in-memory fakes: Little's law, the floor, replays."""

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


def admission(ticker: Ticker, *, floor: int = 3, target_wait: float = 5.0) -> CheckoutAdmission:
    return CheckoutAdmission(
        target_wait=target_wait, floor=floor, horizon=60, window=10, refresh=0.5,
        monotonic=ticker,
    )  # fmt: skip


async def place(
    uow: InMemoryOrdersUnitOfWork, gate: CheckoutAdmission, key: str, *, user: str = "alice",
    now: datetime = NOW,
) -> handlers.StoredResponse:  # type: ignore[name-defined]  # fmt: skip
    return await handlers.place_order(
        uow, FakeCatalog([MUG]), user_id=user, idempotency_key=key, request_fingerprint="f",
        lines=[RequestedLine("p-mug", 1)], payment_token="tok_visa",
        render=lambda order: order.id.encode(), max_pending=1000, retry_after=7, now=now,
        admission=gate,
    )  # fmt: skip


def test_the_limit_is_what_the_sagas_finish_in_the_target_wait_never_below_the_floor() -> None:
    gate = admission(Ticker(), floor=3)
    assert gate.limit(CheckoutLoad(pending=0, settled=0)) == 3  # cold start: the floor
    assert gate.limit(CheckoutLoad(pending=0, settled=40)) == 20  # 4/s for 5 s
    assert gate.limit(CheckoutLoad(pending=0, settled=2)) == 3


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CheckoutAdmission(target_wait=0, floor=1, horizon=60)
    with pytest.raises(ValueError):
        CheckoutAdmission(target_wait=5, floor=0, horizon=60)


async def test_orders_past_the_limit_are_refused_at_once_and_replays_still_answered() -> None:
    uow = InMemoryOrdersUnitOfWork()
    ticker = Ticker()
    gate = admission(ticker, floor=3)
    accepted = [await place(uow, gate, f"k{n}") for n in range(3)]  # counted between reads
    with pytest.raises(CheckoutBusyError) as refused:
        await place(uow, gate, "k3")
    assert refused.value.retry_after >= 1
    assert len(uow.committed.orders) == 3  # the refused one was not ordered
    replay = await place(uow, gate, "k0")  # an accepted order's retry is answered, not shed
    assert replay.replayed and replay.order_id == accepted[0].order_id
    ticker.now = 1.0  # the next read still sees 3 PENDING: still refused
    with pytest.raises(CheckoutBusyError):
        await place(uow, gate, "k4")


async def test_settling_checkouts_open_the_gate_again() -> None:
    uow = InMemoryOrdersUnitOfWork()
    ticker = Ticker()
    gate = admission(ticker, floor=2)
    first = [await place(uow, gate, f"k{n}") for n in range(2)]
    with pytest.raises(CheckoutBusyError):
        await place(uow, gate, "k2")
    later = NOW + timedelta(seconds=2)
    async with uow(write=True) as writer:
        for response in first:
            order = await writer.orders.get(response.order_id)
            assert order is not None
            await writer.orders.save(order.confirm(later))
        await writer.commit()
    ticker.now = 2.0
    assert (await place(uow, gate, "k2", now=later)).status == 202


async def test_throughput_raises_the_limit_above_the_floor() -> None:
    uow = InMemoryOrdersUnitOfWork()
    ticker = Ticker()
    gate = admission(ticker, floor=1, target_wait=5.0)
    # 10 orders finished in the last 10 s: 1/s, so 5 may be in flight
    done = [await place(uow, gate, f"old{n}", user=f"u{n}") for n in range(1)]
    async with uow(write=True) as writer:
        for response in done:
            order = await writer.orders.get(response.order_id)
            assert order is not None
            await writer.orders.save(order.reject("out_of_stock", NOW))
        await writer.commit()
    for n in range(9):
        ticker.now += 1
        response = await place(uow, gate, f"more{n}", user=f"v{n}")
        async with uow(write=True) as writer:
            order = await writer.orders.get(response.order_id)
            assert order is not None
            await writer.orders.save(order.reject("out_of_stock", NOW))
            await writer.commit()
    ticker.now += 1
    for n in range(5):
        assert (await place(uow, gate, f"new{n}", user=f"w{n}")).status == 202
    with pytest.raises(CheckoutBusyError):
        await place(uow, gate, "new5", user="w5")
