"""Orders' use cases: plain functions over a unit of work (or an open transaction)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from orders.domain import events
from orders.domain.idempotency import IdempotencyRecord, StoredResponse
from orders.domain.model import Order, OrderStatus, RequestedLine, check_lines, new_order
from orders.errors import OrderChangedError, OrderNotFoundError, TooManyPendingOrdersError
from orders.service_layer.admission import CheckoutAdmission
from orders.service_layer.ports import Catalog, OrdersUnitOfWork, OrderTransaction


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work; `write=True` for one that will write (SQLite locks up front)."""

    def __call__(self, *, write: bool = False) -> OrdersUnitOfWork: ...


Render = Callable[[Order], bytes]

_CANCEL_ATTEMPTS = 3


async def place_order(
    uow: UnitOfWorkFactory,
    catalog: Catalog,
    *,
    user_id: str,
    idempotency_key: str,
    request_fingerprint: str,
    lines: Sequence[RequestedLine],
    payment_token: str,
    render: Render,
    max_pending: int,
    retry_after: int,
    now: datetime,
    admission: CheckoutAdmission | None = None,
) -> StoredResponse:
    """Price the lines at catalog, store the order PENDING and start its checkout, once per
    idempotency key: a repeat of the same request gets the first response back."""
    async with uow() as reader:
        known = await reader.idempotency.get(user_id, idempotency_key)
    if known is not None:
        return known.replay(request_fingerprint)
    check_lines(lines)  # before asking catalog anything
    if admission is not None:  # after the replay: an accepted order is answered again
        await admission.admit(uow, now=now)
    products = await catalog.products(list(dict.fromkeys(line.product_id for line in lines)))
    order = new_order(user_id=user_id, requested=lines, products=products, now=now)
    async with uow(write=True) as writer:
        await writer.lock_user(user_id)
        known = await writer.idempotency.get(user_id, idempotency_key)
        if known is not None:  # a twin of this request won the race
            return known.replay(request_fingerprint)
        if await writer.orders.count_pending(user_id) >= max_pending:
            raise TooManyPendingOrdersError(max_pending, retry_after)
        await writer.orders.add(order)
        await writer.start_checkout(order, payment_token)
        response = StoredResponse(202, render(order), order.id)
        await writer.idempotency.add(
            IdempotencyRecord(user_id, idempotency_key, request_fingerprint, response, now)
        )
        await writer.commit()
    return response


async def get_order(uow: UnitOfWorkFactory, *, user_id: str, order_id: str) -> Order:
    async with uow() as reader:
        order = await reader.orders.get(order_id)
    if order is None or order.user_id != user_id:  # another's order does not exist for you
        raise OrderNotFoundError(order_id)
    return order


async def list_orders(
    uow: UnitOfWorkFactory,
    *,
    user_id: str,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[Order], Order | None]:
    """A page of the user's orders, newest first, and its last one when more follow."""
    async with uow() as reader:
        rows = await reader.orders.list_for_user(user_id, limit=limit + 1, after=after)
    if len(rows) > limit:
        page = rows[:limit]
        return page, page[-1]
    return rows, None


async def cancel_order(
    uow: UnitOfWorkFactory, *, user_id: str, order_id: str, now: datetime
) -> Order:
    """Ask to cancel: a PENDING order is cancelled when its checkout settles (compensated
    rather than confirmed); a CONFIRMED one asks payments for a refund, and inventory
    restocks once refunded (choreography). Rejected and cancelled orders refuse."""
    for attempt in range(_CANCEL_ATTEMPTS):
        try:
            async with uow(write=True) as writer:
                order = await writer.orders.get(order_id)
                if order is None or order.user_id != user_id:
                    raise OrderNotFoundError(order_id)
                asked, ask_for_refund = order.request_cancellation(now)
                if asked is order:
                    return order
                stored = await writer.orders.save(asked)
                if ask_for_refund:
                    await writer.publish(
                        events.ORDER_CANCELLATION_REQUESTED,
                        order.id,
                        events.cancellation_requested(stored),
                    )
                await writer.commit()
                return stored
        except OrderChangedError:
            if attempt == _CANCEL_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def all_orders(uow: UnitOfWorkFactory) -> list[Order]:
    async with uow() as reader:
        return await reader.orders.all()


async def forget_idempotency_keys(uow: UnitOfWorkFactory, *, ttl: float, now: datetime) -> int:
    async with uow(write=True) as writer:
        removed = await writer.idempotency.delete_older_than(now - timedelta(seconds=ttl))
        await writer.commit()
    return removed


# -- what other services tell orders (choreography) -------------------------------------------


async def stock_released(
    tx: OrderTransaction, *, order_id: str, reason: str, now: datetime
) -> None:
    """Inventory restocked a refunded order (reason "cancelled"): the cancellation is done.

    Releases for other reasons are a checkout's compensation, which the saga follows."""
    if reason != "cancelled":
        return
    order = await tx.orders.get(order_id)
    if order is None or order.status is not OrderStatus.CONFIRMED:
        return
    cancelled = await tx.orders.save(order.cancel(now))
    await tx.publish(events.ORDER_CANCELLED, order.id, events.order_cancelled(cancelled))


async def refund_failed(tx: OrderTransaction, *, order_id: str, now: datetime) -> None:
    """Payments could not refund: the order stays CONFIRMED, flagged; asking again retries."""
    order = await tx.orders.get(order_id)
    if order is None:
        return
    flagged = order.refund_failed(now)
    if flagged is not order:
        await tx.orders.save(flagged)
