"""Fixtures for inventory's tests: settings, a clock, signed callers, a harness that drives the
app through messages and HTTP, and the conservation checks every scenario ends with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from chassis import InternalTokenCodec, Principal
from chassis.discovery import Registry
from chassis.messaging import Delivery, Envelope, InMemoryMessageBus
from inventory.adapters.memory import FakeClock
from inventory.bootstrap import build_app
from inventory.settings import InventorySettings

INTERNAL_SECRET = "inventory-test-internal-secret"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

SettingsFactory = Callable[..., InventorySettings]
Headers = Callable[..., dict[str, str]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Test settings (SQLite under tmp_path, gRPC on a free port) with overrides."""

    def make(**overrides: object) -> InventorySettings:
        values: dict[str, object] = {
            "environment": "test",
            "data_dir": tmp_path,
            "internal_secret": INTERNAL_SECRET,
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/inventory.db",
            "broker_url": "memory://",
            "grpc_port": 0,
            "expiry_interval": 0.05,
        }
        values.update(overrides)
        return InventorySettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def as_role() -> Headers:
    """Headers of a caller with `roles`, signed per request (tokens are short-lived)."""

    def headers(*roles: str) -> dict[str, str]:
        codec = InternalTokenCodec(INTERNAL_SECRET.encode())
        return {"x-mercato-principal": codec.issue(Principal("someone", frozenset(roles)))}

    return headers


class Harness:
    """The inventory app on an in-memory bus, driven the way other services drive it.

    `send` publishes a message as its producer would; `reply` waits for inventory's answer
    to it (matched by causation id); HTTP goes through `client`.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        bus: InMemoryMessageBus,
        settings: InventorySettings,
        headers: Headers,
        *,
        grpc_port: int,
    ) -> None:
        self.client = client
        self.grpc_port = grpc_port
        self.bus = bus
        self.settings = settings
        self.headers = headers
        self.replies: list[Envelope] = []
        self._arrived = asyncio.Condition()

    async def listen(self) -> None:
        async def on_reply(envelope: Envelope, _: Delivery) -> None:
            async with self._arrived:
                self.replies.append(envelope)
                self._arrived.notify_all()

        await self.bus.subscribe("orders-probe", ["inventory.stock.>"], on_reply)

    async def send(
        self, type_: str, data: dict[str, Any], *, subject: str | None = None
    ) -> Envelope:
        source = type_.split(".", 1)[0]
        subject = subject or str(data.get("order_id") or data.get("product_id") or "x")
        envelope = Envelope(
            type=type_, source=source, subject=subject, data=data, correlation_id=f"corr-{subject}"
        )
        await self.bus.publish(envelope)
        return envelope

    async def reply(self, cause: Envelope, *, timeout: float = 5.0) -> Envelope:
        def found() -> Envelope | None:
            return next((r for r in self.replies if r.causation_id == cause.id), None)

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        answer = found()
        assert answer is not None
        return answer

    async def command(self, type_: str, data: dict[str, Any]) -> Envelope:
        """Send a saga command and return inventory's reply to it."""
        return await self.reply(await self.send(type_, data))

    async def audit(self) -> dict[str, Any]:
        response = await self.client.get("/internal/audit/stock", headers=self.headers("admin"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def product(self, sku: str, *, product_id: str | None = None) -> None:
        """Announce a new product as catalog does, and wait until inventory has its stock."""
        data = {
            "product_id": product_id or f"p-{sku}",
            "sku": sku,
            "name": f"Product {sku}",
            "category": "kitchen",
            "price": {"amount": 1000, "currency": "EUR"},
        }
        await self.send("catalog.product.created.v1", data)
        async with asyncio.timeout(5):
            while sku not in {s["sku"] for s in (await self.audit())["skus"]}:
                await asyncio.sleep(0.01)

    async def level(self, sku: str) -> tuple[int, int, int]:
        """(available, reserved, committed) of a SKU, from the audit, after checking that the
        books balance."""
        audit = await self.audit()
        assert_audit_balances(audit)
        [row] = [s for s in audit["skus"] if s["sku"] == sku]
        return row["available"], row["reserved"], row["committed"]


def assert_audit_balances(audit: dict[str, Any]) -> None:
    """What `mercato check` verifies, from the audit document alone."""
    held: dict[str, int] = {}
    sold: dict[str, int] = {}
    for reservation in audit["reservations"]:
        bucket = {"held": held, "committed": sold}.get(reservation["status"])
        if bucket is not None:
            for line in reservation["lines"]:
                bucket[line["sku"]] = bucket.get(line["sku"], 0) + line["quantity"]
    for s in audit["skus"]:
        assert s["initial"] + s["restocked"] + s["adjusted"] == (
            s["available"] + s["reserved"] + s["committed"]
        ), s
        assert min(s["available"], s["reserved"], s["committed"]) >= 0, s
        assert s["reserved"] == held.get(s["sku"], 0), s
        assert s["committed"] == sold.get(s["sku"], 0), s


HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def start_harness(
    make_settings: SettingsFactory, clock: FakeClock, as_role: Headers
) -> HarnessFactory:
    @asynccontextmanager
    async def start(
        registry: Registry | None = None, **overrides: object
    ) -> AsyncIterator[Harness]:
        settings = make_settings(**overrides)
        bus = InMemoryMessageBus()
        app = build_app(settings, clock=clock, bus=bus, registry=registry)
        transport = httpx.ASGITransport(app=app)
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
            httpx.AsyncClient(transport=transport, base_url="http://inventory") as client,
        ):
            harness = Harness(client, bus, settings, as_role, grpc_port=app.state.grpc_port)
            await harness.listen()
            yield harness
            assert_audit_balances(await harness.audit())

    return start


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/inventory.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
