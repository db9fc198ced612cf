"""Orders' use cases on in-memory fakes: idempotency-key semantics, limits, cancellation."""

from datetime import UTC, datetime, timedelta

import pytest

from orders.adapters.memory import FakeCatalog, InMemoryOrdersUnitOfWork
from orders.domain.model import Cancellation, OrderStatus, Price, ProductSnapshot, RequestedLine
from orders.errors import (
    CatalogUnavailableError,
    DuplicateProductError,
    IdempotencyKeyReusedError,
    OrderNotCancellableError,
    OrderNotFoundError,
    TooManyPendingOrdersError,
    UnknownProductError,
)
from orders.service_layer import handlers

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
MUG = ProductSnapshot("p-mug", "MUG-001", "Mug", Price(1490, "EUR"))
TEA = ProductSnapshot("p-tea", "TEA-042", "Tea", Price(850, "EUR"))


def render(order: object) -> bytes:
    return f"order {order.id} {order.total.amount}".encode()  # type: ignore[attr-defined]


async def place(
    uow: InMemoryOrdersUnitOfWork,
    catalog: FakeCatalog,
    *,
    key: str = "k1",
    user: str = "alice",
    lines: tuple[tuple[str, int], ...] = (("p-mug", 2),),
    token: str = "tok_visa",  # noqa: S107
    fingerprint: str | None = None,
    max_pending: int = 20,
    now: datetime = NOW,
) -> handlers.StoredResponse:  # type: ignore[name-defined]
    return await handlers.place_order(
        uow,
        catalog,
        user_id=user,
        idempotency_key=key,
        request_fingerprint=fingerprint or f"{lines}{token}",
        lines=[RequestedLine(p, q) for p, q in lines],
        payment_token=token,
        render=render,
        max_pending=max_pending,
        retry_after=7,
        now=now,
    )


@pytest.fixture
def uow() -> InMemoryOrdersUnitOfWork:
    return InMemoryOrdersUnitOfWork()


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog([MUG, TEA])


