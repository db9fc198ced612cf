"""Fixtures for notifications' tests: signed callers, event builders, a running service."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from chassis import InternalTokenCodec, Principal
from chassis.messaging import Envelope, InMemoryMessageBus, MessageBus, RetryPolicy
from notifications.bootstrap import build_app
from notifications.settings import NotificationsSettings

SECRET = "notifications-test-secret"
FAST_RETRY = RetryPolicy(max_attempts=2, backoff=(0.01,), ack_wait=5.0)


class Callers:
    """Internal principal headers, signed per request (a stored token would expire)."""

    def __init__(self) -> None:
        self._codec = InternalTokenCodec(SECRET.encode())

    def user(self, user_id: str, *roles: str) -> dict[str, str]:
        principal = Principal(user_id, frozenset(roles or ("customer",)))
        return {"x-mercato-principal": self._codec.issue(principal)}

    def admin(self) -> dict[str, str]:
        return self.user("admin-1", "admin")


class Events:
    """Envelopes as their producers publish them (docs/events.md)."""

    def envelope(self, type_: str, subject: str, data: dict[str, Any], **fields: Any) -> Envelope:
        return Envelope(
            type=type_, source=type_.split(".", 1)[0], subject=subject, data=data, **fields
        )

    def registered(self, user_id: str, name: str = "Ada", **fields: Any) -> Envelope:
        data = {"user_id": user_id, "email": f"{user_id}@example.com", "name": name}
        return self.envelope("identity.user.registered.v1", user_id, data, **fields)

    def order(
        self,
        happened: str,
        user_id: str,
        *,
        order_id: str | None = None,
        amount: int = 1290,
        **extra: Any,
    ) -> Envelope:
        order_id = order_id or str(uuid.uuid4())
        data = {
            "order_id": order_id,
            "user_id": user_id,
            "total": {"amount": amount, "currency": "EUR"},
            **extra,
        }
        return self.envelope(f"orders.order.{happened}.v1", order_id, data)

    def product_created(
        self, product_id: str, name: str = "Stoneware Mug", amount: int = 1490, **fields: Any
    ) -> Envelope:
        data = {
            "product_id": product_id,
            "sku": f"SKU-{product_id[:8]}",
            "name": name,
            "category": "kitchen",
            "price": {"amount": amount, "currency": "EUR"},
        }
        return self.envelope("catalog.product.created.v1", product_id, data, **fields)

    def price_changed(self, product_id: str, old: int, new: int, **fields: Any) -> Envelope:
        data = {
            "product_id": product_id,
            "sku": f"SKU-{product_id[:8]}",
            "old_price": {"amount": old, "currency": "EUR"},
            "new_price": {"amount": new, "currency": "EUR"},
        }
        return self.envelope("catalog.product.price_changed.v1", product_id, data, **fields)


@pytest.fixture
def callers() -> Callers:
    return Callers()


@pytest.fixture
def events() -> Events:
    return Events()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        await asyncio.sleep(0.01)


@dataclass
class Service:
    """A running notifications app, an HTTP client on it and the bus it consumes from."""

    client: httpx.AsyncClient
    bus: MessageBus
    callers: Callers

    async def publish(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            await self.bus.publish(envelope)

    async def total(self) -> int:
        response = await self.client.get(
            "/internal/audit/notifications/count", headers=self.callers.admin()
        )
        assert response.status_code == 200, response.text
        total: int = response.json()["total"]
        return total

    async def until_total(self, count: int) -> None:
        async def reached() -> bool:
            return await self.total() >= count

        await eventually(reached, what=f"{count} notifications")

    async def until(self, check: Callable[[], Awaitable[bool]], what: str = "condition") -> None:
        await eventually(check, what=what)

    async def news(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await self.client.get("/api/v1/notifications/news", params={"limit": 100})
        ).json()["items"]
        return items


StartService = Callable[..., AbstractAsyncContextManager[Service]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/notifications.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., NotificationsSettings]:
    def make(**overrides: Any) -> NotificationsSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "data_dir": tmp_path,
            "internal_secret": SECRET,
            "broker_url": "memory://",
        }
        values.update(overrides)
        return NotificationsSettings(**values)

    return make


@pytest.fixture
def start_service(
    database_url: str, make_settings: Callable[..., NotificationsSettings], callers: Callers
) -> StartService:
    """Start the app on `database_url` (the same one each time) with the given bus."""

    @asynccontextmanager
    async def start(
        bus: MessageBus | None = None, clock: Callable[[], datetime] | None = None
    ) -> AsyncIterator[Service]:
        bus = bus or InMemoryMessageBus()
        app = build_app(
            make_settings(database_url=database_url),
            bus=bus,
            retry=FAST_RETRY,
            clock=clock or (lambda: datetime.now(UTC)),
        )
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://notifications"
            ) as client,
        ):
            yield Service(client, bus, callers)

    return start


@pytest.fixture
async def service(start_service: StartService) -> AsyncIterator[Service]:
    async with start_service() as running:
        yield running
