"""The messages orders publishes, and their data (docs/events.md is the contract)."""

from __future__ import annotations

from typing import Any

from orders.domain.model import Order, Price

__all__ = [
    "ORDER_CANCELLATION_REQUESTED",
    "ORDER_CANCELLED",
    "ORDER_CONFIRMED",
    "ORDER_REJECTED",
    "cancellation_requested",
    "money",
    "order_cancelled",
    "order_confirmed",
    "order_rejected",
]

ORDER_CONFIRMED = "orders.order.confirmed.v1"
ORDER_REJECTED = "orders.order.rejected.v1"
ORDER_CANCELLED = "orders.order.cancelled.v1"
ORDER_CANCELLATION_REQUESTED = "orders.order.cancellation_requested.v1"


def money(price: Price) -> dict[str, Any]:
    return {"amount": price.amount, "currency": price.currency}


def _order(order: Order) -> dict[str, Any]:
    return {"order_id": order.id, "user_id": order.user_id, "total": money(order.total)}


def order_confirmed(order: Order) -> dict[str, Any]:
    return _order(order)


def order_rejected(order: Order) -> dict[str, Any]:
    return {**_order(order), "reason": order.reason}


def order_cancelled(order: Order) -> dict[str, Any]:
    return _order(order)


def cancellation_requested(order: Order) -> dict[str, Any]:
    lines = [{"sku": line.sku, "quantity": line.quantity} for line in order.lines]
    return {**_order(order), "lines": lines}
