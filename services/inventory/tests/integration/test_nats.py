"""End to end on a real NATS JetStream (our own server on a free port): catalog announces a
product, inventory creates its stock; orders asks for a reservation, inventory answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from asgi_lifespan import LifespanManager

from chassis import EmbeddedNatsServer
from chassis.messaging import Delivery, Envelope, NatsJetStreamBus
from inventory.bootstrap import build_app

if TYPE_CHECKING:  # conftest is pytest's, not importable at run time
    from conftest import Headers, SettingsFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    with EmbeddedNatsServer(tmp_path / "nats") as server:
        yield server


async def test_product_created_then_reserve_command_then_reply(
    nats_server: EmbeddedNatsServer, make_settings: SettingsFactory, as_role: Headers
) -> None:
    settings = make_settings(broker_url=nats_server.url, initial_stock=4)
    app = build_app(settings)
    others = NatsJetStreamBus(nats_server.url, name="catalog-and-orders")  # stand-ins
    replies: asyncio.Queue[Envelope] = asyncio.Queue()

    async def on_reply(envelope: Envelope, _: Delivery) -> None:
        await replies.put(envelope)

    await others.start()
    try:
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://inventory"
            ) as client,
        ):
            ready = await client.get("/readyz")
            assert ready.json()["checks"]["broker"] == "ok", ready.text
            await others.subscribe("orders", ["inventory.stock.>"], on_reply)

            await others.publish(
                Envelope(
                    type="catalog.product.created.v1",
                    source="catalog",
                    subject="p-1",
                    data={
                        "product_id": "p-1",
                        "sku": "MUG-001",
                        "name": "Mug",
                        "category": "kitchen",
                        "price": {"amount": 1490, "currency": "EUR"},
                        "image_url": None,  # a field inventory does not know: ignored
                    },
                )
            )
            async with asyncio.timeout(10):
                while True:
                    answer = await client.get(
                        "/api/v1/inventory/availability", params={"skus": "MUG-001"}
                    )
                    if answer.json()["items"][0]["available"] == 4:
                        break
                    await asyncio.sleep(0.05)

            command = Envelope(
                type="inventory.reserve_stock.v1",
                source="orders",
                subject="order-1",
                data={"order_id": "order-1", "lines": [{"sku": "MUG-001", "quantity": 3}]},
                correlation_id="checkout-1",
            )
            await others.publish(command)
            reply = await asyncio.wait_for(replies.get(), 10)
            assert reply.type == "inventory.stock.reserved.v1"
            assert reply.subject == "order-1"
            assert reply.causation_id == command.id
            assert reply.correlation_id == "checkout-1"
            assert reply.data["order_id"] == "order-1"

            audit = await client.get("/internal/audit/stock", headers=as_role("admin"))
            [mug] = audit.json()["skus"]
            assert (mug["initial"], mug["available"], mug["reserved"]) == (4, 1, 3)
    finally:
        await others.close()
