"""Checkout end to end on a real NATS JetStream (a server of its own): the orders app, a fake
catalog over HTTP, and tiny fake inventory and payments services answering on the broker."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chassis import EmbeddedNatsServer
from chassis.messaging import NatsJetStreamBus

pytestmark = pytest.mark.integration


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def participants(nats_server: EmbeddedNatsServer, kit: Any) -> AsyncIterator[Any]:
    bus = NatsJetStreamBus(nats_server.url, name="fakes", fetch_timeout=0.5)
    await bus.start()
    fakes = kit.Participants(bus)
    await fakes.start()
    yield fakes
    await bus.close()


async def test_confirm_decline_and_out_of_stock_over_nats(
    nats_server: EmbeddedNatsServer,
    participants: Any,
    catalog: Any,
    kit: Any,
    make_settings: Any,
) -> None:
    participants.out_of_stock.add("TEA-042")
    settings = make_settings(broker_url=nats_server.url)
    async with kit.serving(settings, registry=catalog.registry()) as api:
        paid = await api.place(kit.order_body((kit.MUG, 1)))
        declined = await api.place(kit.order_body((kit.MUG, 1), token="tok_chargeDeclined"))
        no_stock = await api.place(kit.order_body((kit.MUG, 1), (kit.TEA, 3)))
        ids = [r.json()["id"] for r in (paid, declined, no_stock)]
        assert all(r.status_code == 202 for r in (paid, declined, no_stock))

        confirmed = await api.settled(ids[0], "CONFIRMED", timeout=20)
        rejected = await api.settled(ids[1], "REJECTED", timeout=20)
        out = await api.settled(ids[2], "REJECTED", timeout=20)
        assert (rejected["reason"], out["reason"]) == ("payment_declined", "out_of_stock")
        assert confirmed["total"] == {"amount": 1490, "currency": "EUR"}

        async def all_settled() -> bool:
            return participants.commands(ids[0])[-1:] == ["inventory.commit_stock.v1"]

        await kit.eventually(all_settled, timeout=20)
        assert participants.commands(ids[0]) == [
            "inventory.reserve_stock.v1",
            "payments.authorize_payment.v1",
            "payments.capture_payment.v1",
            "inventory.commit_stock.v1",
        ]
        assert participants.commands(ids[1]) == [
            "inventory.reserve_stock.v1",
            "payments.authorize_payment.v1",
            "inventory.release_stock.v1",
        ]
        assert participants.commands(ids[2]) == ["inventory.reserve_stock.v1"]

        ready = await api.client.get("/readyz")
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
