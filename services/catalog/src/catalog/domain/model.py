"""Products and categories, and the rules that keep them sane."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

__all__ = ["EDITABLE", "Category", "Price", "Product", "category_name", "new_product"]

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Price:
    amount: int  # integer minor units
    currency: str


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    product_count: int = 0


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    name: str
    description: str
    category: str
    price: Price
    image_url: str | None
    created_at: datetime
    updated_at: datetime

    def apply(self, changes: Mapping[str, object], *, now: datetime) -> Product:
        """This product with `changes` (a subset of EDITABLE) applied; itself if none."""
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if all(getattr(self, key) == value for key, value in changes.items()):
            return self
        return replace(self, **changes, updated_at=now)  # type: ignore[arg-type]


EDITABLE = frozenset({"name", "description", "category", "price", "image_url"})


def new_product(
    *,
    sku: str,
    name: str,
    description: str,
    category: str,
    price: Price,
    image_url: str | None,
    now: datetime | None = None,
) -> Product:
    moment = now or datetime.now(UTC)
    return Product(
        id=str(uuid.uuid4()),
        sku=sku,
        name=name,
        description=description,
        category=category,
        price=price,
        image_url=image_url,
        created_at=moment,
        updated_at=moment,
    )


def category_name(slug: str) -> str:
    """A display name for a category first seen by its slug: `home-garden` → `Home Garden`."""
    return " ".join(part.capitalize() for part in slug.split("-"))
