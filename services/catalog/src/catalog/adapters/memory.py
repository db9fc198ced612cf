"""In-memory fakes of catalog's ports, for fast unit tests (same contract as the SQL ones)."""

from __future__ import annotations

from types import TracebackType

from catalog.adapters.repository import sort_value
from catalog.domain.events import CatalogEvent
from catalog.domain.model import Category, Product
from catalog.service_layer.ports import ProductQuery


class InMemoryProductRepository:
    def __init__(self) -> None:
        self.products: dict[str, Product] = {}
        self.category_names: dict[str, str] = {}

    async def add(self, product: Product) -> None:
        self.products[product.id] = product

    async def save(self, product: Product) -> None:
        self.products[product.id] = product

    async def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    async def get_by_sku(self, sku: str) -> Product | None:
        return next((p for p in self.products.values() if p.sku == sku), None)

    async def find(self, query: ProductQuery) -> list[Product]:
        descending = query.sort.startswith("-")
        rows = [
            p
            for p in self.products.values()
            if (not query.category or p.category == query.category)
            and (not query.text or query.text.casefold() in p.name.casefold())
        ]

        def key(p: Product) -> tuple[object, str]:
            return (sort_value(p, query.sort), p.id)

        rows.sort(key=key, reverse=descending)
        if query.after is not None:
            after = (query.after[0], query.after[1])
            rows = [p for p in rows if (key(p) < after if descending else key(p) > after)]
        return rows[: query.limit]

    async def ensure_category(self, slug: str, name: str) -> None:
        self.category_names.setdefault(slug, name)

    async def categories(self) -> list[Category]:
        counts = dict.fromkeys(self.category_names, 0)
        for product in self.products.values():
            counts[product.category] = counts.get(product.category, 0) + 1
        return sorted(
            (Category(slug, self.category_names[slug], n) for slug, n in counts.items()),
            key=lambda c: c.name,
        )


class InMemoryCatalogUnitOfWork:
    """Stages writes in a copy and publishes them on commit, like a real transaction."""

    def __init__(self, repository: InMemoryProductRepository | None = None) -> None:
        self.committed = repository or InMemoryProductRepository()
        self.commits = 0
        self.published: list[CatalogEvent] = []
        self._pending: list[CatalogEvent] = []

    async def __aenter__(self) -> InMemoryCatalogUnitOfWork:
        self.products = InMemoryProductRepository()
        self.products.products = dict(self.committed.products)
        self.products.category_names = dict(self.committed.category_names)
        self._pending = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def emit(self, event: CatalogEvent) -> None:
        self._pending.append(event)

    async def commit(self) -> None:
        self.published.extend(self._pending)
        self._pending = []
        self.committed.products = dict(self.products.products)
        self.committed.category_names = dict(self.products.category_names)
        self.commits += 1
