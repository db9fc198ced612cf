"""Fixtures for orders' tests: signed callers, settings, a fake catalog over HTTP, and fake
inventory and payments services that answer the checkout saga per docs/events.md."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from asgi_lifespan import LifespanManager

from chassis import PRINCIPAL_HEADER, InternalTokenCodec, Principal
from chassis.discovery import StaticRegistry
from chassis.messaging import Delivery, Envelope, MessageBus
from orders.bootstrap import build_app
from orders.settings import OrdersSettings

SECRET = "orders-test-internal-secret"

MUG = "0b6f3c1e-6d1a-4c55-9b1e-0f6a2d6c1a01"
TEA = "7c2d9e4f-3b8a-4e61-8f2c-5d9a1b7e3c02"
DOLLAR_HAT = "a3e5c7d9-1b2f-4a6c-8e0d-9f7b5c3a1e03"
PRODUCTS: dict[str, dict[str, Any]] = {
    MUG: {"sku": "MUG-001", "name": "Stoneware Mug", "price": {"amount": 1490, "currency": "EUR"}},
    TEA: {"sku": "TEA-042", "name": "Sencha 100 g", "price": {"amount": 850, "currency": "EUR"}},
    DOLLAR_HAT: {"sku": "HAT-007", "name": "Hat", "price": {"amount": 2000, "currency": "USD"}},
}


def principal(subject: str = "alice", *roles: str) -> dict[str, str]:
    """Signed per request: a module-level token would expire during a long test run."""
    token = InternalTokenCodec(SECRET.encode()).issue(Principal(subject, frozenset(roles)))
    return {PRINCIPAL_HEADER: token}


def order_body(*lines: tuple[str, int], token: str = "tok_visa") -> dict[str, Any]:  # noqa: S107
    return {
        "items": [{"product_id": p, "quantity": q} for p, q in lines or [(MUG, 2), (TEA, 1)]],
        "payment_token": token,
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


SettingsFactory = Callable[..., OrdersSettings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def make(**overrides: Any) -> OrdersSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "data_dir": tmp_path,
            "internal_secret": SECRET,
            "broker_url": "memory://",
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/orders.db",
            "saga_poll_interval": 0.05,
        }
        values.update(overrides)
        return OrdersSettings(**values)

    return make


@dataclass
class CatalogServer:
    """catalog's `GET /api/v1/products/{id}` from a dict; `down` answers 503 like an outage."""

    products: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(PRODUCTS))
    down: bool = False
    hits: int = 0
    server: TestServer | None = None

    async def product(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.down:
            return web.json_response({"title": "down"}, status=503)
        product_id = request.match_info["product_id"]
        found = self.products.get(product_id)
        if found is None:
            return web.json_response({"title": "Product not found", "status": 404}, status=404)
        now = "2026-01-01T00:00:00Z"
        body = {
            "id": product_id,
            "description": "",
            "category": "kitchen",
            "image_url": None,
            "created_at": now,
            "updated_at": now,
            **found,
        }
        return web.json_response(body)

    def registry(self) -> StaticRegistry:
        assert self.server is not None
        return StaticRegistry.from_spec(f"catalog=http://127.0.0.1:{self.server.port}")


@pytest.fixture
async def catalog() -> AsyncIterator[CatalogServer]:
    fake = CatalogServer()
    app = web.Application()
    app.router.add_get("/api/v1/products/{product_id}", fake.product)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@dataclass
class Participants:
    """Fake inventory and payments: answer each command per the contract.

    `out_of_stock` skus fail a reservation; tokens other than tok_visa are declined;
    `hold` command types wait for `release()`; `silent[type] = n` drops the first n;
    `refunds_fail` makes a refund fail."""

    bus: MessageBus
    out_of_stock: set[str] = field(default_factory=set)
    silent: Counter[str] = field(default_factory=Counter)
    hold: set[str] = field(default_factory=set)
    refunds_fail: bool = False
    seen: defaultdict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    log: list[Envelope] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    INVENTORY = (
        "inventory.reserve_stock.v1",
        "inventory.release_stock.v1",
        "inventory.commit_stock.v1",
        "payments.payment.refunded.v1",
    )
    PAYMENTS = (
        "payments.authorize_payment.v1",
        "payments.void_payment.v1",
        "payments.capture_payment.v1",
        "orders.order.cancellation_requested.v1",
    )

    async def start(self) -> None:
        await self.bus.subscribe("inventory", list(self.INVENTORY), self.inventory)
        await self.bus.subscribe("payments", list(self.PAYMENTS), self.payments)

    def release(self) -> None:
        self.gate.set()

    def commands(self, order_id: str) -> list[str]:
        """The messages received about `order_id`, in the order they arrived."""
        return [envelope.type for envelope in self.log if envelope.subject == order_id]

    def count(self, type_: str, order_id: str) -> int:
        return sum(1 for e in self.seen[type_] if e.subject == order_id)

    async def _reply(self, command: Envelope, source: str, type_: str, **data: Any) -> None:
        order_id = command.data["order_id"]
        await self.bus.publish(
            command.caused(type_, source, order_id, {"order_id": order_id, **data})
        )

    async def _gate(self, command: Envelope) -> bool:
        """Record the command; False when it is to be dropped."""
        self.seen[command.type].append(command)
        self.log.append(command)
        if self.silent[command.type] > 0:
            self.silent[command.type] -= 1
            return False
        if command.type in self.hold:
            await self.gate.wait()
        return True

    async def inventory(self, command: Envelope, _: Delivery) -> None:
        if not await self._gate(command):
            return
        kind = command.type
        if kind == "inventory.reserve_stock.v1":
            missing = [l["sku"] for l in command.data["lines"] if l["sku"] in self.out_of_stock]  # noqa: E741
            if missing:
                await self._reply(
                    command,
                    "inventory",
                    "inventory.stock.reservation_failed.v1",
                    reason="out_of_stock",
                    skus=missing,
                )
            else:
                expires = (datetime.now(UTC) + timedelta(minutes=15)).isoformat()
                await self._reply(
                    command,
                    "inventory",
                    "inventory.stock.reserved.v1",
                    reservation_id=f"res-{uuid.uuid4().hex[:8]}",
                    expires_at=expires,
                )
        elif kind == "inventory.release_stock.v1":
            await self._reply(
                command, "inventory", "inventory.stock.released.v1", reason="released"
            )
        elif kind == "inventory.commit_stock.v1":
            await self._reply(command, "inventory", "inventory.stock.committed.v1")
        elif kind == "payments.payment.refunded.v1":
            await self._reply(
                command, "inventory", "inventory.stock.released.v1", reason="cancelled"
            )

    async def payments(self, command: Envelope, _: Delivery) -> None:
        if not await self._gate(command):
            return
        kind, data = command.type, command.data
        if kind == "payments.authorize_payment.v1":
            if data["payment_token"] == "tok_visa":
                await self._reply(
                    command,
                    "payments",
                    "payments.payment.authorized.v1",
                    payment_id=f"pay-{data['order_id'][:8]}",
                    amount=data["amount"],
                )
            else:
                await self._reply(
                    command, "payments", "payments.payment.declined.v1", reason="card_declined"
                )
        elif kind == "payments.void_payment.v1":
            await self._reply(command, "payments", "payments.payment.voided.v1")
        elif kind == "payments.capture_payment.v1":
            await self._reply(command, "payments", "payments.payment.captured.v1", amount={})
        elif kind == "orders.order.cancellation_requested.v1":
            if self.refunds_fail:
                await self._reply(
                    command,
                    "payments",
                    "payments.payment.refund_failed.v1",
                    reason="provider_error",
                )
            else:
                await self._reply(
                    command, "payments", "payments.payment.refunded.v1", amount=data["total"]
                )


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any

    async def place(
        self, body: dict[str, Any] | None = None, *, user: str = "alice", key: str | None = None
    ) -> httpx.Response:
        headers = {**principal(user), "Idempotency-Key": key or str(uuid.uuid4())}
        return await self.client.post("/api/v1/orders", json=body or order_body(), headers=headers)

    async def order(self, order_id: str, *, user: str = "alice") -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/orders/{order_id}", headers=principal(user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settled(
        self, order_id: str, status: str, *, user: str = "alice", timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = await self.order(order_id, user=user)
            if order["status"] == status:
                return order
            assert time.monotonic() < deadline, f"order still {order['status']}, not {status}"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def serving(settings: OrdersSettings, **inject: Any) -> AsyncIterator[Api]:
    app = build_app(settings, **inject)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orders"
        ) as client,
    ):
        yield Api(client, app)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


class Kit:
    """The helpers above, for test modules (which cannot import this conftest)."""

    MUG = MUG
    TEA = TEA
    DOLLAR_HAT = DOLLAR_HAT
    PRODUCTS = PRODUCTS
    SECRET = SECRET
    Participants = Participants
    FakeClock = FakeClock
    principal = staticmethod(principal)
    order_body = staticmethod(order_body)
    serving = staticmethod(serving)
    eventually = staticmethod(eventually)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
