"""What the service layer needs from the outside world, as Protocols named by role."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol

from catalog.domain.events import CatalogEvent
from catalog.domain.model import Category, Product

SortKey = Literal["name", "-name", "price", "-price", "created_at", "-created_at"]
SORT_KEYS: tuple[SortKey, ...] = ("name", "-name", "price", "-price", "created_at", "-created_at")


@dataclass(frozen=True)
class ProductQuery:
    limit: int
    sort: SortKey = "name"
    category: str | None = None
    text: str | None = None
    after: tuple[object, str] | None = None  # (sort value, id) of the last row seen


class ProductRepository(Protocol):
    async def add(self, product: Product) -> None: ...
    async def save(self, product: Product) -> None: ...
    async def get(self, product_id: str) -> Product | None: ...
    async def get_by_sku(self, sku: str) -> Product | None: ...
    async def find(self, query: ProductQuery) -> list[Product]: ...
    async def ensure_category(self, slug: str, name: str) -> None: ...
    async def categories(self) -> list[Category]: ...


class CatalogUnitOfWork(Protocol):
    """One transaction: everything done through `products` commits or none of it does."""

    @property
    def products(self) -> ProductRepository: ...

    async def __aenter__(self) -> CatalogUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def emit(self, event: CatalogEvent) -> None:
        """Publish `event` if and only if this unit of work commits."""

    async def commit(self) -> None: ...
