"""What happened to the catalog, as domain events (published through the outbox)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.domain.model import Price, Product


@dataclass(frozen=True)
class ProductCreated:
    product: Product


@dataclass(frozen=True)
class ProductPriceChanged:
    product: Product
    old_price: Price


CatalogEvent = ProductCreated | ProductPriceChanged
