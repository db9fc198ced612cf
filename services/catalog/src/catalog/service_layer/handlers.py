"""Catalog's use cases: plain functions over a unit of work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from catalog.domain.events import ProductCreated, ProductPriceChanged
from catalog.domain.model import Category, Price, Product, category_name, new_product
from catalog.errors import DuplicateSkuError, ProductNotFoundError
from catalog.service_layer.ports import CatalogUnitOfWork, ProductQuery

UnitOfWorkFactory = Callable[[], CatalogUnitOfWork]


async def create_product(
    uow: CatalogUnitOfWork,
    *,
    sku: str,
    name: str,
    description: str,
    category: str,
    price: Price,
    image_url: str | None,
) -> Product:
    async with uow:
        if await uow.products.get_by_sku(sku) is not None:
            raise DuplicateSkuError(f"a product with sku {sku!r} exists already", sku=sku)
        product = new_product(
            sku=sku,
            name=name,
            description=description,
            category=category,
            price=price,
            image_url=image_url,
        )
        await uow.products.ensure_category(category, category_name(category))
        await uow.products.add(product)
        uow.emit(ProductCreated(product))
        await uow.commit()
    return product


async def update_product(
    uow: CatalogUnitOfWork, product_id: str, changes: Mapping[str, Any]
) -> Product:
    async with uow:
        current = await uow.products.get(product_id)
        if current is None:
            raise ProductNotFoundError(f"no product with id {product_id}")
        updated = current.apply(changes, now=datetime.now(UTC))
        if updated is current:
            return current
        if "category" in changes:
            await uow.products.ensure_category(updated.category, category_name(updated.category))
        await uow.products.save(updated)
        if updated.price != current.price:
            uow.emit(ProductPriceChanged(updated, old_price=current.price))
        await uow.commit()
    return updated


async def get_product(uow: CatalogUnitOfWork, product_id: str) -> Product:
    async with uow:
        product = await uow.products.get(product_id)
    if product is None:
        raise ProductNotFoundError(f"no product with id {product_id}")
    return product


async def get_product_by_sku(uow: CatalogUnitOfWork, sku: str) -> Product:
    async with uow:
        product = await uow.products.get_by_sku(sku)
    if product is None:
        raise ProductNotFoundError(f"no product with sku {sku!r}")
    return product


async def list_products(
    uow: CatalogUnitOfWork, query: ProductQuery
) -> tuple[list[Product], Product | None]:
    """A page of products and the last one when more follow (to build the next cursor)."""
    async with uow:
        rows = await uow.products.find(
            ProductQuery(
                limit=query.limit + 1,
                sort=query.sort,
                category=query.category,
                text=query.text,
                after=query.after,
            )
        )
    if len(rows) > query.limit:
        page = rows[: query.limit]
        return page, page[-1]
    return rows, None


async def list_categories(uow: CatalogUnitOfWork) -> list[Category]:
    async with uow:
        return await uow.products.categories()
