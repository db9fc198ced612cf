"""What the service layer needs from the outside world, as Protocols named by role."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from orders.domain.idempotency import IdempotencyRecord
from orders.domain.model import Order, ProductSnapshot

Clock = Callable[[], datetime]


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None: ...

    async def save(self, order: Order) -> Order:
        """Store a changed order if nobody else changed it since it was read
        (`order.version` is the version read); the stored one, version bumped.
        Raises `OrderChangedError` otherwise."""
        ...

    async def get(self, order_id: str) -> Order | None: ...

    async def list_for_user(
        self, user_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Order]:
        """The user's orders, newest first; `after` is (created_at, id) of the last one seen."""
        ...

    async def count_pending(self, user_id: str) -> int: ...

    async def checkout_load(
        self, *, created_since: datetime, late_before: datetime
    ) -> tuple[int, int]:
        """Of the orders created since `created_since`, how many are PENDING, and how many
        of those were created before `late_before`."""
        ...

    async def all(self) -> list[Order]:
        """Every order (the audit), oldest first."""
        ...


class IdempotencyRepository(Protocol):
    async def get(self, user_id: str, key: str) -> IdempotencyRecord | None: ...
    async def add(self, record: IdempotencyRecord) -> None: ...
    async def delete_older_than(self, before: datetime) -> int: ...


class OrderTransaction(Protocol):
    """An open transaction on orders: changes and the events they publish commit together."""

    @property
    def orders(self) -> OrderRepository: ...

    async def publish(self, type: str, subject: str, data: dict[str, Any]) -> None:
        """Record an event in the outbox of this transaction."""
        ...


class OrdersUnitOfWork(OrderTransaction, Protocol):
    """One transaction: everything done through it commits or none of it does."""

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    async def lock_user(self, user_id: str) -> None:
        """Serialise this user's writers until commit (the pending limit, key reuse)."""
        ...

    async def start_checkout(self, order: Order, payment_token: str) -> None:
        """Start the checkout saga of a new order in this transaction."""
        ...

    async def __aenter__(self) -> OrdersUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


class Catalog(Protocol):
    async def products(self, product_ids: Sequence[str]) -> dict[str, ProductSnapshot]:
        """The products catalog knows among `product_ids` (unknown ones are left out).

        Raises `CatalogUnavailableError` when catalog cannot answer."""
        ...
