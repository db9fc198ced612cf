"""The messages payments consumes and publishes (docs/events.md), by type, and its replies."""

from __future__ import annotations

from payments.domain.model import Cause, Payment
from payments.service_layer.ports import Message

AUTHORIZE_PAYMENT = "payments.authorize_payment.v1"
VOID_PAYMENT = "payments.void_payment.v1"
CAPTURE_PAYMENT = "payments.capture_payment.v1"
ORDER_CANCELLATION_REQUESTED = "orders.order.cancellation_requested.v1"

PAYMENT_AUTHORIZED = "payments.payment.authorized.v1"
PAYMENT_DECLINED = "payments.payment.declined.v1"
PAYMENT_VOIDED = "payments.payment.voided.v1"
PAYMENT_CAPTURED = "payments.payment.captured.v1"
PAYMENT_REFUNDED = "payments.payment.refunded.v1"
PAYMENT_REFUND_FAILED = "payments.payment.refund_failed.v1"

CONSUMED = (AUTHORIZE_PAYMENT, VOID_PAYMENT, CAPTURE_PAYMENT, ORDER_CANCELLATION_REQUESTED)

# Reasons a declined reply carries; anything else the psp refuses is a processing error.
DECLINE_REASONS = frozenset({"card_declined", "insufficient_funds", "invalid_token"})


def _money(amount: int, currency: str) -> dict[str, object]:
    return {"amount": amount, "currency": currency}


def authorized(payment: Payment, cause: Cause | None) -> Message:
    data = {
        "order_id": payment.order_id,
        "payment_id": payment.id,
        "amount": _money(payment.authorized_amount, payment.currency),
    }
    return Message(PAYMENT_AUTHORIZED, payment.order_id, data, cause)


def declined(payment: Payment, reason: str, cause: Cause | None) -> Message:
    return Message(
        PAYMENT_DECLINED, payment.order_id, {"order_id": payment.order_id, "reason": reason}, cause
    )


def voided(order_id: str, cause: Cause | None) -> Message:
    return Message(PAYMENT_VOIDED, order_id, {"order_id": order_id}, cause)


def captured(payment: Payment, amount: int, cause: Cause | None) -> Message:
    data = {"order_id": payment.order_id, "amount": _money(amount, payment.currency)}
    return Message(PAYMENT_CAPTURED, payment.order_id, data, cause)


def refunded(payment: Payment, amount: int, cause: Cause | None) -> Message:
    data = {"order_id": payment.order_id, "amount": _money(amount, payment.currency)}
    return Message(PAYMENT_REFUNDED, payment.order_id, data, cause)


def refund_failed(order_id: str, reason: str, cause: Cause | None) -> Message:
    return Message(PAYMENT_REFUND_FAILED, order_id, {"order_id": order_id, "reason": reason}, cause)
