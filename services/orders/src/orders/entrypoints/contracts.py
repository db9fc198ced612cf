"""Orders' message contracts: the checkout saga's commands and the order events it publishes
(service_layer/checkout.py, domain/events.py), and the replies and choreography events it
consumes (entrypoints/messages.py).

Saga replies are matched to the order by the envelope subject; their schemas here name the
fields the saga reads (the failure `reason`) or keeps in its data (shown by the saga
console). Served as AsyncAPI at `GET /asyncapi.json`; docs/events.md is generated from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from chassis import Money
from chassis.messaging import MessageContracts, Published
from orders.domain import events
from orders.domain.model import MAX_LINES
from orders.entrypoints.api import Quantity
from orders.entrypoints.messages import REFUND_FAILED, RefundFailed, StockReleased
from orders.service_layer import checkout

__all__ = ["CONTRACTS"]

OrderId = Annotated[str, Field(min_length=1, max_length=64)]
UserId = Annotated[str, Field(min_length=1, max_length=64)]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
Reason = Annotated[str, Field(min_length=1, max_length=200)]


class LineV1(BaseModel):
    sku: Sku
    quantity: Quantity


# -- published: the saga's commands -----------------------------------------------------------


class ForOrderV1(BaseModel):
    order_id: OrderId


class ReserveStockV1(ForOrderV1):
    """Hold every line for the order, or nothing."""

    lines: Annotated[list[LineV1], Field(min_length=1, max_length=MAX_LINES)]


class ReleaseStockV1(ForOrderV1):
    """Undo the order's reservation (compensation)."""


class CommitStockV1(ForOrderV1):
    """Turn the order's reservation into a sale."""


class AuthorizePaymentV1(ForOrderV1):
    """Authorize the order's total on the customer's payment token."""

    user_id: UserId
    amount: Money
    payment_token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class VoidPaymentV1(ForOrderV1):
    """Undo the order's authorization (compensation)."""


class CapturePaymentV1(ForOrderV1):
    """Capture the order's authorized payment."""


# -- published: what happened to an order -----------------------------------------------------


class OrderEventV1(ForOrderV1):
    user_id: UserId
    total: Money


class OrderConfirmedV1(OrderEventV1):
    """The checkout passed its pivot: stock reserved, payment authorized."""


class OrderRejectedV1(OrderEventV1):
    """The checkout was undone: `reason` is `out_of_stock`, `payment_declined` or `timeout`
    (or the reason of the step that failed)."""

    reason: Reason


class OrderCancelledV1(OrderEventV1):
    """The order is cancelled for good (undone before the pivot, or refunded after it)."""


class OrderCancellationRequestedV1(OrderEventV1):
    """The customer cancelled a confirmed order: refund it, then restock its lines."""

    lines: Annotated[list[LineV1], Field(min_length=1, max_length=MAX_LINES)]


# -- consumed: the saga's replies, as the saga reads them --------------------------------------


class SagaReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order_id: OrderId


class StockReservedReply(SagaReply):
    reservation_id: str
    expires_at: str


class PaymentAuthorizedReply(SagaReply):
    payment_id: str


class Refusal(SagaReply):
    """A failure reply: its `reason` becomes the saga's failure reason."""

    reason: str


_ORDER_ID = "3c9a1f4e-7d2b-4e8f-a6c5-0b1d2e3f4a5b"
_USER_ID = "8d3e2f1a-6b7c-4d5e-8f90-a1b2c3d4e5f6"
_TOTAL: dict[str, Any] = {"amount": 2580, "currency": "EUR"}
_LINES: list[dict[str, Any]] = [{"sku": "MUG-001", "quantity": 2}]
_FOR_ORDER: dict[str, Any] = {"order_id": _ORDER_ID}
_ORDER: dict[str, Any] = {**_FOR_ORDER, "user_id": _USER_ID, "total": _TOTAL}


def _published(model: type[BaseModel], example: Mapping[str, Any]) -> Published:
    return Published(model, subject="order_id", example=example)


CONTRACTS = MessageContracts(
    "orders",
    publishes={
        checkout.RESERVE_STOCK: _published(ReserveStockV1, {**_FOR_ORDER, "lines": _LINES}),
        checkout.RELEASE_STOCK: _published(ReleaseStockV1, _FOR_ORDER),
        checkout.COMMIT_STOCK: _published(CommitStockV1, _FOR_ORDER),
        checkout.AUTHORIZE_PAYMENT: _published(
            AuthorizePaymentV1,
            {**_FOR_ORDER, "user_id": _USER_ID, "amount": _TOTAL, "payment_token": "tok_visa"},
        ),
        checkout.VOID_PAYMENT: _published(VoidPaymentV1, _FOR_ORDER),
        checkout.CAPTURE_PAYMENT: _published(CapturePaymentV1, _FOR_ORDER),
        events.ORDER_CONFIRMED: _published(OrderConfirmedV1, _ORDER),
        events.ORDER_REJECTED: _published(OrderRejectedV1, {**_ORDER, "reason": "out_of_stock"}),
        events.ORDER_CANCELLED: _published(OrderCancelledV1, _ORDER),
        events.ORDER_CANCELLATION_REQUESTED: _published(
            OrderCancellationRequestedV1, {**_ORDER, "lines": _LINES}
        ),
    },
    consumes={
        checkout.STOCK_RESERVED: StockReservedReply,
        checkout.STOCK_RESERVATION_FAILED: Refusal,
        checkout.STOCK_RELEASED: StockReleased,
        checkout.STOCK_COMMITTED: SagaReply,
        checkout.PAYMENT_AUTHORIZED: PaymentAuthorizedReply,
        checkout.PAYMENT_DECLINED: Refusal,
        checkout.PAYMENT_VOIDED: SagaReply,
        checkout.PAYMENT_CAPTURED: SagaReply,
        REFUND_FAILED: RefundFailed,
    },
)
