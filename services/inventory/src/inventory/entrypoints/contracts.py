"""Inventory's message contracts: the saga's commands and the events it consumes (with its
own schemas of them, entrypoints/messages.py), and the replies it publishes (`reply_of`).

Served as AsyncAPI at `GET /asyncapi.json`; docs/events.md is generated from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from chassis.messaging import MessageContracts, Published
from inventory.entrypoints.messages import (
    COMMIT_STOCK,
    PAYMENT_REFUNDED,
    PRODUCT_CREATED,
    RELEASE_STOCK,
    RESERVE_STOCK,
    STOCK_COMMITTED,
    STOCK_RELEASED,
    STOCK_RESERVATION_FAILED,
    STOCK_RESERVED,
    ForOrder,
    OrderId,
    ProductCreated,
    ReserveStock,
    Sku,
)

__all__ = [
    "CONTRACTS",
    "StockCommittedV1",
    "StockReleasedV1",
    "StockReservationFailedV1",
    "StockReservedV1",
]


class StockReservedV1(BaseModel):
    """Every line of the order is held until `expires_at`, unless committed before."""

    order_id: OrderId
    reservation_id: Annotated[str, Field(min_length=1, max_length=64)]
    expires_at: datetime


class StockReservationFailedV1(BaseModel):
    """Nothing was held: `reason` is `out_of_stock` or `unknown_sku` (`released` or `expired`
    when the command comes again after the reservation ended), `skus` the lines at fault."""

    order_id: OrderId
    reason: Annotated[str, Field(min_length=1, max_length=100)]
    skus: list[Sku]


class StockReleasedV1(BaseModel):
    """The order's units are back on the shelf: `reason` is `compensation` (the saga undid
    the reservation) or `cancelled` (a confirmed order was refunded)."""

    order_id: OrderId
    reason: Annotated[str, Field(min_length=1, max_length=100)]


class StockCommittedV1(BaseModel):
    """The reservation became a sale: the units left the stock for good."""

    order_id: OrderId


_ORDER_ID = "3c9a1f4e-7d2b-4e8f-a6c5-0b1d2e3f4a5b"

CONTRACTS = MessageContracts(
    "inventory",
    publishes={
        STOCK_RESERVED: Published(
            StockReservedV1,
            subject="order_id",
            example={
                "order_id": _ORDER_ID,
                "reservation_id": "e4d3c2b1-a098-4765-8321-0fedcba98765",
                "expires_at": "2026-01-01T12:15:00Z",
            },
        ),
        STOCK_RESERVATION_FAILED: Published(
            StockReservationFailedV1,
            subject="order_id",
            example={"order_id": _ORDER_ID, "reason": "out_of_stock", "skus": ["MUG-001"]},
        ),
        STOCK_RELEASED: Published(
            StockReleasedV1,
            subject="order_id",
            example={"order_id": _ORDER_ID, "reason": "cancelled"},
        ),
        STOCK_COMMITTED: Published(
            StockCommittedV1, subject="order_id", example={"order_id": _ORDER_ID}
        ),
    },
    consumes={
        PRODUCT_CREATED: ProductCreated,
        RESERVE_STOCK: ReserveStock,
        RELEASE_STOCK: ForOrder,
        COMMIT_STOCK: ForOrder,
        PAYMENT_REFUNDED: ForOrder,
    },
)
