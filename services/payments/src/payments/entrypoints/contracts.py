"""Payments' message contracts: the saga's payment commands and the cancellation event it
consumes (with its own schemas of them, entrypoints/consumers.py), and the replies and events
it publishes (service_layer/messages.py builds them).

Served as AsyncAPI at `GET /asyncapi.json`; docs/events.md is generated from them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from chassis import Money
from chassis.messaging import MessageContracts, Published
from payments.entrypoints.consumers import AuthorizePaymentV1, OrderCommandV1, OrderId
from payments.service_layer import messages

__all__ = [
    "CONTRACTS",
    "PaymentAuthorizedV1",
    "PaymentCapturedV1",
    "PaymentDeclinedV1",
    "PaymentRefundFailedV1",
    "PaymentRefundedV1",
    "PaymentVoidedV1",
]

Reason = Annotated[str, Field(min_length=1)]


class PaymentAuthorizedV1(BaseModel):
    """The order's total is authorized (held on the customer's card)."""

    order_id: OrderId
    payment_id: Annotated[str, Field(min_length=1, max_length=64)]
    amount: Money


class PaymentDeclinedV1(BaseModel):
    """No authorization: `reason` is `card_declined`, `insufficient_funds`, `invalid_token`
    or `processing_error`."""

    order_id: OrderId
    reason: Reason


class PaymentVoidedV1(BaseModel):
    """The order's authorization is released (or there was none to release)."""

    order_id: OrderId


class PaymentCapturedV1(BaseModel):
    """The authorized amount was taken."""

    order_id: OrderId
    amount: Money


class PaymentRefundedV1(BaseModel):
    """A cancelled order's payment was given back."""

    order_id: OrderId
    amount: Money


class PaymentRefundFailedV1(BaseModel):
    """A cancelled order could not be refunded (`payment_not_found`, or the psp's reason)."""

    order_id: OrderId
    reason: Reason


_ORDER_ID = "3c9a1f4e-7d2b-4e8f-a6c5-0b1d2e3f4a5b"
_AMOUNT = {"amount": 2580, "currency": "EUR"}

CONTRACTS = MessageContracts(
    "payments",
    publishes={
        messages.PAYMENT_AUTHORIZED: Published(
            PaymentAuthorizedV1,
            subject="order_id",
            example={
                "order_id": _ORDER_ID,
                "payment_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
                "amount": _AMOUNT,
            },
        ),
        messages.PAYMENT_DECLINED: Published(
            PaymentDeclinedV1,
            subject="order_id",
            example={"order_id": _ORDER_ID, "reason": "card_declined"},
        ),
        messages.PAYMENT_VOIDED: Published(
            PaymentVoidedV1, subject="order_id", example={"order_id": _ORDER_ID}
        ),
        messages.PAYMENT_CAPTURED: Published(
            PaymentCapturedV1,
            subject="order_id",
            example={"order_id": _ORDER_ID, "amount": _AMOUNT},
        ),
        messages.PAYMENT_REFUNDED: Published(
            PaymentRefundedV1,
            subject="order_id",
            example={"order_id": _ORDER_ID, "amount": _AMOUNT},
        ),
        messages.PAYMENT_REFUND_FAILED: Published(
            PaymentRefundFailedV1,
            subject="order_id",
            example={"order_id": _ORDER_ID, "reason": "payment_not_found"},
        ),
    },
    consumes={
        messages.AUTHORIZE_PAYMENT: AuthorizePaymentV1,
        messages.VOID_PAYMENT: OrderCommandV1,
        messages.CAPTURE_PAYMENT: OrderCommandV1,
        messages.ORDER_CANCELLATION_REQUESTED: OrderCommandV1,
    },
)
