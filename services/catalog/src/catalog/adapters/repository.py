"""Catalog's storage on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.adapters.messages import to_envelope
from catalog.adapters.orm import categories, products
from catalog.domain.events import CatalogEvent
from catalog.domain.model import Category, Price, Product
from catalog.service_layer.ports import ProductQuery
from chassis import Database
from chassis.messaging import record_events

_SORT_COLUMNS = {
    "name": products.c.name_key,
    "price": products.c.price_amount,
    "created_at": products.c.created_at,
}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _row_values(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "name_key": product.name.casefold(),
        "description": product.description,
        "category": product.category,
        "price_amount": product.price.amount,
        "price_currency": product.price.currency,
        "image_url": product.image_url,
        "created_at": product.created_at,
        "updated_at": product.updated_at,
    }


def _product(row: RowMapping) -> Product:
    return Product(
        id=row["id"],
        sku=row["sku"],
        name=row["name"],
        description=row["description"],
        category=row["category"],
        price=Price(row["price_amount"], row["price_currency"]),
        image_url=row["image_url"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def sort_value(product: Product, sort: str) -> object:
    """The value a cursor carries for `product` under `sort` (JSON-friendly)."""
    key = sort.lstrip("-")
    if key == "name":
        return product.name.casefold()
    if key == "price":
        return product.price.amount
    return product.created_at.isoformat()


class SqlProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, product: Product) -> None:
        await self.session.execute(insert(products).values(_row_values(product)))

    async def save(self, product: Product) -> None:
        values = _row_values(product)
        del values["id"], values["created_at"]
        await self.session.execute(
            update(products).where(products.c.id == product.id).values(values)
        )

    async def get(self, product_id: str) -> Product | None:
        result = await self.session.execute(select(products).where(products.c.id == product_id))
        row = result.mappings().first()
        return _product(row) if row else None

    async def get_by_sku(self, sku: str) -> Product | None:
        result = await self.session.execute(select(products).where(products.c.sku == sku))
        row = result.mappings().first()
        return _product(row) if row else None

    async def find(self, query: ProductQuery) -> list[Product]:
        descending = query.sort.startswith("-")
        column = _SORT_COLUMNS[query.sort.lstrip("-")]
        statement = select(products)
        if query.category:
            statement = statement.where(products.c.category == query.category)
        if query.text:
            pattern = f"%{_escape_like(query.text.casefold())}%"
            statement = statement.where(products.c.name_key.like(pattern, escape="\\"))
        if query.after is not None:
            value, last_id = query.after
            if column is products.c.created_at and isinstance(value, str):
                value = datetime.fromisoformat(value)
            if descending:
                statement = statement.where(
                    or_(column < value, and_(column == value, products.c.id < last_id))
                )
            else:
                statement = statement.where(
                    or_(column > value, and_(column == value, products.c.id > last_id))
                )
        order = (column.desc(), products.c.id.desc()) if descending else (column, products.c.id)
        result = await self.session.execute(statement.order_by(*order).limit(query.limit))
        return [_product(row) for row in result.mappings()]

    async def ensure_category(self, slug: str, name: str) -> None:
        # Replicas on PostgreSQL may add the same new category at the same moment: the
        # second insert does nothing instead of failing its whole transaction.
        exists = await self.session.scalar(
            select(categories.c.slug).where(categories.c.slug == slug)
        )
        if exists is None:
            dialect = self.session.get_bind().dialect.name
            upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            await self.session.execute(
                upsert(categories)
                .values(slug=slug, name=name)
                .on_conflict_do_nothing(index_elements=[categories.c.slug])
            )

    async def categories(self) -> list[Category]:
        count = func.count(products.c.id)
        result = await self.session.execute(
            select(categories.c.slug, categories.c.name, count.label("n"))
            .select_from(categories.outerjoin(products))
            .group_by(categories.c.slug, categories.c.name)
            .order_by(categories.c.name)
        )
        return [Category(row.slug, row.name, row.n) for row in result]


class SqlCatalogUnitOfWork:
    """A unit of work on one database session; rolls back unless committed.

    Events emitted during the unit of work go into the outbox in the same transaction;
    `on_commit` (the relay's notify) runs after a successful commit.
    """

    products: SqlProductRepository

    def __init__(
        self, database: Database, *, write: bool, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._factory = database.write_sessions if write else database.sessions
        self._on_commit = on_commit
        self._events: list[CatalogEvent] = []

    async def __aenter__(self) -> SqlCatalogUnitOfWork:
        self._session = self._factory()
        self.products = SqlProductRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.rollback()
        await self._session.close()

    def emit(self, event: CatalogEvent) -> None:
        self._events.append(event)

    async def commit(self) -> None:
        events, self._events = self._events, []
        if events:
            await record_events(self._session, [to_envelope(e) for e in events])
        await self._session.commit()
        if events and self._on_commit is not None:
            self._on_commit()
