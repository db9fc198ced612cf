"""In-memory fakes of orders' ports, for fast unit tests (same contract as the real ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any

from orders.domain.idempotency import IdempotencyRecord
from orders.domain.model import Order, OrderStatus, ProductSnapshot
from orders.errors import CatalogUnavailableError, OrderChangedError


@dataclass
class InMemoryState:
    orders: dict[str, Order] = field(default_factory=dict)
    keys: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)

    def copy(self) -> InMemoryState:
        return InMemoryState(dict(self.orders), dict(self.keys))


class InMemoryOrderRepository:
    def __init__(self, state: InMemoryState) -> None:
        self.state = state

    async def add(self, order: Order) -> None:
        if order.id in self.state.orders:
            raise ValueError(f"order {order.id} exists already")
        self.state.orders[order.id] = order

    async def save(self, order: Order) -> Order:
        stored = self.state.orders.get(order.id)
        if stored is None or stored.version != order.version:
            raise OrderChangedError(order.id)
        saved = replace(order, version=order.version + 1)
        self.state.orders[order.id] = saved
        return saved

    async def get(self, order_id: str) -> Order | None:
        return self.state.orders.get(order_id)

    async def list_for_user(
        self, user_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Order]:
        rows = sorted(
            (o for o in self.state.orders.values() if o.user_id == user_id),
            key=lambda o: (o.created_at, o.id),
            reverse=True,
        )
        if after is not None:
            rows = [o for o in rows if (o.created_at, o.id) < after]
        return rows[:limit]

    async def count_pending(self, user_id: str) -> int:
        return sum(
            1
            for o in self.state.orders.values()
            if o.user_id == user_id and o.status is OrderStatus.PENDING
        )

    async def checkout_load(
        self, *, created_since: datetime, late_before: datetime
    ) -> tuple[int, int]:
        pending = [
            o
            for o in self.state.orders.values()
            if o.created_at >= created_since and o.status is OrderStatus.PENDING
        ]
        return len(pending), sum(1 for o in pending if o.created_at < late_before)

    async def all(self) -> list[Order]:
        return sorted(self.state.orders.values(), key=lambda o: (o.created_at, o.id))


class InMemoryIdempotencyRepository:
    def __init__(self, state: InMemoryState) -> None:
        self.state = state

    async def get(self, user_id: str, key: str) -> IdempotencyRecord | None:
        return self.state.keys.get((user_id, key))

    async def add(self, record: IdempotencyRecord) -> None:
        if (record.user_id, record.key) in self.state.keys:
            raise ValueError("idempotency key stored twice")
        self.state.keys[(record.user_id, record.key)] = record

    async def delete_older_than(self, before: datetime) -> int:
        old = [k for k, record in self.state.keys.items() if record.created_at < before]
        for k in old:
            del self.state.keys[k]
        return len(old)


@dataclass(frozen=True)
class Published:
    type: str
    subject: str
    data: dict[str, Any]


class InMemoryOrdersUnitOfWork:
    """Stages writes in a copy of the state and publishes them on commit, like a transaction.

    Events and started checkouts are kept in `published` and `checkouts` once committed."""

    orders: InMemoryOrderRepository
    idempotency: InMemoryIdempotencyRepository

    def __init__(self, state: InMemoryState | None = None) -> None:
        self.committed = state or InMemoryState()
        self.commits = 0
        self.published: list[Published] = []
        self.checkouts: list[tuple[str, str]] = []  # (order id, payment token)
        self._staged = self.committed.copy()
        self._events: list[Published] = []
        self._checkouts: list[tuple[str, str]] = []

    def __call__(self, *, write: bool = False) -> InMemoryOrdersUnitOfWork:
        return self

    async def __aenter__(self) -> InMemoryOrdersUnitOfWork:
        self._staged = self.committed.copy()
        self._events, self._checkouts = [], []
        self.orders = InMemoryOrderRepository(self._staged)
        self.idempotency = InMemoryIdempotencyRepository(self._staged)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._events, self._checkouts = [], []

    async def publish(self, type: str, subject: str, data: dict[str, Any]) -> None:
        self._events.append(Published(type, subject, data))

    async def lock_user(self, user_id: str) -> None:
        return None

    async def start_checkout(self, order: Order, payment_token: str) -> None:
        self._checkouts.append((order.id, payment_token))

    async def commit(self) -> None:
        self.committed.orders = dict(self._staged.orders)
        self.committed.keys = dict(self._staged.keys)
        self.published.extend(self._events)
        self.checkouts.extend(self._checkouts)
        self._events, self._checkouts = [], []
        self.commits += 1


class FakeCatalog:
    """Catalog's answers from a dict; `available = False` makes it fail like an outage."""

    def __init__(self, products: Sequence[ProductSnapshot] = ()) -> None:
        self.known = {product.id: product for product in products}
        self.available = True
        self.calls: list[list[str]] = []

    async def products(self, product_ids: Sequence[str]) -> dict[str, ProductSnapshot]:
        self.calls.append(list(product_ids))
        if not self.available:
            raise CatalogUnavailableError()
        return {pid: self.known[pid] for pid in product_ids if pid in self.known}