async def test_placing_stores_the_order_starts_its_checkout_and_remembers_the_key(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    response = await place(uow, catalog)
    assert response.status == 202 and not response.replayed
    order = uow.committed.orders[response.order_id]
    assert order.status is OrderStatus.PENDING and order.total == Price(2980, "EUR")
    assert response.body == f"order {order.id} 2980".encode()
    assert uow.checkouts == [(order.id, "tok_visa")]
    assert uow.commits == 1


async def test_the_same_key_and_request_replays_the_first_answer(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    first = await place(uow, catalog)
    catalog.known["p-mug"] = ProductSnapshot("p-mug", "MUG-001", "Mug", Price(1, "EUR"))
    again = await place(uow, catalog)
    assert (again.status, again.body, again.order_id) == (first.status, first.body, first.order_id)
    assert again.replayed
    assert len(uow.committed.orders) == 1 and len(uow.checkouts) == 1
    assert len(catalog.calls) == 1  # a replay never asks catalog again


async def test_the_same_key_with_another_request_is_refused(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    await place(uow, catalog)
    with pytest.raises(IdempotencyKeyReusedError):
        await place(uow, catalog, lines=(("p-tea", 1),))
    assert len(uow.committed.orders) == 1


async def test_keys_belong_to_one_user(uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog) -> None:
    mine = await place(uow, catalog, user="alice")
    theirs = await place(uow, catalog, user="bob")
    assert mine.order_id != theirs.order_id and not theirs.replayed


async def test_refused_requests_leave_the_key_free(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    catalog.available = False
    with pytest.raises(CatalogUnavailableError):
        await place(uow, catalog)
    catalog.available = True
    with pytest.raises(UnknownProductError):
        await place(uow, catalog, lines=(("p-nope", 1),), fingerprint="other")
    assert uow.committed.orders == {} and uow.committed.keys == {}
    assert (await place(uow, catalog)).status == 202  # the same key, now it works


async def test_duplicates_are_refused_before_catalog_is_asked(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    with pytest.raises(DuplicateProductError):
        await place(uow, catalog, lines=(("p-mug", 1), ("p-mug", 1)))
    assert catalog.calls == []


async def test_too_many_pending_orders_are_throttled(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    for n in range(3):
        await place(uow, catalog, key=f"k{n}", max_pending=3)
    with pytest.raises(TooManyPendingOrdersError) as throttled:
        await place(uow, catalog, key="k9", max_pending=3)
    assert throttled.value.retry_after == 7
    await place(uow, catalog, key="k9", user="bob", max_pending=3)  # others are not affected
    # a settled order frees a place
    some = next(o for o in uow.committed.orders.values() if o.user_id == "alice")
    uow.committed.orders[some.id] = some.reject("out_of_stock", NOW)
    await place(uow, catalog, key="k9", max_pending=3)


async def test_only_the_owner_sees_an_order(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    placed = await place(uow, catalog)
    order = await handlers.get_order(uow, user_id="alice", order_id=placed.order_id)
    assert order.id == placed.order_id
    with pytest.raises(OrderNotFoundError):
        await handlers.get_order(uow, user_id="bob", order_id=placed.order_id)
    with pytest.raises(OrderNotFoundError):
        await handlers.cancel_order(uow, user_id="bob", order_id=placed.order_id, now=NOW)


async def test_listing_pages_newest_first(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    for n in range(5):
        await place(uow, catalog, key=f"k{n}", now=NOW + timedelta(seconds=n))
    page, last = await handlers.list_orders(uow, user_id="alice", limit=2)
    assert [o.created_at.second for o in page] == [4, 3] and last is page[-1]
    assert last is not None
    rest, end = await handlers.list_orders(
        uow, user_id="alice", limit=5, after=(last.created_at, last.id)
    )
    assert [o.created_at.second for o in rest] == [2, 1, 0] and end is None
    assert (await handlers.list_orders(uow, user_id="bob", limit=5)) == ([], None)


async def test_cancelling_pending_marks_and_confirmed_asks_for_a_refund(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    placed = await place(uow, catalog)
    marked = await handlers.cancel_order(uow, user_id="alice", order_id=placed.order_id, now=NOW)
    assert marked.status is OrderStatus.PENDING and marked.cancellation is Cancellation.REQUESTED
    assert uow.published == []  # the saga compensates; nothing to announce yet

    other = await place(uow, catalog, key="k2")
    stored = uow.committed.orders[other.order_id]
    uow.committed.orders[other.order_id] = stored.confirm(NOW).complete_checkout(NOW)[0]
    asked = await handlers.cancel_order(uow, user_id="alice", order_id=other.order_id, now=NOW)
    assert asked.status is OrderStatus.CONFIRMED
    assert [(e.type, e.subject) for e in uow.published] == [
        ("orders.order.cancellation_requested.v1", other.order_id)
    ]
    assert uow.published[0].data == {
        "order_id": other.order_id,
        "user_id": "alice",
        "total": {"amount": 2980, "currency": "EUR"},
        "lines": [{"sku": "MUG-001", "quantity": 2}],
    }
    await handlers.cancel_order(uow, user_id="alice", order_id=other.order_id, now=NOW)
    assert len(uow.published) == 1  # asked once

    async with uow:  # payments could not refund; inventory never restocks
        await handlers.refund_failed(uow, order_id=other.order_id, now=NOW)
        await uow.commit()
    flagged = uow.committed.orders[other.order_id]
    assert flagged.cancellation is Cancellation.REFUND_FAILED
    await handlers.cancel_order(uow, user_id="alice", order_id=other.order_id, now=NOW)
    assert len(uow.published) == 2  # asking again retries the refund

    async with uow:  # refunded, then restocked: cancelled
        await handlers.stock_released(uow, order_id=other.order_id, reason="cancelled", now=NOW)
        await uow.commit()
    assert uow.committed.orders[other.order_id].status is OrderStatus.CANCELLED
    assert uow.published[-1].type == "orders.order.cancelled.v1"
    with pytest.raises(OrderNotCancellableError):
        await handlers.cancel_order(uow, user_id="alice", order_id=other.order_id, now=NOW)


async def test_a_release_that_is_not_a_cancellation_changes_nothing(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    placed = await place(uow, catalog)
    stored = uow.committed.orders[placed.order_id]
    uow.committed.orders[placed.order_id] = stored.confirm(NOW)
    async with uow:
        await handlers.stock_released(uow, order_id=placed.order_id, reason="expired", now=NOW)
        await handlers.stock_released(uow, order_id="unknown", reason="cancelled", now=NOW)
        await handlers.refund_failed(uow, order_id="unknown", now=NOW)
        await uow.commit()
    assert uow.committed.orders[placed.order_id].status is OrderStatus.CONFIRMED
    assert uow.published == []


async def test_old_idempotency_keys_are_forgotten(
    uow: InMemoryOrdersUnitOfWork, catalog: FakeCatalog
) -> None:
    await place(uow, catalog, key="old", now=NOW)
    await place(uow, catalog, key="new", now=NOW + timedelta(hours=23))
    removed = await handlers.forget_idempotency_keys(
        uow, ttl=86_400, now=NOW + timedelta(days=1, minutes=1)
    )
    assert removed == 1
    assert [key for _, key in uow.committed.keys] == ["new"]
