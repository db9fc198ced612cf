"""Orders and their life: PENDING until the checkout saga settles, then CONFIRMED or
REJECTED; CANCELLED by the customer (deferred while PENDING, choreographed once CONFIRMED)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from orders.errors import (
    DuplicateProductError,
    MixedCurrencyError,
    OrderNotCancellableError,
    OrderTooLargeError,
    UnknownProductError,
)

__all__ = [
    "MAX_LINES",
    "MAX_QUANTITY",
    "MAX_TOTAL",
    "Cancellation",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Price",
    "ProductSnapshot",
    "Reason",
    "RequestedLine",
    "new_order",
]

MAX_LINES = 50
MAX_QUANTITY = 100
MAX_TOTAL = 10**12  # the most a Money amount may be (chassis.Money)


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class Cancellation(StrEnum):
    """Where a customer's cancellation request stands (None: never asked)."""

    REQUESTED = "requested"  # PENDING: applied when the saga settles; CONFIRMED: refunding
    REFUND_FAILED = "refund_failed"  # CONFIRMED stays; the customer may ask again


class Reason(StrEnum):
    """Why an order did not go ahead."""

    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_DECLINED = "payment_declined"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Price:
    amount: int  # integer minor units
    currency: str

    def times(self, quantity: int) -> Price:
        return Price(self.amount * quantity, self.currency)


@dataclass(frozen=True)
class ProductSnapshot:
    """What catalog said about a product at order time."""

    id: str
    sku: str
    name: str
    price: Price


@dataclass(frozen=True)
class RequestedLine:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price: Price


@dataclass(frozen=True)
class Order:
    id: str
    user_id: str
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    total: Price
    reason: str | None
    cancellation: Cancellation | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    checkout_completed: bool = False  # captured and committed: nothing of the saga is left

    def _moved(self, now: datetime, **changes: object) -> Order:
        return replace(self, **changes, updated_at=max(now, self.updated_at))  # type: ignore[arg-type]

    @property
    def cancel_requested(self) -> bool:
        return self.cancellation is Cancellation.REQUESTED

    def confirm(self, now: datetime) -> Order:
        """The checkout's pivot: only a PENDING order nobody asked to cancel is confirmed."""
        if self.status is not OrderStatus.PENDING or self.cancel_requested:
            raise ValueError(f"order {self.id} is {self.status} and cannot be confirmed")
        return self._moved(now, status=OrderStatus.CONFIRMED)

    def reject(self, reason: str, now: datetime) -> Order:
        if self.status is not OrderStatus.PENDING:
            raise ValueError(f"order {self.id} is {self.status} and cannot be rejected")
        return self._moved(now, status=OrderStatus.REJECTED, reason=reason)

    def cancel(self, now: datetime) -> Order:
        """Cancelled for good: a PENDING one whose checkout was undone, or a CONFIRMED one
        whose refund and restock went through."""
        if self.status not in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
            raise ValueError(f"order {self.id} is {self.status} and cannot be cancelled")
        return self._moved(
            now, status=OrderStatus.CANCELLED, reason=Reason.CANCELLED.value, cancellation=None
        )

    def request_cancellation(self, now: datetime) -> tuple[Order, bool]:
        """The order with the request noted, and whether to ask payments for a refund now.

        PENDING: noted; the checkout saga compensates instead of confirming. CONFIRMED: a
        refund is asked for (again, if the last one failed) once the checkout has completed,
        so a refund never races the capture. Asking twice changes nothing."""
        if self.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            raise OrderNotCancellableError(self.status.value)
        if self.cancellation is Cancellation.REQUESTED:
            return self, False
        moved = self._moved(now, cancellation=Cancellation.REQUESTED)
        return moved, self.status is OrderStatus.CONFIRMED and self.checkout_completed

    def complete_checkout(self, now: datetime) -> tuple[Order, bool]:
        """Payment captured and stock committed; and whether a refund is now to be asked for
        (the customer asked to cancel while the checkout was finishing)."""
        if self.checkout_completed:
            return self, False
        moved = self._moved(now, checkout_completed=True)
        return moved, self.status is OrderStatus.CONFIRMED and self.cancel_requested

    def refund_failed(self, now: datetime) -> Order:
        if self.status is not OrderStatus.CONFIRMED:
            return self
        return self._moved(now, cancellation=Cancellation.REFUND_FAILED)


def check_lines(requested: Sequence[RequestedLine]) -> None:
    """Rules a request must meet before anyone is asked for prices."""
    if not 1 <= len(requested) <= MAX_LINES:
        raise ValueError(f"an order has 1 to {MAX_LINES} lines")
    for line in requested:
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise ValueError(f"a quantity is 1 to {MAX_QUANTITY}")
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for index, line in enumerate(requested):
        positions[line.product_id].append(index)
    repeated = [
        (index, product_id)
        for product_id, indexes in positions.items()
        if len(indexes) > 1
        for index in indexes
    ]
    if repeated:
        raise DuplicateProductError(repeated)


def new_order(
    *,
    user_id: str,
    requested: Sequence[RequestedLine],
    products: Mapping[str, ProductSnapshot],
    now: datetime | None = None,
    order_id: str | None = None,
) -> Order:
    """A PENDING order priced from `products` (catalog's answer, by product id)."""
    check_lines(requested)
    unknown = [
        (index, line.product_id)
        for index, line in enumerate(requested)
        if line.product_id not in products
    ]
    if unknown:
        raise UnknownProductError(unknown)
    lines = tuple(
        OrderLine(
            product_id=line.product_id,
            sku=products[line.product_id].sku,
            name=products[line.product_id].name,
            quantity=line.quantity,
            unit_price=products[line.product_id].price,
        )
        for line in requested
    )
    currencies = [line.unit_price.currency for line in lines]
    if len(set(currencies)) > 1:
        raise MixedCurrencyError(currencies)
    amount = sum(line.unit_price.amount * line.quantity for line in lines)
    if amount > MAX_TOTAL:
        raise OrderTooLargeError(f"the total may not exceed {MAX_TOTAL} minor units")
    moment = now or datetime.now(UTC)
    return Order(
        id=order_id or str(uuid.uuid4()),
        user_id=user_id,
        status=OrderStatus.PENDING,
        lines=lines,
        total=Price(amount, currencies[0]),
        reason=None,
        cancellation=None,
        created_at=moment,
        updated_at=moment,
    )
