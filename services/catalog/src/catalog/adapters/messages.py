"""Catalog's published messages: domain events → envelopes (contracts in docs/events.md)."""

from __future__ import annotations

from typing import Any

from catalog.domain.events import CatalogEvent, ProductCreated
from catalog.domain.model import Price
from chassis.messaging import Envelope

SOURCE = "catalog"
PRODUCT_CREATED = "catalog.product.created.v1"
PRODUCT_PRICE_CHANGED = "catalog.product.price_changed.v1"


def _money(price: Price) -> dict[str, Any]:
    return {"amount": price.amount, "currency": price.currency}


def to_envelope(event: CatalogEvent) -> Envelope:
    product = event.product
    if isinstance(event, ProductCreated):
        data = {
            "product_id": product.id,
            "sku": product.sku,
            "name": product.name,
            "category": product.category,
            "price": _money(product.price),
        }
        return Envelope(type=PRODUCT_CREATED, source=SOURCE, subject=product.id, data=data)
    data = {
        "product_id": product.id,
        "sku": product.sku,
        "old_price": _money(event.old_price),
        "new_price": _money(product.price),
    }
    return Envelope(type=PRODUCT_PRICE_CHANGED, source=SOURCE, subject=product.id, data=data)
