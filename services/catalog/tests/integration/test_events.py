"""Catalog's events leave through the outbox, in the transaction of the change."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from catalog.bootstrap import build_app
from catalog.settings import CatalogSettings
from chassis import Database, InternalTokenCodec, Principal
from chassis.messaging import Envelope, InMemoryMessageBus, Messaging

SECRET = "catalog-events-secret"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryMessageBus, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
    settings = CatalogSettings(database_url=url, internal_secret=SECRET, environment="test")
    bus = InMemoryMessageBus()
    database = Database(url)
    app = build_app(settings, messaging=Messaging(bus=bus, database=database, service="catalog"))
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://catalog"
        ) as client,
    ):
        yield client, bus, url
    await database.dispose()


def admin() -> dict[str, str]:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("a", frozenset({"admin"})))
    return {"x-mercato-principal": token}


async def test_created_and_price_changed_are_published(
    stack: tuple[httpx.AsyncClient, InMemoryMessageBus, str],
) -> None:
    client, bus, url = stack
    seen: list[Envelope] = []

    async def record(envelope: Envelope, _: object) -> None:
        seen.append(envelope)

    await bus.subscribe("test", ["catalog.product.>"], record)
    body = {"sku": "EV-1", "name": "Evented", "category": "kitchen",
            "price": {"amount": 500, "currency": "EUR"}}  # fmt: skip
    product = (await client.post("/api/v1/products", json=body, headers=admin())).json()
    await client.patch(
        f"/api/v1/products/{product['id']}", json={"name": "Renamed"}, headers=admin()
    )
    await client.patch(
        f"/api/v1/products/{product['id']}",
        json={"price": {"amount": 450, "currency": "EUR"}},
        headers=admin(),
    )
    for _ in range(100):
        if len(seen) == 2:
            break
        await __import__("asyncio").sleep(0.02)
    assert [e.type for e in seen] == [
        "catalog.product.created.v1",
        "catalog.product.price_changed.v1",
    ]
    assert seen[0].subject == product["id"]
    assert seen[0].data == {"product_id": product["id"], "sku": "EV-1", "name": "Evented",
                            "category": "kitchen", "price": {"amount": 500, "currency": "EUR"}}  # fmt: skip
    assert seen[1].data["old_price"] == {"amount": 500, "currency": "EUR"}
    assert seen[1].data["new_price"] == {"amount": 450, "currency": "EUR"}

    database = Database(url)
    try:
        async with database.sessions() as session:
            unsent = await session.scalar(
                text("SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL")
            )
            total = await session.scalar(text("SELECT count(*) FROM messaging_outbox"))
    finally:
        await database.dispose()
    assert (unsent, total) == (0, 2)


async def test_a_refused_change_records_no_event(
    stack: tuple[httpx.AsyncClient, InMemoryMessageBus, str],
) -> None:
    client, _, url = stack
    body = {"sku": "EV-2", "name": "Once", "category": "kitchen",
            "price": {"amount": 500, "currency": "EUR"}}  # fmt: skip
    assert (await client.post("/api/v1/products", json=body, headers=admin())).status_code == 201
    assert (await client.post("/api/v1/products", json=body, headers=admin())).status_code == 409
    database = Database(url)
    try:
        async with database.sessions() as session:
            total = await session.scalar(text("SELECT count(*) FROM messaging_outbox"))
    finally:
        await database.dispose()
    assert total == 1
