"""Catalog's message contracts: the events it publishes (adapters/messages.py builds them).

Served as AsyncAPI at `GET /asyncapi.json`; docs/events.md is generated from them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from catalog.adapters.messages import PRODUCT_CREATED, PRODUCT_PRICE_CHANGED
from catalog.entrypoints.api import CategorySlug, Name, Sku
from chassis import Money
from chassis.messaging import MessageContracts, Published

__all__ = ["CONTRACTS", "ProductCreatedV1", "ProductPriceChangedV1"]

ProductId = Annotated[str, Field(min_length=1, max_length=64)]


class ProductCreatedV1(BaseModel):
    """A product was added to the catalog."""

    product_id: ProductId
    sku: Sku
    name: Name
    category: CategorySlug
    price: Money


class ProductPriceChangedV1(BaseModel):
    """A product's price changed (other edits publish nothing)."""

    product_id: ProductId
    sku: Sku
    old_price: Money
    new_price: Money


_PRODUCT_ID = "5f0c7a2e-3b8d-4c61-9e57-1a2b3c4d5e6f"

CONTRACTS = MessageContracts(
    "catalog",
    publishes={
        PRODUCT_CREATED: Published(
            ProductCreatedV1,
            subject="product_id",
            example={
                "product_id": _PRODUCT_ID,
                "sku": "MUG-001",
                "name": "Stoneware mug",
                "category": "kitchen",
                "price": {"amount": 1290, "currency": "EUR"},
            },
        ),
        PRODUCT_PRICE_CHANGED: Published(
            ProductPriceChangedV1,
            subject="product_id",
            example={
                "product_id": _PRODUCT_ID,
                "sku": "MUG-001",
                "old_price": {"amount": 1290, "currency": "EUR"},
                "new_price": {"amount": 990, "currency": "EUR"},
            },
        ),
    },
)
